import type { L4ListenerConfig } from '../config/schema.js';
import type { IpSet } from '../net/ip-set.js';
import type { ListenerTls } from '../listeners/listener-runtime.js';
import type { AccessLog } from '../observability/access-log.js';
import type { StateStore } from '../state/store.js';
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
}
