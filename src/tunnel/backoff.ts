/**
 * The agent's reconnect schedule (tunnel spec, "Reconnect"): a few fast
 * retries, then exponential backoff with full jitter up to a cap.
 *
 * Delay n (counting from 0 since the last reset):
 *   - n < fastRetries: `initialMs` (a server restart or a brief network
 *     blip is retried promptly);
 *   - then, with k = n − fastRetries + 1 (1, 2, 3, …), the ceiling is
 *     min(maxMs, initialMs · 2^k) and the delay is drawn uniformly from
 *     [initialMs, ceiling] ("full jitter", as in the AWS Architecture Blog
 *     "Exponential Backoff And Jitter", with the floor at `initialMs`
 *     instead of 0 so that the schedule never degenerates to a busy loop,
 *     whatever `random` returns).
 * Every delay is therefore in [initialMs, maxMs]: never 0, never above the
 * cap. Once the ceiling reaches maxMs it stays there until reset().
 */
export interface BackoffOptions {
  /** First delay and floor of every delay, ms (> 0). */
  initialMs: number;
  /** Cap of every delay, ms (≥ initialMs). */
  maxMs: number;
  /** Delays of exactly `initialMs` before backing off; default 3. */
  fastRetries?: number;
  /** Uniform in [0, 1); default Math.random. Out-of-range answers are clamped. */
  random?: () => number;
}

export class Backoff {
  readonly #initial: number;
  readonly #max: number;
  readonly #fast: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor({ initialMs, maxMs, fastRetries = 3, random = Math.random }: BackoffOptions) {
    if (!Number.isFinite(initialMs) || initialMs <= 0) throw new RangeError(`backoff initialMs must be a positive number of ms, got ${initialMs}`);
    if (!Number.isFinite(maxMs) || maxMs < initialMs) throw new RangeError(`backoff maxMs must be at least initialMs (${initialMs}), got ${maxMs}`);
    if (!Number.isSafeInteger(fastRetries) || fastRetries < 0) throw new RangeError(`backoff fastRetries must be a whole number ≥ 0, got ${fastRetries}`);
    this.#initial = initialMs;
    this.#max = maxMs;
    this.#fast = fastRetries;
    this.#random = random;
  }

  /** Delays handed out since the last reset. */
  get attempts(): number {
    return this.#attempt;
  }

  /** The next delay in ms, in [initialMs, maxMs]. */
  next(): number {
    const n = this.#attempt;
    // Saturate instead of growing without bound (a process that retries for years).
    if (this.#attempt < Number.MAX_SAFE_INTEGER) this.#attempt++;
    if (n < this.#fast) return this.#initial;
    // 2^k overflows to Infinity past k = 1023; min() then gives the cap, as it should.
    const k = Math.min(n - this.#fast + 1, 1100);
    const ceiling = Math.min(this.#max, this.#initial * 2 ** k);
    let r = this.#random();
    if (!(r >= 0)) r = 0; // NaN and negatives
    if (r > 1) r = 1;
    return Math.min(this.#max, this.#initial + r * (ceiling - this.#initial));
  }

  /** Back to the first delay: call after a session was established. */
  reset(): void {
    this.#attempt = 0;
  }
}
