import { Redis } from 'ioredis';
import type { StateStore, TokenBucketResult } from './store.js';

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

interface Scripts {
  porticoTakeToken(key: string, rate: number, burst: number, cost: number, maxDelayMs: number): Promise<number[]>;
  porticoIncrement(key: string, by: number, expiresAt: number): Promise<number>;
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

  constructor(options: RedisStoreOptions) {
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
