import type { L4ListenerConfig } from '../config/schema.js';
import type { IpSet } from '../http/ip.js';
import type { ListenerTls } from '../listeners/listener-runtime.js';
import type { AccessLog } from '../observability/access-log.js';
import type { StateStore } from '../state/store.js';
import type { ConsumerRegistry } from '../consumers/consumer.js';
import type { Upstream } from '../upstream/upstream.js';
import type { Admission } from './admission.js';

export type { L4ListenerConfig };

/**
 * A connection-level listener (`tcp`, `tls`, `udp`, `sealed`,
 * `forward-proxy`) as compiled into a snapshot. Live state (open
 * connections, UDP sessions, key caches) belongs to the listener's
 * frontend, which outlives snapshots; this holds what a reload replaces.
 */
export interface L4ListenerRuntime<C extends L4ListenerConfig = L4ListenerConfig> {
  readonly kind: 'l4';
  readonly name: string;
  readonly config: C;
  /** One line per connection (or UDP session); null when off. */
  readonly accessLog: AccessLog | null;
  /** Peers whose PROXY protocol header is believed; null = any peer. */
  readonly trustedProxies: IpSet | null;
  /** The connection middlewares (ip-restriction, rate-limit), checked on the client address. */
  readonly admission: Admission;
  /** Certificates of a `tls` listener that terminates TLS; null otherwise. */
  readonly certificates: ListenerTls | null;
  readonly state: StateStore;
  /**
   * The upstreams and consumers of the snapshot this runtime was compiled
   * into. A connection reads them from the runtime it was accepted with,
   * never from "the current snapshot": a reload in the middle of its
   * accept, dial or splice cannot hand it another snapshot's upstream (and
   * a listener bound for a snapshot not yet swapped in sees its own).
   */
  readonly upstreams: ReadonlyMap<string, Upstream>;
  readonly consumers: ConsumerRegistry;
}
