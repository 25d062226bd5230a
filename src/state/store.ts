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

/** A token bucket as stored: `tokens` at the instant `at` (epoch ms, the store's clock), not refilled since. */
export interface BucketEntry {
  /** The bucket's key without the prefix it was listed by. */
  key: string;
  /** Negative while the bucket is in debt (delay mode). */
  tokens: number;
  at: number;
}

/** A counter as stored. */
export interface CounterEntry {
  /** The counter's key without the prefix it was listed by. */
  key: string;
  value: number;
  /** Epoch ms (the store's clock) when the counter expires. */
  expiresAt: number;
}

/**
 * What a bounded enumeration found: at most `max` entries, `truncated`
 * when there were more or the store stopped looking before the end, and
 * `now`, the store's clock when it looked (epoch ms), to refill buckets by.
 */
export interface Listing<T> {
  entries: T[];
  truncated: boolean;
  now: number;
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
  /**
   * Read-only, for the admin API (GET /limits): the token buckets whose key
   * starts with `prefix`, at most `max` of them. Never changes a bucket.
   */
  listBuckets(prefix: string, max: number): Listing<BucketEntry> | Promise<Listing<BucketEntry>>;
  /** Read-only: the live counters whose key starts with `prefix`, at most `max` of them. */
  listCounters(prefix: string, max: number): Listing<CounterEntry> | Promise<Listing<CounterEntry>>;
  close(): Promise<void>;
  /** IANA time zone of day-based counters (consumer `qpd`); "UTC" when absent. */
  readonly timeZone?: string;
  /** The store's clock (epoch ms), injectable for tests; Date.now when absent. */
  readonly now?: () => number;
}
