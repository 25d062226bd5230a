import type { ErrorCode } from '../errors.js';
import type { RetriesConfig } from '../config/schemas/upstream-policy.js';

/**
 * Connect failover, on by default and apart from `retries`: a request
 * whose target refused the connection, was unreachable or did not accept
 * it within `timeouts.connect` reached nothing, so it is sent to a target
 * not tried yet, whatever its method, without backoff, at most this many
 * times (nginx's `proxy_next_upstream error timeout`, bounded like its
 * `proxy_next_upstream_tries`). It does not take from the retry budget:
 * a failed connect put no load on the upstream. Passive health and the
 * circuit breaker still see each failed try.
 */
export const CONNECT_FAILOVERS = 3;

/** RFC 9110 §9.2.2: methods whose repetition has the same effect as one request. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/**
 * Limits retries to a share of the requests over a sliding window
 * (`budgetPercent` of the requests seen, or `budgetMinRetries`, whichever is
 * more), so retries cannot multiply the load on an upstream that is already
 * failing. The window is ten buckets of `windowMs / 10`.
 */
export class RetryBudget {
  private readonly percent: number;
  private readonly minRetries: number;
  private readonly bucketMs: number;
  private readonly now: () => number;
  private readonly epochs = new Float64Array(10).fill(-1);
  private readonly requests = new Uint32Array(10);
  private readonly retries = new Uint32Array(10);

  constructor(percent: number, minRetries: number, windowMs: number, now: () => number = () => performance.now()) {
    this.percent = percent;
    this.minRetries = minRetries;
    this.bucketMs = windowMs / 10;
    this.now = now;
  }

  /** Counts one request that may be retried. */
  onRequest(): void {
    this.requests[this.bucket()]!++;
  }

  /** Takes one retry from the budget; false when the budget is spent. */
  tryRetry(): boolean {
    const epoch = Math.floor(this.now() / this.bucketMs);
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < 10; i++) {
      const e = this.epochs[i]!;
      if (e > epoch - 10 && e <= epoch) {
        requests += this.requests[i]!;
        retries += this.retries[i]!;
      }
    }
    if (retries >= Math.max(this.minRetries, (requests * this.percent) / 100)) return false;
    this.retries[this.bucket()]!++;
    return true;
  }

  private bucket(): number {
    const epoch = Math.floor(this.now() / this.bucketMs);
    const i = epoch % 10;
    if (this.epochs[i] !== epoch) {
      this.epochs[i] = epoch;
      this.requests[i] = 0;
      this.retries[i] = 0;
    }
    return i;
  }
}

/**
 * A compiled `retries:` block for one upstream: what is retried, how often,
 * how long each try may wait for a response head, and the budget. Built
 * once (per upstream, and per route that overrides the upstream's block).
 */
export class RetryPolicy {
  readonly config: RetriesConfig;
  /** Retries after the first try. */
  readonly attempts: number;
  readonly bufferBytes: number;
  /**
   * undici `headersTimeout` for each try: the smallest of timeouts.response,
   * perTryTimeout and the breaker's timeout (0 = none of them); undefined
   * when that is the pool's own value.
   */
  readonly headersTimeout: number | undefined;
  readonly budget: RetryBudget;
  private readonly onConnectFailure: boolean;
  private readonly onReset: boolean;
  private readonly onTimeout: boolean;
  private readonly statuses: Uint8Array;
  private readonly random: () => number;

  /** `budget`: the live budget to take retries from (kept across reloads by the upstream's state); a new one when absent. */
  constructor(config: RetriesConfig, headersTimeout: number | undefined, random: () => number = Math.random, budget?: RetryBudget) {
    this.config = config;
    this.attempts = config.attempts;
    this.bufferBytes = config.retryBufferBytes;
    this.headersTimeout = headersTimeout;
    this.budget = budget ?? new RetryBudget(config.budgetPercent, config.budgetMinRetries, config.budgetWindow);
    this.onConnectFailure = config.on.includes('connect-failure');
    this.onReset = config.on.includes('reset');
    this.onTimeout = config.on.includes('timeout');
    this.statuses = new Uint8Array(600);
    for (const c of config.on) if (typeof c === 'number') this.statuses[c] = 1;
    this.random = random;
  }

  /** Whether a request with this method may be retried at all. */
  allowsMethod(method: string): boolean {
    return this.config.retryNonIdempotent || IDEMPOTENT.has(method);
  }

  retriesStatus(status: number): boolean {
    return this.statuses[status] === 1;
  }

  /** Whether a failure before any response byte, classified as `code`, is retried. */
  retriesError(code: ErrorCode): boolean {
    switch (code) {
      case 'UPSTREAM_CONNECT_REFUSED':
      case 'UPSTREAM_CONNECT_TIMEOUT':
        return this.onConnectFailure;
      case 'UPSTREAM_RESET':
        return this.onReset;
      case 'UPSTREAM_RESPONSE_TIMEOUT':
        return this.onTimeout;
      default:
        return false;
    }
  }

  /**
   * Delay before retry number `n` (1-based): exponential from `backoff.base`,
   * capped at `backoff.max`, with "equal jitter" (a uniform pick in the upper
   * half), so concurrent retries spread out but still back off.
   */
  backoffMs(n: number): number {
    const { base, max } = this.config.backoff;
    const ceiling = Math.min(max, base * 2 ** (n - 1));
    return ceiling / 2 + this.random() * (ceiling / 2);
  }
}

/** The per-try response-head timeout: the smallest non-zero of the given ones (0 = none). */
export function smallestTimeout(...ms: number[]): number {
  let out = 0;
  for (const v of ms) if (v > 0 && (out === 0 || v < out)) out = v;
  return out;
}
