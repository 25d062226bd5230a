import type { RouteConfig } from '../../config/schema.js';
import type { CircuitBreaker } from '../../upstream/circuit-breaker.js';
import type { UpstreamHealth } from '../../upstream/health.js';
import type { RetryPolicy } from '../../upstream/retry.js';
import type { Upstream } from '../../upstream/upstream.js';
import type { DirectResponse } from '../direct-response.js';

/**
 * The interceptors an exchange passes each try through — circuit breaker,
 * retries and passive health — composed once per route (its upstream, with
 * the route's `retries:` if it has one) when the snapshot is compiled.
 * A route whose upstream has none of them gets `null`, and the exchange
 * pays one null check per hook for it.
 *
 * Each member is null when not configured. Its contract with the exchange
 * (exchange.ts), per try:
 * - breaker: `acquire()` before the try is dispatched (a rejection ends the
 *   exchange: 503 CIRCUIT_OPEN or `fallback`); `record(permit, ok)` when the
 *   response head or the failure arrives; `release` when the try is over.
 * - retry: before the first try, `budget.onRequest()` and the method and
 *   body rules; on a failure or response status, whether to pick again
 *   (exchange/retry.ts); its per-try `headersTimeout`.
 * - passive: each response status and each failure except a passed gRPC
 *   deadline (the client's clock, not the target's fault).
 */
export class UpstreamPolicies {
  readonly retry: RetryPolicy | null;
  /** The upstream whose live state (runtime/upstream-state.ts) holds the breaker and health: they outlive this snapshot. */
  private readonly upstream: Upstream;
  /** Sent instead of 503 CIRCUIT_OPEN when the breaker rejects; null without `circuitBreaker.fallback`. */
  readonly fallback: DirectResponse | null;
  /** undici `headersTimeout` of each try; undefined: the pool's own. */
  readonly headersTimeout: number | undefined;

  constructor(upstream: Upstream, retry: RetryPolicy | null) {
    this.upstream = upstream;
    this.retry = retry;
    this.fallback = upstream.breakerFallback;
    this.headersTimeout = retry !== null ? retry.headersTimeout : upstream.headersTimeout;
  }

  /** The live circuit breaker (kept across reloads); null when the current config has none. */
  get breaker(): CircuitBreaker | null {
    return this.upstream.breaker;
  }

  /** Where outcomes go for passive health (the live state's); null when the current config has none. */
  get passive(): UpstreamHealth | null {
    return this.upstream.passive;
  }
}

/** The policies of a route that proxies to `upstream`; null when it has none. */
export function compilePolicies(upstream: Upstream | undefined, route: RouteConfig): UpstreamPolicies | null {
  if (upstream === undefined) return null;
  const retry = upstream.retryPolicyFor(route);
  // Decided by this snapshot's config: the live state is configured from it only when the snapshot becomes current.
  if (upstream.config.circuitBreaker === undefined && retry === null && upstream.config.healthCheck?.passive === undefined) return null;
  return new UpstreamPolicies(upstream, retry);
}
