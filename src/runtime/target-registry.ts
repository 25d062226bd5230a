import type { DiscoveryConfig } from '../config/schemas/discovery.js';
import type { DiscoveredTargets } from '../discovery/discovered-targets.js';
import type { Logger } from '../observability/logger.js';
import type { Connector } from './connector.js';
import type { TargetSource } from './target-source.js';
import { targetStateFor, tcpConnectorFor, type TargetState, type TargetStates } from './target-state.js';
import { UpstreamState, type UpstreamPlan } from './upstream-state.js';

/**
 * Live state that outlives snapshots (Caddy keeps its upstream hosts in a
 * reference-counted pool "through config reloads" for the same reason):
 * per target identity, its connector, pools and counters; per upstream
 * name, its target set, health, breaker and retry budgets. Snapshots look
 * states up by name when they are compiled and `activate` configures them
 * when a snapshot becomes current; states no current snapshot names are
 * released.
 */
export class TargetRegistry implements TargetStates {
  /**
   * Makes the connector of a target identity, when its live state is made.
   * The default dials `host:port` over TCP; a tunnel (or a test) puts its
   * own in front for the identities it serves.
   */
  connectorFor: (identity: string) => Connector = tcpConnectorFor;
  /** The target source of a tunnel service code's registrations; set by the gateway (the tunnel hub). */
  tunnelSource: ((code: string) => TargetSource) | undefined = undefined;
  /** Makes an upstream's discovery source; set by the gateway. */
  discoverySource: ((upstream: string, config: DiscoveryConfig) => DiscoveredTargets) | undefined = undefined;
  private readonly targets = new Map<string, { state: TargetState; holders: number }>();
  private readonly upstreams = new Map<string, UpstreamState>();
  /** Upstreams no config names (a tunnel code's claimed hosts, `tunnel:<code>`): kept by `retain` until `unpin`. */
  private readonly pinned = new Set<string>();

  /** The live state of upstream `name`, made (unconfigured, with no target) on first use. */
  upstream(name: string): UpstreamState {
    let u = this.upstreams.get(name);
    if (u === undefined) {
      u = new UpstreamState(name, this);
      this.upstreams.set(name, u);
    }
    return u;
  }

  /**
   * The live state of an implicit upstream (its name is no config name,
   * e.g. `tunnel:<code>`): made on first use and kept across reloads until
   * `unpin` releases it.
   */
  pin(name: string): UpstreamState {
    this.pinned.add(name);
    return this.upstream(name);
  }

  unpin(name: string): void {
    if (!this.pinned.delete(name)) return;
    this.upstreams.get(name)?.release();
    this.upstreams.delete(name);
  }

  /** The live state of a target identity, if some upstream has it. */
  target(identity: string): TargetState | undefined {
    return this.targets.get(identity)?.state;
  }

  hold(identity: string): TargetState {
    let entry = this.targets.get(identity);
    if (entry === undefined) {
      entry = { state: targetStateFor(identity, this.connectorFor), holders: 0 };
      this.targets.set(identity, entry);
    }
    entry.holders++;
    return entry.state;
  }

  letGo(identity: string): void {
    const entry = this.targets.get(identity);
    if (entry !== undefined && --entry.holders <= 0) this.targets.delete(identity);
  }

  /**
   * A snapshot became current: configure the states of its upstreams and
   * release the others (their pools close once their requests finish).
   */
  activate(plans: ReadonlyMap<string, UpstreamPlan>, logger: Logger): void {
    for (const [name, plan] of plans) this.upstream(name).configure(plan, logger);
    this.retain(new Set(plans.keys()));
  }

  /** Releases the upstream states not in `names` (e.g. made for a snapshot that failed to apply). */
  retain(names: ReadonlySet<string>): void {
    for (const [name, u] of this.upstreams) {
      if (names.has(name) || this.pinned.has(name)) continue;
      this.upstreams.delete(name);
      u.release();
    }
  }

  /** Gateway stop: checks stop and every pool closes at once. */
  async destroy(): Promise<void> {
    const states = [...this.targets.values()].map((e) => e.state);
    // Pools first, aborting what is in flight; releasing the upstreams then finds nothing left to close.
    const destroyed = Promise.all(states.map((s) => s.destroy()));
    for (const u of this.upstreams.values()) u.release();
    this.upstreams.clear();
    this.pinned.clear();
    this.targets.clear();
    await destroyed;
  }
}
