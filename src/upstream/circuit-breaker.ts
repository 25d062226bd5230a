import type { CircuitBreakerConfig } from '../config/schemas/upstream-policy.js';

export type BreakerState = 'closed' | 'open' | 'half-open';

/** What `acquire` returns: a permit (> 0) or why the call is rejected (< 0). */
export const PERMIT = 1;
/** The one call let through while half-open; its outcome closes or re-opens the circuit. */
export const PROBE = 2;
export const REJECTED_OPEN = -1;
export const REJECTED_FULL = -2;

export interface BreakerOptions {
  /** Monotonic milliseconds; injectable for tests. */
  now?: () => number;
  /** Called on every state change. */
  onStateChange?: (from: BreakerState, to: BreakerState, reason: string) => void;
}

export interface BreakerView {
  state: BreakerState;
  inflight: number;
  /** Calls and failed calls in the rolling window. */
  calls: number;
  failures: number;
}

/**
 * A per-upstream circuit breaker with Hystrix semantics.
 *
 * - **closed**: calls go through; each call's outcome lands in a rolling
 *   window of `buckets` buckets covering `window` ms (old buckets are
 *   cleared as time moves on, so the counts never grow stale). When the
 *   window holds at least `volumeThreshold` calls and at least
 *   `errorPercent` % of them failed, the circuit opens.
 * - **open**: every call is rejected at once (`REJECTED_OPEN`) for
 *   `sleepWindow` ms.
 * - **half-open**: exactly one call (`PROBE`) is let through; the others
 *   are rejected. A successful probe closes the circuit (with a fresh
 *   window); a failed one opens it again for another `sleepWindow`. A probe
 *   that ends without an outcome (the client left first) lets the next
 *   call probe.
 *
 * Independently of the state, at most `maxConcurrent` calls (0 = no limit)
 * are in flight; more are rejected at once (`REJECTED_FULL`). Rejections are
 * not counted in the window: they say nothing about the upstream.
 *
 * Protocol per call: `acquire()`; if it returned a permit, `record(permit,
 * ok)` at most once when the outcome is known, then `release(permit,
 * recorded)` exactly once when the call is over.
 */
export class CircuitBreaker {
  config: CircuitBreakerConfig;
  private stateNow: BreakerState = 'closed';
  private openedAt = 0;
  private probing = false;
  private inflightNow = 0;
  private readonly now: () => number;
  private readonly onStateChange: ((from: BreakerState, to: BreakerState, reason: string) => void) | undefined;
  private bucketMs: number;
  private epochs: Float64Array;
  private calls: Uint32Array;
  private failures: Uint32Array;
  /** failing[status] === 1 when that response status counts as a failure. */
  private failing: Uint8Array;

  constructor(config: CircuitBreakerConfig, options: BreakerOptions = {}) {
    this.config = config;
    this.now = options.now ?? (() => performance.now());
    this.onStateChange = options.onStateChange;
    const n = config.buckets;
    this.bucketMs = config.window / n;
    this.epochs = new Float64Array(n).fill(-1);
    this.calls = new Uint32Array(n);
    this.failures = new Uint32Array(n);
    this.failing = new Uint8Array(600);
    for (const s of config.statuses) this.failing[s] = 1;
  }

  /**
   * New settings for a breaker kept across a reload. Its state (open,
   * half-open, closed), the calls in flight and the rolling window's counts
   * are kept: the new thresholds judge the counts it has, and an open
   * circuit stays open for the new `sleepWindow` from when it opened. A new
   * window shape (`window` or `buckets`) starts an empty window, since the
   * old buckets measured other time slices.
   */
  reconfigure(config: CircuitBreakerConfig): void {
    const shape = config.window !== this.config.window || config.buckets !== this.config.buckets;
    this.config = config;
    this.failing = new Uint8Array(600);
    for (const s of config.statuses) this.failing[s] = 1;
    if (!shape) return;
    const n = config.buckets;
    this.bucketMs = config.window / n;
    this.epochs = new Float64Array(n).fill(-1);
    this.calls = new Uint32Array(n);
    this.failures = new Uint32Array(n);
  }

  get state(): BreakerState {
    return this.stateNow;
  }

  get inflight(): number {
    return this.inflightNow;
  }

  /** Whether a response with this status is a failed call. */
  isFailure(status: number): boolean {
    return this.failing[status] === 1;
  }

  acquire(): number {
    if (this.stateNow === 'open') {
      if (this.now() - this.openedAt < this.config.sleepWindow) return REJECTED_OPEN;
      this.transition('half-open', `sleepWindow of ${this.config.sleepWindow}ms elapsed`);
    }
    if (this.stateNow === 'half-open') {
      if (this.probing) return REJECTED_OPEN;
      this.probing = true;
      this.inflightNow++;
      return PROBE;
    }
    const max = this.config.maxConcurrent;
    if (max > 0 && this.inflightNow >= max) return REJECTED_FULL;
    this.inflightNow++;
    return PERMIT;
  }

  /** The outcome of a call made with `permit`. */
  record(permit: number, ok: boolean): void {
    if (permit === PROBE) {
      this.probing = false;
      if (this.stateNow !== 'half-open') return;
      if (ok) {
        this.clearWindow();
        this.transition('closed', 'probe call succeeded');
      } else {
        this.openedAt = this.now();
        this.transition('open', 'probe call failed');
      }
      return;
    }
    const i = this.bucket();
    this.calls[i]!++;
    if (ok) return;
    this.failures[i]!++;
    if (this.stateNow !== 'closed') return;
    const { calls, failures } = this.sums();
    if (calls >= this.config.volumeThreshold && failures * 100 >= this.config.errorPercent * calls) {
      this.openedAt = this.now();
      this.transition(
        'open',
        `${failures} of ${calls} calls failed (${Math.round((failures * 100) / calls)}% >= ${this.config.errorPercent}%) in the last ${this.config.window}ms`,
      );
    }
  }

  /** The call made with `permit` is over; `recorded` says whether `record` was called for it. */
  release(permit: number, recorded: boolean): void {
    this.inflightNow--;
    if (permit === PROBE && !recorded) this.probing = false;
  }

  view(): BreakerView {
    const { calls, failures } = this.sums();
    return { state: this.stateNow, inflight: this.inflightNow, calls, failures };
  }

  private transition(to: BreakerState, reason: string): void {
    const from = this.stateNow;
    this.stateNow = to;
    this.onStateChange?.(from, to, reason);
  }

  /** The current bucket's index, cleared first if it last held an older time slice. */
  private bucket(): number {
    const epoch = Math.floor(this.now() / this.bucketMs);
    const n = this.epochs.length;
    const i = epoch % n;
    if (this.epochs[i] !== epoch) {
      this.epochs[i] = epoch;
      this.calls[i] = 0;
      this.failures[i] = 0;
    }
    return i;
  }

  private sums(): { calls: number; failures: number } {
    const epoch = Math.floor(this.now() / this.bucketMs);
    const n = this.epochs.length;
    let calls = 0;
    let failures = 0;
    for (let i = 0; i < n; i++) {
      const e = this.epochs[i]!;
      if (e > epoch - n && e <= epoch) {
        calls += this.calls[i]!;
        failures += this.failures[i]!;
      }
    }
    return { calls, failures };
  }

  private clearWindow(): void {
    this.epochs.fill(-1);
    this.calls.fill(0);
    this.failures.fill(0);
  }
}
