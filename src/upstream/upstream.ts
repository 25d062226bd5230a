import type { DiscoveryHealth } from '../discovery/discovered-targets.js';
import { isIP } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import type tls from 'node:tls';
import type { RouteConfig, UpstreamConfig } from '../config/schema.js';
import { compileDirectResponse, type DirectResponse } from '../http/direct-response.js';
import type { CircuitBreaker, BreakerView } from './circuit-breaker.js';
import type { UpstreamHealth, UpstreamHealthView } from './health.js';
import type { TargetPool } from './pool.js';
import { loadUpstreamTls } from '../tls/upstream-tls.js';
import { RetryPolicy, smallestTimeout } from './retry.js';
import type { Target } from './target.js';
import type { TargetRegistry } from '../runtime/target-registry.js';
import type { UpstreamPlan, UpstreamState } from '../runtime/upstream-state.js';

export interface UpstreamHealthReport extends UpstreamHealthView {
  circuitBreaker: BreakerView | null;
  /** The `discovery:` block's state (absent without one). */
  discovery?: DiscoveryHealth;
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
 * A named pool of targets as one snapshot compiled it from one
 * `upstreams[]` entry: its settings (TLS, pools, timeouts, hash key,
 * breaker fallback, retry policies) and a handle on the upstream's live
 * state (runtime/upstream-state.ts), which holds what lives across
 * reloads: the target set, the picker, health, the breaker and the retry
 * budgets. Immutable once built; the live state is configured from `plan`
 * when the snapshot becomes current.
 */
export class Upstream {
  readonly name: string;
  readonly config: UpstreamConfig;
  /** What the live state is configured with when this snapshot becomes current. */
  readonly plan: UpstreamPlan;
  /** The live state (shared with every snapshot that has an upstream of this name). */
  readonly state: UpstreamState;
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
  /** The upstream is reached over TLS and `insecureSkipVerify` is set (the compiler warns). */
  readonly insecureTls: boolean;
  /** node:tls client options when the upstream has `tls:` (L4 listeners originate TLS with them); null otherwise. */
  readonly tlsOptions: tls.ConnectionOptions | null;
  private readonly hashKeyOf: ((ctx: HashKeySource) => string | undefined) | null;
  private readonly routePolicies = new Map<RouteConfig, RetryPolicy | null>();

  /** `where` is the config path of this upstream (`upstreams[2]`), for file errors in its `tls:`. */
  constructor(config: UpstreamConfig, registry: TargetRegistry, where = `upstreams.${config.name}`) {
    this.name = config.name;
    this.config = config;
    this.state = registry.upstream(config.name);
    const tls = config.tls === undefined ? undefined : loadUpstreamTls(config.tls, `${where}.tls`);
    this.insecureTls = tls?.insecure ?? false;
    this.tlsOptions = tls?.options ?? null;
    const serverName = config.tls?.serverName;
    this.plan = {
      config,
      pool: {
        protocol: config.protocol,
        tls,
        connectTimeout: config.timeouts.connect,
        responseTimeout: config.timeouts.response,
        idleTimeout: config.timeouts.idle,
        maxConnections: config.maxConnections,
      },
      // https HTTP/1.1: the configured serverName, else the target's host name (no SNI for an IP, RFC 6066 §3).
      serverName: tls !== undefined && config.protocol === 'http1' ? (host) => serverName ?? (isIP(host) === 0 && host !== '' ? host : undefined) : () => undefined,
      // Checks speak TLS like the traffic does (gRPC checks: h2 over TLS, or h2c).
      healthTransport: { tls: config.protocol === 'h2c' ? undefined : config.protocol === 'h2' ? (tls?.options ?? {}) : tls?.options },
    };
    this.hashKeyOf = config.balancer === 'consistent-hash' ? hashKeyExtractor(config.hashKey) : null;
    this.breakerFallback = config.circuitBreaker?.fallback === undefined ? null : compileDirectResponse(config.circuitBreaker.fallback);
    this.headersTimeout = this.attemptTimeout(0);
    this.retry = config.retries === undefined ? null : this.compileRetry(config.retries, 'upstream');
    this.guarded = config.circuitBreaker !== undefined || this.retry !== null;
  }

  /** Every target of the upstream now (weight 0 included), from the live state. */
  get targets(): readonly Target[] {
    return this.state.targets;
  }

  /** The circuit breaker (live: its state survives reloads); null without `circuitBreaker`. */
  get breaker(): CircuitBreaker | null {
    return this.state.breaker;
  }

  /** Where the proxy reports each exchange's outcome; null without `healthCheck.passive`. */
  get passive(): UpstreamHealth | null {
    return this.state.passive;
  }

  /** Picks a target for this request; undefined when none is available. */
  pick(ctx: HashKeySource): Target | undefined {
    return this.state.picker(this.hashKeyOf === null ? undefined : this.hashKeyOf(ctx));
  }

  /** Picks a target for a retry: one not in `tried` when there is one. */
  pickOther(ctx: HashKeySource, tried: readonly Target[]): Target | undefined {
    return this.pickAvoiding(this.hashKeyOf === null ? undefined : this.hashKeyOf(ctx), tried);
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
    for (const t of this.state.pickable) if (!tried.includes(t)) return true;
    return false;
  }

  /**
   * Picks a target for a connection (L4 listeners), avoiding `tried` when
   * another is available. Consistent hashing uses the client IP whatever
   * `hashKey` says: a connection has no URI, header or cookie.
   */
  pickForConnection(clientIp: string, tried: readonly Target[] = []): Target | undefined {
    const key = this.hashKeyOf === null ? undefined : clientIp;
    if (tried.length === 0) return this.state.picker(key);
    return this.pickAvoiding(key, tried);
  }

  private pickAvoiding(key: string | undefined, tried: readonly Target[]): Target | undefined {
    const picker = this.state.picker;
    for (let i = 0; i < 3; i++) {
      const t = picker(key);
      if (t === undefined || !tried.includes(t)) return t;
    }
    // The balancer keeps choosing tried targets (consistent-hash always does): take the first untried one.
    for (const t of this.state.pickable) if (!tried.includes(t)) return t;
    return picker(key);
  }

  /** The keep-alive pool to send `target`'s requests through. */
  poolFor(target: Target): TargetPool {
    return target.pool!;
  }

  /** The TLS server name to send to `target` (https HTTP/1.1 upstreams), or undefined. */
  serverNameFor(target: Target): string | undefined {
    return target.serverName;
  }

  /** The retry policy for requests of `route` to this upstream (the route's own `retries` wins); null for none. */
  retryPolicyFor(route: RouteConfig): RetryPolicy | null {
    if (route.retries === undefined) return this.retry;
    let p = this.routePolicies.get(route);
    if (p === undefined) {
      p = this.compileRetry(route.retries, `route:${route.name}`);
      this.routePolicies.set(route, p);
    }
    return p;
  }

  /** A read-only view of target health and the breaker, for the admin API. */
  health(): UpstreamHealthReport {
    const view: UpstreamHealthView = this.state.health?.view() ?? {
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
    const discovery = this.state.discoveryHealth();
    return { ...view, circuitBreaker: this.breaker?.view() ?? null, ...(discovery !== undefined ? { discovery } : {}) };
  }

  /** A retry policy whose budget is the live one kept under `budgetKey`. */
  private compileRetry(config: NonNullable<UpstreamConfig['retries']>, budgetKey: string): RetryPolicy {
    return new RetryPolicy(config, this.attemptTimeout(config.perTryTimeout), Math.random, this.state.budget(budgetKey, config));
  }

  private attemptTimeout(perTry: number): number | undefined {
    const response = this.config.timeouts.response;
    const ms = smallestTimeout(response, perTry, this.config.circuitBreaker?.timeout ?? 0);
    return ms === response ? undefined : ms;
  }
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
