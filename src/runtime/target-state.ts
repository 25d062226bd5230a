import type { DiscoveryConfig } from '../config/schemas/discovery.js';
import type { DiscoveredTargets } from '../discovery/discovered-targets.js';
import { parseHostPort } from '../net/address.js';
import type { Connector } from './connector.js';
import type { TargetSource } from './target-source.js';
import { TcpConnector } from './tcp-connector.js';
import { createPool, poolKey, type PoolOptions, type TargetPool } from '../upstream/pool.js';

/**
 * The live state of one target identity, kept across config reloads by
 * the TargetRegistry for as long as some upstream has the target: the
 * connector that reaches it, its keep-alive pools, and the counters the
 * balancers read (`inflight`, `ewmaMs`). A reload that keeps the target
 * keeps all of it: least-connections and p2c see the requests that began
 * before the reload, and warm connections stay warm.
 */
export class TargetState {
  readonly identity: string;
  readonly connector: Connector;
  /** The target's host name or IP (TLS certificate checks without a server name; '' when it has none). */
  readonly host: string;
  /** Requests (or connections) currently in flight to this target, from every upstream that has it. */
  inflight = 0;
  /** Exponentially weighted moving average of response latency, in ms. 0 until the first sample. */
  ewmaMs = 0;
  private lastSampleAt = 0;
  /** One pool per distinct pool settings, shared by the upstreams that use them, with their holder counts. */
  private readonly pools = new Map<string, { pool: TargetPool; holders: number }>();

  constructor(identity: string, connector: Connector, host: string) {
    this.identity = identity;
    this.connector = connector;
    this.host = host;
  }

  /**
   * Record one finished request's latency. The average decays with time
   * (time constant `decayMs`), as in Finagle's peak-EWMA, so a target that was
   * slow a while ago is not punished forever.
   */
  observeLatency(ms: number, now = Date.now(), decayMs = 10_000): void {
    if (this.ewmaMs === 0) {
      this.ewmaMs = ms;
    } else {
      const elapsed = Math.max(now - this.lastSampleAt, 0);
      const w = Math.exp(-elapsed / decayMs);
      // Peak sensitivity: a slower sample is taken at once.
      this.ewmaMs = ms > this.ewmaMs ? ms : this.ewmaMs * w + ms * (1 - w);
    }
    this.lastSampleAt = now;
  }

  /** The pool for `options`, created on first use; each call must be paired with `releasePool(key)`. */
  acquirePool(options: PoolOptions): { key: string; pool: TargetPool } {
    const key = poolKey(options);
    let entry = this.pools.get(key);
    if (entry === undefined) {
      entry = { pool: createPool(this.connector, this.host, options), holders: 0 };
      this.pools.set(key, entry);
    }
    entry.holders++;
    return { key, pool: entry.pool };
  }

  /** Lets go of a pool; the last holder closes it gracefully (requests in flight on it finish first). */
  releasePool(key: string): void {
    const entry = this.pools.get(key);
    if (entry === undefined || --entry.holders > 0) return;
    this.pools.delete(key);
    void entry.pool.close().catch(() => undefined);
  }

  /** Open pools (for tests and the admin API). */
  get poolCount(): number {
    return this.pools.size;
  }

  /** Closes every pool at once, aborting requests in flight (gateway stop). */
  async destroy(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((e) => e.pool.destroy().catch(() => undefined)));
  }
}

/** Target states by identity, held by the upstreams that have the target. */
export interface TargetStates {
  /** The live state of `identity`, made on first hold; each hold is paired with a `letGo`. */
  hold(identity: string): TargetState;
  letGo(identity: string): void;
  /** The registrations of a tunnel service code as a target source; absent when the gateway has no tunnel or relay listener. */
  tunnelSource?(code: string): TargetSource;
  /** A started source of the targets an upstream's `discovery:` block finds; absent when the gateway has no discovery (tests). */
  discoverySource?(upstream: string, config: DiscoveryConfig): DiscoveredTargets;
}

/** The default connector of an identity: a TCP dial to its `host:port`. */
export function tcpConnectorFor(identity: string): Connector {
  return new TcpConnector(parseHostPort(identity) ?? { host: identity, port: 0 }, identity);
}

/** The live state of a target identity, reached through the connector `connectorFor` makes for it. */
export function targetStateFor(identity: string, connectorFor: (identity: string) => Connector = tcpConnectorFor): TargetState {
  return new TargetState(identity, connectorFor(identity), parseHostPort(identity)?.host ?? '');
}
