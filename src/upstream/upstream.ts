import { isIP } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import type tls from 'node:tls';
import type { RouteConfig, UpstreamConfig } from '../config/schema.js';
import { compileDirectResponse, type DirectResponse } from '../http/direct-response.js';
import type { Logger } from '../observability/logger.js';
import { createPicker } from './balancers/index.js';
import type { Picker } from './balancers/balancer.js';
import { CircuitBreaker, type BreakerView } from './circuit-breaker.js';
import { UpstreamHealth, type UpstreamHealthView } from './health.js';
import type { PoolRegistry, TargetPool } from './pool-registry.js';
import { loadUpstreamTls } from '../tls/upstream-tls.js';
import { parseHostPort } from '../net/address.js';
import { RetryPolicy, smallestTimeout } from './retry.js';
import { Target } from './target.js';

export interface UpstreamHealthReport extends UpstreamHealthView {
  circuitBreaker: BreakerView | null;
}

/**
 * What `hashOn` reads a consistent-hash key from (the client IP, URI, a
 * header or a cookie): the request context, seen only this narrowly so the
 * upstream does not depend on the runtime vocabulary (snapshot/snapshot.ts).
 */
export interface HashKeySource {
  readonly clientIp: string;
  readonly path: string;
  readonly query: string;
  readonly req: { readonly headers: IncomingHttpHeaders };
}

/**
 * A named pool of targets, compiled from one `upstreams[]` entry: the
 * targets, the balancer's picker, a keep-alive connection pool per target,
 * and the traffic policies (health, circuit breaker, retries).
 *
 * Immutable once built, apart from live state: the targets' counters, the
 * policies' windows, and the picker, which is replaced (never edited) when
 * health changes the set of targets it may pick from.
 */
export class Upstream {
  readonly name: string;
  readonly targets: readonly Target[];
  readonly config: UpstreamConfig;
  /** The registry keys of the pools this upstream uses (see PoolRegistry.retain). */
  readonly poolKeys: ReadonlySet<string>;
  /** Target health (active checks, ejections, panic mode); null without `healthCheck`. */
  readonly healthState: UpstreamHealth | null;
  /** Where the proxy reports each exchange's outcome; null without `healthCheck.passive`. */
  readonly passive: UpstreamHealth | null;
  readonly breaker: CircuitBreaker | null;
  /** Sent instead of 503 CIRCUIT_OPEN when the breaker rejects; null without `circuitBreaker.fallback`. */
  readonly breakerFallback: DirectResponse | null;
  /** The upstream's own `retries:` (routes may override it); null without one. */
  readonly retry: RetryPolicy | null;
  /**
   * Whether requests need the guarded proxy path (breaker or retries).
   * Health alone does not: it only changes the picker and reads outcomes.
   */
  readonly guarded: boolean;
  /** undici `headersTimeout` of a call when no retry policy applies (the breaker's timeout), or undefined for the pool's own. */
  readonly headersTimeout: number | undefined;
  private picker: Picker;
  /** The targets `picker` picks from. */
  private pickable: readonly Target[];
  private readonly pools: Map<Target, TargetPool>;
  /** TLS server name per target for https HTTP/1.1 targets (the configured serverName, else the target's host name); empty without TLS. */
  private readonly serverNames = new Map<Target, string>();
  /** The upstream is reached over TLS and `insecureSkipVerify` is set (the compiler warns). */
  readonly insecureTls: boolean;
  /** node:tls client options when the upstream has `tls:` (L4 listeners originate TLS with them); null otherwise. */
  readonly tlsOptions: tls.ConnectionOptions | null;
  private readonly hashKeyOf: ((ctx: HashKeySource) => string | undefined) | null;
  private readonly routePolicies = new Map<RouteConfig, RetryPolicy | null>();
  private logger: Logger | null = null;

  /** `where` is the config path of this upstream (`upstreams[2]`), for file errors in its `tls:`. */
  constructor(config: UpstreamConfig, registry: PoolRegistry, where = `upstreams.${config.name}`) {
    this.name = config.name;
    this.config = config;
    this.targets = config.targets.map((t) => new Target(t.address, t.weight));
    // Drained targets (weight 0) are left out of the picker; with none left, pick() finds nothing (503).
    this.pickable = this.targets.filter((t) => t.weight > 0);
    this.picker = createPicker(config.balancer, this.pickable);
    this.pools = new Map();
    const keys = new Set<string>();
    const tls = config.tls === undefined ? undefined : loadUpstreamTls(config.tls, `${where}.tls`);
    this.insecureTls = tls?.insecure ?? false;
    this.tlsOptions = tls?.options ?? null;
    for (const t of this.targets) {
      if (tls !== undefined && config.protocol === 'http1') {
        const host = parseHostPort(t.address)?.host ?? '';
        const name = config.tls!.serverName ?? (isIP(host) === 0 ? host : undefined);
        if (name !== undefined) this.serverNames.set(t, name);
      }
      const { key, pool } = registry.get(t.address, {
        protocol: config.protocol,
        tls,
        connectTimeout: config.timeouts.connect,
        responseTimeout: config.timeouts.response,
        idleTimeout: config.timeouts.idle,
        maxConnections: config.maxConnections,
      });
      keys.add(key);
      this.pools.set(t, pool);
    }
    this.poolKeys = keys;
    this.hashKeyOf = config.balancer === 'consistent-hash' ? hashKeyExtractor(config.hashKey) : null;

    this.healthState =
      config.healthCheck === undefined
        ? null
        : new UpstreamHealth(config.name, this.targets, config.healthCheck, (set) => this.setPickable(set), {
            // Checks speak TLS like the traffic does (gRPC checks: h2 over TLS, or h2c).
            tls: config.protocol === 'h2c' ? undefined : config.protocol === 'h2' ? (tls?.options ?? {}) : tls?.options,
          });
    this.passive = config.healthCheck?.passive === undefined ? null : this.healthState;
    this.breaker =
      config.circuitBreaker === undefined
        ? null
        : new CircuitBreaker(config.circuitBreaker, {
            onStateChange: (from, to, reason) => {
              const detail = { upstream: this.name, from, to, reason };
              if (to === 'open') this.logger?.warn(detail, 'circuit breaker state changed');
              else this.logger?.info(detail, 'circuit breaker state changed');
            },
          });
    this.breakerFallback = config.circuitBreaker?.fallback === undefined ? null : compileDirectResponse(config.circuitBreaker.fallback);
    this.headersTimeout = this.attemptTimeout(0);
    this.retry = config.retries === undefined ? null : this.compileRetry(config.retries);
    this.guarded = this.breaker !== null || this.retry !== null;
  }

  /**
   * Called when the snapshot holding this upstream becomes current: starts
   * the active health checks. `previous` is the upstream of the same name
   * in the snapshot being replaced, whose target health is carried over.
   */
  start(logger: Logger, previous?: Upstream): void {
    this.logger = logger;
    this.healthState?.start(logger, previous?.healthState ?? undefined);
  }

  /** Called when the snapshot is replaced or the gateway stops: stops checks and timers. */
  stop(): void {
    this.healthState?.stop();
  }

  /** Picks a target for this request; undefined when none is available. */
  pick(ctx: HashKeySource): Target | undefined {
    return this.picker(this.hashKeyOf === null ? undefined : this.hashKeyOf(ctx));
  }

  /** Picks a target for a retry: one not in `tried` when there is one. */
  pickOther(ctx: HashKeySource, tried: readonly Target[]): Target | undefined {
    const key = this.hashKeyOf === null ? undefined : this.hashKeyOf(ctx);
    for (let i = 0; i < 3; i++) {
      const t = this.picker(key);
      if (t === undefined || !tried.includes(t)) return t;
    }
    // The balancer keeps choosing tried targets (consistent-hash always does): take the first untried one.
    for (const t of this.pickable) if (!tried.includes(t)) return t;
    return this.picker(key);
  }

  /**
   * Picks a target not in `tried` for a connect failover; undefined when
   * every target that may be picked was tried.
   */
  pickUntried(ctx: HashKeySource, tried: readonly Target[]): Target | undefined {
    const t = this.pickOther(ctx, tried);
    return t === undefined || tried.includes(t) ? undefined : t;
  }

  /** Whether a target that may be picked is not in `tried`. */
  hasUntried(tried: readonly Target[]): boolean {
    for (const t of this.pickable) if (!tried.includes(t)) return true;
    return false;
  }

  /**
   * Picks a target for a connection (L4 listeners), avoiding `tried` when
   * another is available. Consistent hashing uses the client IP whatever
   * `hashKey` says: a connection has no URI, header or cookie.
   */
  pickForConnection(clientIp: string, tried: readonly Target[] = []): Target | undefined {
    const key = this.hashKeyOf === null ? undefined : clientIp;
    if (tried.length === 0) return this.picker(key);
    for (let i = 0; i < 3; i++) {
      const t = this.picker(key);
      if (t === undefined || !tried.includes(t)) return t;
    }
    for (const t of this.pickable) if (!tried.includes(t)) return t;
    return this.picker(key);
  }

  poolFor(target: Target): TargetPool {
    return this.pools.get(target)!;
  }

  /** The TLS server name to send to `target` (https HTTP/1.1 upstreams), or undefined. */
  serverNameFor(target: Target): string | undefined {
    return this.serverNames.size === 0 ? undefined : this.serverNames.get(target);
  }

  /** The retry policy for requests of `route` to this upstream (the route's own `retries` wins); null for none. */
  retryPolicyFor(route: RouteConfig): RetryPolicy | null {
    if (route.retries === undefined) return this.retry;
    let p = this.routePolicies.get(route);
    if (p === undefined) {
      p = this.compileRetry(route.retries);
      this.routePolicies.set(route, p);
    }
    return p;
  }

  /** A read-only view of target health and the breaker, for the admin API. */
  health(): UpstreamHealthReport {
    const view: UpstreamHealthView = this.healthState?.view() ?? {
      panic: false,
      targets: this.targets.map((t) => ({
        address: t.address,
        weight: t.weight,
        healthy: t.weight > 0,
        active: 'unchecked' as const,
        ejected: false,
        ejectedForMs: 0,
        ejections: 0,
        failures: { active: 0, passive: 0 },
      })),
    };
    return { ...view, circuitBreaker: this.breaker?.view() ?? null };
  }

  private compileRetry(config: NonNullable<UpstreamConfig['retries']>): RetryPolicy {
    return new RetryPolicy(config, this.attemptTimeout(config.perTryTimeout));
  }

  private attemptTimeout(perTry: number): number | undefined {
    const response = this.config.timeouts.response;
    const ms = smallestTimeout(response, perTry, this.config.circuitBreaker?.timeout ?? 0);
    return ms === response ? undefined : ms;
  }

  /** Health changed the set of targets to pick from: build a new picker and swap it in. */
  private setPickable(targets: readonly Target[]): void {
    this.pickable = targets;
    this.picker = createPicker(this.config.balancer, targets);
  }
}

/**
 * Starts the health checks of the snapshot that became current and stops
 * those of the one it replaced (whose in-flight requests still finish).
 */
export function swapUpstreams(
  next: ReadonlyMap<string, Upstream> | undefined,
  previous: ReadonlyMap<string, Upstream> | undefined,
  logger: Logger,
): void {
  if (next !== undefined) for (const u of next.values()) u.start(logger, previous?.get(u.name));
  if (previous !== undefined && previous !== next) for (const u of previous.values()) u.stop();
}

/**
 * The consistent-hash key: `ip` (trusted client IP), `uri` (path and query
 * as received), `header:NAME` or `cookie:NAME`. A missing header or cookie
 * falls back to the client IP, as APISIX does.
 */
function hashKeyExtractor(spec: string): (ctx: HashKeySource) => string | undefined {
  if (spec === 'ip') return (ctx) => ctx.clientIp;
  if (spec === 'uri') return (ctx) => ctx.path + ctx.query;
  if (spec.startsWith('header:')) {
    const name = spec.slice(7).toLowerCase();
    return (ctx) => {
      const v = ctx.req.headers[name];
      return (Array.isArray(v) ? v[0] : v) || ctx.clientIp;
    };
  }
  const cookie = spec.slice(7);
  return (ctx) => readCookie(ctx.req.headers.cookie, cookie) ?? ctx.clientIp;
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}
