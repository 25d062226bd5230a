import type { StateStore, TokenBucketResult } from './store.js';

interface Bucket {
  tokens: number;
  /** ms timestamp of the last refill. */
  at: number;
  rate: number;
  burst: number;
}

/**
 * The in-process store (the embedded default). Token buckets refill lazily
 * on each take; buckets that are full again and expired counters are swept
 * every `sweepMs`, so memory follows the set of active keys.
 */
export class MemoryStore implements StateStore {
  private readonly buckets = new Map<string, Bucket>();
  private readonly counters = new Map<string, { value: number; expiresAt: number }>();
  private readonly timer: NodeJS.Timeout;
  private readonly now: () => number;

  constructor(options: { sweepMs?: number; now?: () => number } = {}) {
    this.now = options.now ?? Date.now;
    this.timer = setInterval(() => this.sweep(), options.sweepMs ?? 10_000).unref();
  }

  takeToken(key: string, rate: number, burst: number, cost = 1): TokenBucketResult {
    const now = this.now();
    let b = this.buckets.get(key);
    if (b === undefined) {
      b = { tokens: burst, at: now, rate, burst };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(burst, b.tokens + ((now - b.at) * rate) / 1000);
      b.at = now;
      b.rate = rate;
      b.burst = burst;
    }
    const allowed = b.tokens >= cost;
    if (allowed) b.tokens -= cost;
    return {
      allowed,
      remaining: Math.floor(b.tokens),
      retryAfterMs: allowed ? 0 : Math.ceil(((cost - b.tokens) * 1000) / rate),
      resetMs: Math.ceil(((burst - b.tokens) * 1000) / rate),
    };
  }

  increment(key: string, by: number, expiresAt: number): number {
    const now = this.now();
    let c = this.counters.get(key);
    if (c === undefined || c.expiresAt <= now) {
      c = { value: 0, expiresAt };
      this.counters.set(key, c);
    }
    c.value += by;
    return c.value;
  }

  private sweep(): void {
    const now = this.now();
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((now - b.at) * b.rate) / 1000 >= b.burst) this.buckets.delete(k);
    }
    for (const [k, c] of this.counters) if (c.expiresAt <= now) this.counters.delete(k);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
  }
}
