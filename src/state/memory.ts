import type { BucketEntry, CounterEntry, Listing, StateStore, TokenBucketResult } from './store.js';

interface Bucket {
  /** May be negative: a bucket in debt (delay mode). */
  tokens: number;
  /** ms timestamp of the last refill. */
  at: number;
  rate: number;
  burst: number;
}

/**
 * The in-process store (the embedded default). Token buckets refill lazily
 * on each take; buckets that are full again and expired counters are swept
 * every `sweepMs`, so memory follows the set of active keys. Every call is
 * synchronous: no promise is allocated on the hot path.
 */
export class MemoryStore implements StateStore {
  private readonly buckets = new Map<string, Bucket>();
  private readonly counters = new Map<string, { value: number; expiresAt: number }>();
  private readonly timer: NodeJS.Timeout;
  readonly now: () => number;
  readonly timeZone: string;

  constructor(options: { sweepMs?: number; now?: () => number; timeZone?: string } = {}) {
    this.now = options.now ?? Date.now;
    this.timeZone = options.timeZone ?? 'UTC';
    this.timer = setInterval(() => this.sweep(), options.sweepMs ?? 10_000).unref();
  }

  takeToken(key: string, rate: number, burst: number, cost = 1, maxDelayMs = 0): TokenBucketResult {
    const now = this.now();
    let b = this.buckets.get(key);
    if (b === undefined) {
      b = { tokens: burst, at: now, rate, burst };
      this.buckets.set(key, b);
    } else {
      if (now > b.at) {
        b.tokens = Math.min(burst, b.tokens + ((now - b.at) * rate) / 1000);
        b.at = now;
      } else if (b.tokens > burst) {
        b.tokens = burst;
      }
      b.rate = rate;
      b.burst = burst;
    }
    return take(b, rate, burst, cost, maxDelayMs);
  }

  peekTokens(key: string, rate: number, burst: number): number {
    const b = this.buckets.get(key);
    if (b === undefined) return burst;
    const now = this.now();
    return Math.min(burst, now > b.at ? b.tokens + ((now - b.at) * rate) / 1000 : b.tokens);
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

  /** Iterates the map: the cost follows every key held, not only the prefix's (an admin read, never on the request path). */
  listBuckets(prefix: string, max: number): Listing<BucketEntry> {
    const entries: BucketEntry[] = [];
    let truncated = false;
    for (const [k, b] of this.buckets) {
      if (!k.startsWith(prefix)) continue;
      if (entries.length >= max) {
        truncated = true;
        break;
      }
      entries.push({ key: k.slice(prefix.length), tokens: b.tokens, at: b.at });
    }
    return { entries, truncated, now: this.now() };
  }

  listCounters(prefix: string, max: number): Listing<CounterEntry> {
    const now = this.now();
    const entries: CounterEntry[] = [];
    let truncated = false;
    for (const [k, c] of this.counters) {
      if (!k.startsWith(prefix) || c.expiresAt <= now) continue;
      if (entries.length >= max) {
        truncated = true;
        break;
      }
      entries.push({ key: k.slice(prefix.length), value: c.value, expiresAt: c.expiresAt });
    }
    return { entries, truncated, now };
  }

  /** Number of live buckets and counters (for tests and the admin API). */
  get size(): { buckets: number; counters: number } {
    return { buckets: this.buckets.size, counters: this.counters.size };
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

/**
 * The decision on a refilled bucket; the same arithmetic as the Redis
 * script in redis.ts. A request that finds too few tokens is admitted on
 * credit when the deficit is paid back within `maxDelayMs`.
 */
function take(b: Bucket, rate: number, burst: number, cost: number, maxDelayMs: number): TokenBucketResult {
  const before = b.tokens;
  let allowed = false;
  let retryAfterMs = 0;
  let delayMs = 0;
  if (before >= cost) {
    b.tokens = before - cost;
    allowed = true;
  } else {
    const waitMs = Math.ceil(((cost - before) * 1000) / rate);
    if (maxDelayMs > 0 && waitMs <= maxDelayMs) {
      b.tokens = before - cost;
      allowed = true;
      delayMs = waitMs;
    } else {
      retryAfterMs = waitMs;
    }
  }
  return {
    allowed,
    remaining: b.tokens > 0 ? Math.floor(b.tokens) : 0,
    retryAfterMs,
    resetMs: Math.ceil(((burst - b.tokens) * 1000) / rate),
    delayMs,
  };
}
