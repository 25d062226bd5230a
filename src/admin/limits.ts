import type { Config } from '../config/schema.js';
import type { RateLimitOptions } from '../config/schemas/middlewares.js';
import type { ConnectionMiddlewareConfig } from '../config/schemas/l4.js';
import { rateLimitPolicy } from '../middlewares/rate-limit.js';
import { connectionLimitPrefix } from '../l4/admission.js';
import { AUTH_MIDDLEWARES } from '../middlewares/registry.js';
import { QUOTA_KEYS } from '../middlewares/consumer-quota.js';
import type { BucketEntry, Listing, StateStore } from '../state/store.js';

/** The most keys listed per limit: keys are chosen by clients (an IP, a header value), so the answer is bounded. */
export const MAX_KEYS = 1000;
/** Longest key shown; a longer one (a long header value) is cut and ends with "…". */
const MAX_KEY_LENGTH = 256;

/** One tracked key of a token bucket (rate-limit, consumer qps): what a request would find now. */
export interface BucketUsage {
  key: string;
  /** Whole tokens left now (0 while the bucket is in debt). */
  remaining: number;
  /** The bucket's size (burst); null for a consumer no longer configured or without qps. */
  limit: number | null;
  /** When the bucket is full again (ISO 8601); a key is forgotten once it is. */
  resetAt: string;
}

/** One tracked key of a per-day counter (consumer qpd). */
export interface CounterUsage {
  key: string;
  /** The local date the counter is for (YYYY-MM-DD, in `state.timeZone`). */
  day: string;
  /** Requests counted so far on that day. */
  count: number;
  /** The consumer's qpd, or null for a consumer no longer configured. */
  limit: number | null;
  /** When the day ends and the count starts again (ISO 8601). */
  resetAt: string;
}

export interface LimitUsage<T> {
  keys: T[];
  /** More keys are tracked than listed (at most MAX_KEYS), or the store stopped looking before the end. */
  truncated: boolean;
}

export interface RouteRateLimit extends LimitUsage<BucketUsage> {
  route: string;
  middleware: 'rate-limit';
  /** The policy name of the RateLimit headers: the route name, `.2`, `.3`… for its later limits. */
  policy: string;
  /** What a bucket is per: route, ip, consumer or header:NAME. Keys read `ip:ADDRESS`, `c:CONSUMER`, `h:VALUE`, or "" for route. */
  per: string;
  rate: number;
  burst: number;
}

export interface ListenerRateLimit extends LimitUsage<BucketUsage> {
  listener: string;
  middleware: 'rate-limit';
  /** The index of the limit in the listener's `middlewares`. */
  index: number;
  /** ip: keys are client IPs; listener: one key, "*". */
  per: 'ip' | 'listener';
  rate: number;
  burst: number;
}

export interface LimitsReport {
  maxKeys: number;
  /** Every rate-limit of every route, in config order. */
  routes: RouteRateLimit[];
  /**
   * consumer-quota: consumers' qps buckets and qpd counters, keyed by
   * consumer id and shared by every route that identifies consumers
   * (`routes`), so listed once rather than per route.
   */
  consumerQuota: {
    middleware: 'consumer-quota';
    routes: string[];
    qps: LimitUsage<BucketUsage>;
    qpd: LimitUsage<CounterUsage>;
  };
  /** Connection rate limits of L4 listeners. */
  listeners: ListenerRateLimit[];
}

/**
 * GET /limits: the keys each limit tracks now in `store`, with their usage,
 * read-only (nothing is taken or counted). With the memory store and
 * `workers: N` this is the admin worker's own keys; with Redis, every
 * gateway's.
 */
export async function limitsReport(config: Config, store: StateStore, max = MAX_KEYS): Promise<LimitsReport> {
  const wall = Date.now();
  // One limit after the other: each is at most a bounded SCAN, never a burst of them at Redis.
  const routes: RouteRateLimit[] = [];
  for (const r of config.routes) {
    for (const m of r.middlewares) {
      if (m.name !== 'rate-limit') continue;
      const options = m.options as RateLimitOptions;
      const policy = rateLimitPolicy(r.name, r.middlewares, options);
      routes.push({
        route: r.name,
        middleware: 'rate-limit',
        policy: policy.name,
        per: options.key,
        rate: options.rate,
        burst: options.burst,
        ...buckets(await store.listBuckets(policy.prefix, max), () => options, wall),
      });
    }
  }
  const listeners: ListenerRateLimit[] = [];
  for (const l of config.listeners) {
    const middlewares: readonly ConnectionMiddlewareConfig[] = 'middlewares' in l ? l.middlewares : [];
    for (const [index, m] of middlewares.entries()) {
      if (!('rate-limit' in m)) continue;
      const o = m['rate-limit'];
      listeners.push({
        listener: l.name,
        middleware: 'rate-limit',
        index,
        per: o.key,
        rate: o.rate,
        burst: o.burst,
        ...buckets(await store.listBuckets(connectionLimitPrefix(l.name, index), max), () => o, wall),
      });
    }
  }
  const consumers = new Map(config.consumers.map((c) => [c.id, c]));
  const qps = buckets(
    await store.listBuckets(QUOTA_KEYS.qps, max),
    (id) => {
      const q = consumers.get(id)?.qps;
      return q === undefined ? undefined : { rate: q, burst: Math.max(1, q) };
    },
    wall,
  );
  const days = await store.listCounters(QUOTA_KEYS.qpd, max);
  const qpd: LimitUsage<CounterUsage> = {
    keys: days.entries.map((e): CounterUsage => {
      // `<consumer id>:<YYYY-MM-DD>` (see middlewares/consumer-quota.ts); ids hold no ":".
      const cut = e.key.lastIndexOf(':');
      const id = cut < 0 ? e.key : e.key.slice(0, cut);
      return {
        key: shown(id),
        day: cut < 0 ? '' : e.key.slice(cut + 1),
        count: e.value,
        limit: consumers.get(id)?.qpd ?? null,
        resetAt: new Date(wall + Math.max(0, e.expiresAt - days.now)).toISOString(),
      };
    }),
    truncated: days.truncated,
  };
  return {
    maxKeys: max,
    routes,
    consumerQuota: {
      middleware: 'consumer-quota',
      routes: config.routes.filter((r) => r.middlewares.some((m) => AUTH_MIDDLEWARES.has(m.name))).map((r) => r.name),
      qps,
      qpd,
    },
    listeners,
  };
}

/**
 * Buckets refilled to the store's `now` (the arithmetic of state/memory.ts),
 * reset times on this process's clock. `settings(key)`: the bucket's rate
 * and burst, or undefined when no longer configured (shown with limit null).
 */
function buckets(
  listing: Listing<BucketEntry>,
  settings: (key: string) => { rate: number; burst: number } | undefined,
  wall: number,
): LimitUsage<BucketUsage> {
  const keys = listing.entries.map((e): BucketUsage => {
    const s = settings(e.key);
    if (s === undefined) return { key: shown(e.key), remaining: e.tokens > 0 ? Math.floor(e.tokens) : 0, limit: null, resetAt: new Date(wall).toISOString() };
    const tokens = Math.min(s.burst, listing.now > e.at ? e.tokens + ((listing.now - e.at) * s.rate) / 1000 : e.tokens);
    const resetMs = Math.max(0, Math.ceil(((s.burst - tokens) * 1000) / s.rate));
    return { key: shown(e.key), remaining: tokens > 0 ? Math.floor(tokens) : 0, limit: s.burst, resetAt: new Date(wall + resetMs).toISOString() };
  });
  return { keys, truncated: listing.truncated };
}

function shown(key: string): string {
  return key.length <= MAX_KEY_LENGTH ? key : `${key.slice(0, MAX_KEY_LENGTH - 1)}…`;
}
