/**
 * Shared state for limits and counters, behind one interface (DESIGN.md:
 * "Shared state goes through one interface"): an in-process store (the
 * default) and a Redis store for several workers or instances. HTTP rate
 * limits, quotas and (later) L4 connection limits all use it.
 *
 * Memory implementations return plain values so the hot path allocates no
 * promise; shared implementations return promises. Callers handle both.
 */
export interface TokenBucketResult {
  /** Whether the tokens were taken. */
  allowed: boolean;
  /** Whole tokens left after this call. */
  remaining: number;
  /** When not allowed: ms until `cost` tokens are available. Otherwise 0. */
  retryAfterMs: number;
  /** ms until the bucket is full again. */
  resetMs: number;
}

export interface StateStore {
  /** Token bucket `key`: refills `rate` tokens per second up to `burst`; takes `cost` (default 1) if available. */
  takeToken(key: string, rate: number, burst: number, cost?: number): TokenBucketResult | Promise<TokenBucketResult>;
  /** Adds `by` to counter `key`, which expires at `expiresAt` (epoch ms); returns the new total. */
  increment(key: string, by: number, expiresAt: number): number | Promise<number>;
  close(): Promise<void>;
}
