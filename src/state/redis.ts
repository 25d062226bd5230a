import { Redis } from 'ioredis';
import type { BucketEntry, CounterEntry, Listing, StateStore, TokenBucketResult } from './store.js';

/**
 * Token bucket, atomically in Redis. KEYS[1] is a hash { tk: tokens, ts: ms
 * of the last refill }; ARGV = rate (tokens/s), burst, cost, maxDelayMs.
 * The clock is the Redis server's (TIME), so every gateway sharing the
 * server refills the bucket alike whatever their own clocks say. The same
 * arithmetic as memory.ts: refill lazily, take `cost` if there, else (delay
 * mode) go into debt when the deficit is paid back within maxDelayMs.
 * Only admitted takes write; the key expires when the bucket would be full
 * again (+1 s), since a missing key reads as a full bucket.
 * Returns { allowed 0|1, remaining, retryAfterMs, resetMs, delayMs }.
 */
const TAKE_TOKEN = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local maxDelay = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local s = redis.call('HMGET', KEYS[1], 'tk', 'ts')
local tokens = tonumber(s[1])
local at = tonumber(s[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
elseif now > at then
  tokens = math.min(burst, tokens + (now - at) * rate / 1000)
  at = now
elseif tokens > burst then
  tokens = burst
end
local allowed, retry, delay = 0, 0, 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  local wait = math.ceil((cost - tokens) * 1000 / rate)
  if maxDelay > 0 and wait <= maxDelay then
    tokens = tokens - cost
    allowed = 1
    delay = wait
  else
    retry = wait
  end
end
local reset = math.ceil((burst - tokens) * 1000 / rate)
if allowed == 1 then
  redis.call('HSET', KEYS[1], 'tk', string.format('%.17g', tokens), 'ts', string.format('%.17g', at))
  redis.call('PEXPIRE', KEYS[1], reset + 1000)
end
local remaining = 0
if tokens > 0 then remaining = math.floor(tokens) end
return { allowed, remaining, retry, reset, delay }
`;

/** Counter: INCRBY, and PEXPIREAT ARGV[2] (epoch ms) when the key has no expiry yet. */
const INCREMENT = `
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
return v
`;

/** Redis TIME ([seconds, microseconds]) as epoch ms. */
function serverTime(reply: unknown): number {
  const [s, us] = reply as [string, string];
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

interface Scripts {
  porticoTakeToken(key: string, rate: number, burst: number, cost: number, maxDelayMs: number): Promise<number[]>;
  porticoIncrement(key: string, by: number, expiresAt: number): Promise<number>;
}

/** SCAN's COUNT hint, and the most SCAN calls one listing makes (so at most about 100,000 keys are looked at). */
const SCAN_COUNT = 1000;
const SCAN_CALLS = 100;

/** `text` with the glob characters of SCAN's MATCH (`*`, `?`, `[`, `]` and backslash) escaped by a backslash. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

export interface RedisStoreOptions {
  url: string;
  /** Prepended to every key (ioredis keyPrefix). */
  keyPrefix: string;
  /** Longest wait for one command (ioredis commandTimeout), ms. */
  timeoutMs: number;
  timeZone?: string;
}

/**
 * The Redis store: every call is one EVALSHA of a script above (ioredis
 * defineCommand loads it and falls back to EVAL on NOSCRIPT). The client
 * never queues: with no connection a command fails at once
 * (enableOfflineQueue false, no retries), a command without an answer fails
 * after `timeoutMs`, and the connection is re-established in the
 * background. FallbackStore (fallback.ts) turns those failures into
 * answers from memory.
 */
export class RedisStore implements StateStore {
  readonly client: Redis;
  readonly timeZone: string;
  private readonly scripts: Scripts;

  private readonly keyPrefix: string;

  constructor(options: RedisStoreOptions) {
    this.keyPrefix = options.keyPrefix;
    this.timeZone = options.timeZone ?? 'UTC';
    this.client = new Redis(options.url, {
      keyPrefix: options.keyPrefix,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.timeoutMs,
      connectTimeout: Math.max(1000, options.timeoutMs * 4),
      // Reconnect in the background: 50 ms, 100 ms, … then every second.
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times - 1, 5), 1000),
      autoResubscribe: false,
      autoResendUnfulfilledCommands: false,
    });
    // Connection errors are reported through command failures (and logged by
    // FallbackStore); without a listener ioredis would print each one.
    this.client.on('error', () => {});
    this.client.defineCommand('porticoTakeToken', { numberOfKeys: 1, lua: TAKE_TOKEN });
    this.client.defineCommand('porticoIncrement', { numberOfKeys: 1, lua: INCREMENT });
    this.scripts = this.client as unknown as Scripts;
  }

  async takeToken(key: string, rate: number, burst: number, cost = 1, maxDelayMs = 0): Promise<TokenBucketResult> {
    const r = await this.scripts.porticoTakeToken(key, rate, burst, cost, maxDelayMs);
    return { allowed: r[0] === 1, remaining: r[1]!, retryAfterMs: r[2]!, resetMs: r[3]!, delayMs: r[4]! };
  }

  increment(key: string, by: number, expiresAt: number): Promise<number> {
    return this.scripts.porticoIncrement(key, by, Math.ceil(expiresAt));
  }

  /** Buckets by SCAN (bounded, see SCAN_CALLS), then one pipeline of HMGET tk ts and the server's TIME. */
  async listBuckets(prefix: string, max: number): Promise<Listing<BucketEntry>> {
    const { keys, truncated } = await this.scan(prefix, max);
    const pipe = this.client.pipeline().time();
    for (const k of keys) pipe.hmget(k, 'tk', 'ts');
    const replies = await this.run(pipe);
    const entries: BucketEntry[] = [];
    keys.forEach((k, i) => {
      const [tk, ts] = (replies[i + 1] as (string | null)[] | null) ?? [];
      if (tk == null || ts == null || !Number.isFinite(Number(tk)) || !Number.isFinite(Number(ts))) return; // gone since the SCAN
      entries.push({ key: k.slice(prefix.length), tokens: Number(tk), at: Number(ts) });
    });
    return { entries, truncated, now: serverTime(replies[0]) };
  }

  /** Counters by SCAN (bounded), then one pipeline of GET and PTTL. */
  async listCounters(prefix: string, max: number): Promise<Listing<CounterEntry>> {
    const { keys, truncated } = await this.scan(prefix, max);
    const pipe = this.client.pipeline().time();
    for (const k of keys) pipe.get(k).pttl(k);
    const replies = await this.run(pipe);
    const now = serverTime(replies[0]);
    const entries: CounterEntry[] = [];
    keys.forEach((k, i) => {
      const value = replies[1 + 2 * i] as string | null;
      const ttl = replies[2 + 2 * i] as number | null;
      if (value === null || ttl === null || ttl < 0 || !/^-?\d+$/.test(value)) return; // gone since the SCAN, or not a counter of ours
      entries.push({ key: k.slice(prefix.length), value: Number(value), expiresAt: now + ttl });
    });
    return { entries, truncated, now };
  }

  /**
   * Up to `max` keys (without the store's keyPrefix) starting with `prefix`:
   * SCAN MATCH with COUNT, at most SCAN_CALLS calls. `truncated` when more
   * keys matched or the scan stopped before the end. ioredis does not
   * prefix SCAN's pattern nor strip its replies, so both are done here.
   */
  private async scan(prefix: string, max: number): Promise<{ keys: string[]; truncated: boolean }> {
    const match = `${escapeGlob(this.keyPrefix + prefix)}*`;
    const found = new Set<string>();
    let cursor = '0';
    for (let calls = 0; calls < SCAN_CALLS; calls++) {
      const [next, keys] = await this.client.scan(cursor, 'MATCH', match, 'COUNT', SCAN_COUNT);
      for (const k of keys) {
        if (found.size > max) break;
        found.add(k.slice(this.keyPrefix.length));
      }
      cursor = next;
      if (cursor === '0' || found.size > max) break;
    }
    const keys = [...found];
    const truncated = keys.length > max || cursor !== '0';
    return { keys: keys.slice(0, max), truncated };
  }

  /**
   * The pipeline's replies; a failed TIME (the first command) fails the
   * listing, a failed read of one key (say WRONGTYPE, a key of someone
   * else's under the prefix) reads as that key being absent.
   */
  private async run(pipe: ReturnType<Redis['pipeline']>): Promise<unknown[]> {
    const results = (await pipe.exec()) ?? [];
    if (results.length === 0 || results[0]![0]) throw results[0]?.[0] ?? new Error('redis answered no TIME');
    return results.map(([err, value]) => (err ? null : value));
  }

  /** Whether the connection is up and ready for commands. */
  get ready(): boolean {
    return this.client.status === 'ready';
  }

  ping(): Promise<string> {
    return this.client.ping();
  }

  async close(): Promise<void> {
    this.client.disconnect(false);
  }
}
