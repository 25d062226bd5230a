import type { Logger } from 'pino';
import { MemoryStore } from './memory.js';
import type { RedisStore } from './redis.js';
import type { BucketEntry, CounterEntry, Listing, StateStore, TokenBucketResult } from './store.js';

/** While Redis is considered down, how often a PING checks whether it answers again. */
const PROBE_MS = 500;

/**
 * Redis first, the process's own memory when Redis cannot answer: when the
 * connection is down, a command fails, or a command takes longer than the
 * store's timeout, that request and the following ones are answered by an
 * in-process MemoryStore, so a dead or hung Redis never blocks traffic.
 * Limits then hold per gateway process instead of across all of them.
 *
 * The switch is logged once (warn), and once again when Redis is back
 * (its connection becomes ready, or a PING answers after a timeout).
 */
export class FallbackStore implements StateStore {
  readonly timeZone: string;
  private readonly memory: MemoryStore;
  private useRedis = false;
  /** A fallback was logged and its recovery not yet. */
  private fellBack = false;
  private probe: NodeJS.Timeout | undefined;
  private probing = false;
  private closed = false;

  constructor(
    private readonly redis: RedisStore,
    private readonly logger: Logger,
    options: { timeZone?: string; memory?: MemoryStore } = {},
  ) {
    this.timeZone = options.timeZone ?? redis.timeZone;
    this.memory = options.memory ?? new MemoryStore({ timeZone: this.timeZone });
    const client = redis.client;
    client.on('ready', () => this.up());
    client.on('error', (err: Error) => this.down(err));
    client.on('close', () => this.down(new Error('connection closed')));
    if (redis.ready) this.up();
  }

  /** Whether calls currently go to Redis (false: answered from memory). */
  get usingRedis(): boolean {
    return this.useRedis;
  }

  takeToken(key: string, rate: number, burst: number, cost = 1, maxDelayMs = 0): TokenBucketResult | Promise<TokenBucketResult> {
    if (!this.useRedis) return this.memory.takeToken(key, rate, burst, cost, maxDelayMs);
    return this.redis.takeToken(key, rate, burst, cost, maxDelayMs).then(undefined, (err: unknown) => {
      this.down(err);
      return this.memory.takeToken(key, rate, burst, cost, maxDelayMs);
    });
  }

  increment(key: string, by: number, expiresAt: number): number | Promise<number> {
    if (!this.useRedis) return this.memory.increment(key, by, expiresAt);
    return this.redis.increment(key, by, expiresAt).then(undefined, (err: unknown) => {
      this.down(err);
      return this.memory.increment(key, by, expiresAt);
    });
  }

  /** From whichever store answers the limits now: Redis, or the memory store while Redis is down. */
  listBuckets(prefix: string, max: number): Listing<BucketEntry> | Promise<Listing<BucketEntry>> {
    if (!this.useRedis) return this.memory.listBuckets(prefix, max);
    return this.redis.listBuckets(prefix, max).then(undefined, (err: unknown) => {
      this.down(err);
      return this.memory.listBuckets(prefix, max);
    });
  }

  listCounters(prefix: string, max: number): Listing<CounterEntry> | Promise<Listing<CounterEntry>> {
    if (!this.useRedis) return this.memory.listCounters(prefix, max);
    return this.redis.listCounters(prefix, max).then(undefined, (err: unknown) => {
      this.down(err);
      return this.memory.listCounters(prefix, max);
    });
  }

  private up(): void {
    if (this.closed || this.useRedis) return;
    this.useRedis = true;
    this.stopProbe();
    if (this.fellBack) {
      this.fellBack = false;
      this.logger.warn('state store: redis is reachable again; limits and counters are shared through it again');
    } else {
      this.logger.info('state store: connected to redis');
    }
  }

  private down(err: unknown): void {
    if (this.closed) return;
    this.useRedis = false;
    if (!this.fellBack) {
      this.fellBack = true;
      this.logger.warn(
        { err: err instanceof Error ? err.message : String(err) },
        'state store: redis unavailable; using the in-process memory store until it is back (limits are per process meanwhile)',
      );
    }
    // A connection that is still "ready" but did not answer (a hung server)
    // sends no new ready event: probe it.
    this.startProbe();
  }

  private startProbe(): void {
    if (this.probe !== undefined) return;
    this.probe = setInterval(() => {
      if (this.probing || !this.redis.ready) return;
      this.probing = true;
      this.redis.ping().then(
        () => {
          this.probing = false;
          this.up();
        },
        () => {
          this.probing = false;
        },
      );
    }, PROBE_MS).unref();
  }

  private stopProbe(): void {
    if (this.probe !== undefined) clearInterval(this.probe);
    this.probe = undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.useRedis = false;
    this.stopProbe();
    await this.redis.close();
    await this.memory.close();
  }
}
