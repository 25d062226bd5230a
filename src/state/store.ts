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
  /** Whole tokens left after this call (0 while the bucket is in debt). */
  remaining: number;
  /** When not allowed: ms until `cost` tokens are available. Otherwise 0. */
  retryAfterMs: number;
  /** ms until the bucket is full again. */
  resetMs: number;
  /**
   * When allowed on credit (see `maxDelayMs` of takeToken): ms the caller
   * must wait before going on, the time the bucket needs to pay the debt
   * back. 0 or absent otherwise.
   */
  delayMs?: number;
}

export interface StateStore {
  /**
   * Token bucket `key`: refills `rate` tokens per second up to `burst`;
   * takes `cost` (default 1) if available. With `maxDelayMs` > 0 the bucket
   * may go into debt: if the tokens will be there within `maxDelayMs`, they
   * are taken now and the result says how long to wait (`delayMs`).
   */
  takeToken(key: string, rate: number, burst: number, cost?: number, maxDelayMs?: number): TokenBucketResult | Promise<TokenBucketResult>;
  /**
   * Optional, for stores that answer synchronously: the tokens bucket `key`
   * holds now (refilled; negative while in debt; `burst` for a bucket never
   * used), without taking any. Lets a limit report its state on the response
   * without keeping per-request data.
   */
  peekTokens?(key: string, rate: number, burst: number): number;
  /** Adds `by` to counter `key`, which expires at `expiresAt` (epoch ms); returns the new total. */
  increment(key: string, by: number, expiresAt: number): number | Promise<number>;
  close(): Promise<void>;
  /** IANA time zone of day-based counters (consumer `qpd`); "UTC" when absent. */
  readonly timeZone?: string;
  /** The store's clock (epoch ms), injectable for tests; Date.now when absent. */
  readonly now?: () => number;
}
