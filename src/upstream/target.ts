import { parseHostPort, type HostPort } from '../net/address.js';
import { targetStateFor, type TargetState } from '../runtime/target-state.js';
import type { Connector } from '../runtime/connector.js';
import type { TargetPool } from './pool.js';

/**
 * One target as an upstream sees it: its identity, its weight in this
 * upstream, and the live `state` shared by every upstream that has the
 * same identity (see runtime/target-state.ts). Balancers read `weight`,
 * `inflight` and `ewmaMs`. A Target is made by the upstream's live state
 * when its target set changes, never per request.
 */
export class Target {
  /** The target identity: `host:port` as written in the config (IPv6 hosts in brackets). */
  readonly address: string;
  /** Relative weight, an integer >= 0 (0: drained, never picked). */
  readonly weight: number;
  readonly state: TargetState;
  /** The keep-alive pool the owning upstream sends through (null for a target made outside an upstream, e.g. in a test). */
  pool: TargetPool | null = null;
  /** The registry key of `pool` (see TargetState.acquirePool). */
  poolKey = '';
  /** The TLS server name for https HTTP/1.1 targets, or undefined. */
  serverName: string | undefined = undefined;
  private parsed: HostPort | undefined;

  constructor(address: string, weight = 1, state?: TargetState) {
    this.address = address;
    this.weight = weight;
    this.state = state ?? targetStateFor(address);
  }

  /** Requests (or connections) in flight to this target's identity. */
  get inflight(): number {
    return this.state.inflight;
  }

  set inflight(n: number) {
    this.state.inflight = n;
  }

  get ewmaMs(): number {
    return this.state.ewmaMs;
  }

  set ewmaMs(ms: number) {
    this.state.ewmaMs = ms;
  }

  get connector(): Connector {
    return this.state.connector;
  }

  /** The address split into host and port (parsed once). */
  get hostPort(): HostPort {
    return (this.parsed ??= parseHostPort(this.address) ?? { host: this.address, port: 0 });
  }

  observeLatency(ms: number, now = Date.now(), decayMs = 10_000): void {
    this.state.observeLatency(ms, now, decayMs);
  }
}
