import type { DiscoveryConfig } from '../config/schemas/discovery.js';
import type { DiscoveredTargets, DiscoveryHealth } from '../discovery/discovered-targets.js';
import type { UpstreamConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import { createPicker } from '../upstream/balancers/index.js';
import type { Picker } from '../upstream/balancers/balancer.js';
import { CircuitBreaker } from '../upstream/circuit-breaker.js';
import { UpstreamHealth, type HealthCheckTransport } from '../upstream/health.js';
import { poolKey, type PoolOptions } from '../upstream/pool.js';
import { RetryBudget } from '../upstream/retry.js';
import { Target } from '../upstream/target.js';
import type { TargetStates } from './target-state.js';
import { StaticTargetSource, WeightedSource, type TargetSource, type TargetSpec } from './target-source.js';

/**
 * What a snapshot's upstream asks of its live state: everything compiled
 * from one `upstreams[]` entry that shapes the state (see Upstream).
 */
export interface UpstreamPlan {
  readonly config: UpstreamConfig;
  readonly pool: PoolOptions;
  /** The TLS server name for a target host (https HTTP/1.1 upstreams), or undefined. */
  serverName(host: string): string | undefined;
  readonly healthTransport: HealthCheckTransport;
}

const NO_TARGET: Picker = () => undefined;

/** Longest a replaced discovery source's targets stay while the new one has not answered. */
const DISCOVERY_HANDOVER_MS = 5_000;

/** Retry budgets kept per upstream (its own and its routes', by settings). */
const BUDGETS_KEPT = 64;

/**
 * The live state of one upstream, kept by name across reloads: its target
 * set (fed by target sources: the config's targets, and any other source
 * added), the balancer's picker over the targets it may use now (health
 * filters them), target health, the circuit breaker and the retry
 * budgets. Snapshots read it; only `configure` (when a snapshot becomes
 * current) and the sources change it.
 *
 * A reload that keeps the upstream keeps its state: an open breaker stays
 * open (new thresholds apply to the counts it has, see
 * CircuitBreaker.reconfigure), target health and ejections carry over
 * while the `healthCheck` block is unchanged, retry budgets keep their
 * windows while their settings are unchanged, and targets keep their pools
 * and counters.
 */
export class UpstreamState {
  readonly name: string;
  /** Every target of every source, in source order (weight 0 included). */
  targets: readonly Target[] = [];
  /** The targets the picker picks from: weight > 0 and healthy (or all of those in panic mode). */
  pickable: readonly Target[] = [];
  picker: Picker = NO_TARGET;
  /** The balancer `picker` was made by. */
  private pickerBalancer = '';
  health: UpstreamHealth | null = null;
  breaker: CircuitBreaker | null = null;
  /** Passive health reports go here (null unless `healthCheck.passive` is configured). */
  passive: UpstreamHealth | null = null;
  /** The source the config's `targets:` feed. */
  readonly configTargets = new StaticTargetSource();
  private plan: UpstreamPlan | null = null;
  private readonly sources: { source: TargetSource; unsubscribe: () => void }[] = [];
  private readonly budgets = new Map<string, RetryBudget>();
  /** The `{ tunnel: CODE }` targets' sources, by code, with the weight they were added with. */
  private readonly tunnels = new Map<string, { weight: number; remove: () => void }>();
  private readonly states: TargetStates;
  /** The `discovery:` block's source, with the block it was made from (JSON) and its removal. */
  private discovery: { key: string; source: DiscoveredTargets; remove: () => void } | undefined;
  private logger: Logger | null = null;
  private released = false;

  constructor(name: string, states: TargetStates) {
    this.name = name;
    this.states = states;
    this.addSource(this.configTargets);
  }

  /**
   * Applies the config of the snapshot that became current: policies are
   * created, reconfigured in place or dropped; the config's targets are
   * handed to their source; every target's pool follows the new settings.
   */
  configure(plan: UpstreamPlan, logger: Logger): void {
    if (this.released) return;
    this.plan = plan;
    this.logger = logger;
    const cb = plan.config.circuitBreaker;
    if (cb === undefined) this.breaker = null;
    else if (this.breaker === null) this.breaker = new CircuitBreaker(cb, { onStateChange: this.onBreakerChange });
    else this.breaker.reconfigure(cb);

    const hc = plan.config.healthCheck;
    if (hc === undefined) {
      this.health?.stop();
      this.health = null;
    } else if (this.health === null || JSON.stringify(this.health.config) !== JSON.stringify(hc)) {
      // A changed healthCheck block starts from fresh health: its thresholds and checks are not those the old verdicts came from.
      this.health?.stop();
      this.health = new UpstreamHealth(this.name, hc, (set) => this.setPickable(set), plan.healthTransport);
    } else {
      this.health.setTransport(plan.healthTransport);
    }
    this.passive = hc?.passive === undefined ? null : this.health;
    // A changed target list rebuilds through its source's subscription; otherwise rebuild here (pool settings may have changed).
    this.configureTunnels(plan.config.targets);
    this.configureDiscovery(plan.config.discovery);
    const addresses: TargetSpec[] = [];
    for (const t of plan.config.targets) if ('address' in t) addresses.push({ address: t.address, weight: t.weight });
    if (!this.configTargets.set(addresses)) this.rebuild();
    this.health?.start(logger);
  }

  /**
   * Subscribes to the registrations of each `{ tunnel: CODE }` target (kept
   * while the code and weight stay; a dropped code's targets leave).
   */
  private configureTunnels(targets: UpstreamConfig['targets']): void {
    const wanted = new Map<string, number>();
    for (const t of targets) if ('tunnel' in t) wanted.set(t.tunnel, t.weight);
    for (const [code, entry] of this.tunnels) {
      if (wanted.get(code) === entry.weight) continue;
      this.tunnels.delete(code);
      entry.remove();
    }
    for (const [code, weight] of wanted) {
      if (this.tunnels.has(code)) continue;
      const source = this.states.tunnelSource?.(code);
      if (source === undefined) {
        this.logger?.warn({ upstream: this.name, code }, 'a { tunnel } target needs a tunnel or relay listener: it has no targets');
        continue;
      }
      this.tunnels.set(code, { weight, remove: this.addSource(weight === 1 ? source : new WeightedSource(source, weight)) });
    }
  }

  /**
   * Keeps the discovery source while its block is unchanged. A changed
   * block starts a new source; the old one's targets stay until the new one
   * offers its first set (or DISCOVERY_HANDOVER_MS passed), so a changed
   * registry address never leaves the upstream empty in between. A removed
   * block takes its targets away at once.
   */
  private configureDiscovery(config: DiscoveryConfig | undefined): void {
    const key = config === undefined ? undefined : JSON.stringify(config);
    if (this.discovery?.key === key) return;
    const old = this.discovery;
    this.discovery = undefined;
    if (config !== undefined && key !== undefined && this.states.discoverySource !== undefined) {
      const source = this.states.discoverySource(this.name, config);
      this.discovery = { key, source, remove: this.addSource(source) };
    }
    if (old === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    let unsubscribe: (() => void) | undefined;
    let retired = false;
    const retire = () => {
      if (retired) return;
      retired = true;
      clearTimeout(timer);
      unsubscribe?.();
      old.remove();
      old.source.close();
    };
    const next = this.discovery?.source;
    if (next === undefined || next.current().length > 0) return retire();
    unsubscribe = next.subscribe(retire);
    timer = setTimeout(retire, DISCOVERY_HANDOVER_MS);
    timer.unref();
  }

  /** What /status shows of the upstream's discovery (undefined without one). */
  discoveryHealth(): DiscoveryHealth | undefined {
    return this.discovery?.source.health();
  }

  /**
   * Adds a source of targets (discovery, tunnel registrations, a test).
   * Its targets join the set at once; the returned function removes the
   * source and its targets.
   */
  addSource(source: TargetSource): () => void {
    const entry = { source, unsubscribe: source.subscribe(() => this.rebuild()) };
    this.sources.push(entry);
    this.rebuild();
    return () => {
      const i = this.sources.indexOf(entry);
      if (i < 0) return;
      this.sources.splice(i, 1);
      entry.unsubscribe();
      this.rebuild();
    };
  }

  /**
   * The retry budget kept under `key` (the upstream's own, or a route's)
   * for these settings. A budget is looked up, never retuned, so compiling a
   * snapshot that is then refused changes nothing live; changed settings
   * get a budget of their own, with an empty window.
   */
  budget(key: string, config: { budgetPercent: number; budgetMinRetries: number; budgetWindow: number }): RetryBudget {
    const id = `${key}|${config.budgetPercent}|${config.budgetMinRetries}|${config.budgetWindow}`;
    let b = this.budgets.get(id);
    if (b === undefined) {
      b = new RetryBudget(config.budgetPercent, config.budgetMinRetries, config.budgetWindow);
      // Budgets of settings no longer used go, oldest first.
      if (this.budgets.size >= BUDGETS_KEPT) this.budgets.delete(this.budgets.keys().next().value!);
      this.budgets.set(id, b);
    }
    return b;
  }

  /**
   * The upstream left the config: checks stop and every target lets go of
   * its pool (requests in flight on it finish). Work of an older snapshot
   * that still names the upstream keeps picking from its last targets.
   */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.health?.stop();
    this.passive = null;
    // Registrations no longer feed it (rebuild does nothing once released).
    for (const t of this.tunnels.values()) t.remove();
    this.tunnels.clear();
    this.discovery?.source.close();
    this.discovery = undefined;
    // The targets and the picker stay: a connection or request of an older snapshot that still names this
    // upstream picks and dials as before (L4 dials through the target's connector; pools close once idle).
    for (const t of this.targets) this.letGo(t);
  }

  /** Rebuilds the target set from the sources: kept targets stay the same objects, changed ones are replaced. */
  private rebuild(): void {
    const plan = this.plan;
    if (plan === null || this.released) return;
    const specs: TargetSpec[] = [];
    const seen = new Set<string>();
    // A target offered by two sources is taken once, as the first source offers it.
    for (const { source } of this.sources) {
      for (const spec of source.current()) {
        if (seen.has(spec.address)) continue;
        seen.add(spec.address);
        specs.push(spec);
      }
    }
    const key = poolKey(plan.pool);
    const old = new Map(this.targets.map((t) => [t.address, t]));
    const next = specs.map((spec) => {
      const prev = old.get(spec.address);
      if (prev !== undefined && prev.weight === spec.weight && prev.poolKey === key && prev.serverName === plan.serverName(prev.state.host)) {
        old.delete(spec.address);
        return prev;
      }
      const t = new Target(spec.address, spec.weight, this.states.hold(spec.address));
      const { key: k, pool } = t.state.acquirePool(plan.pool);
      t.pool = pool;
      t.poolKey = k;
      t.serverName = plan.serverName(t.state.host);
      return t;
    });
    this.targets = next;
    // After the new targets took theirs, so a pool both use is never closed in between.
    for (const t of old.values()) this.letGo(t);
    if (this.health !== null) this.health.setTargets(next);
    else this.setPickable(next.filter((t) => t.weight > 0));
  }

  private letGo(t: Target): void {
    t.state.releasePool(t.poolKey);
    this.states.letGo(t.address);
  }

  /** The set the balancer picks from changed (targets, health): a new picker, swapped in whole. */
  private setPickable(targets: readonly Target[]): void {
    const balancer = this.plan?.config.balancer ?? 'round-robin';
    // The same targets and balancer keep their picker (its rotation position), e.g. across a reload that changed neither.
    if (balancer === this.pickerBalancer && targets.length === this.pickable.length && targets.every((t, i) => t === this.pickable[i])) return;
    this.pickable = targets;
    this.pickerBalancer = balancer;
    this.picker = targets.length === 0 ? NO_TARGET : createPicker(balancer, targets);
  }

  private readonly onBreakerChange = (from: string, to: string, reason: string): void => {
    const detail = { upstream: this.name, from, to, reason };
    if (to === 'open') this.logger?.warn(detail, 'circuit breaker state changed');
    else this.logger?.info(detail, 'circuit breaker state changed');
  };
}
