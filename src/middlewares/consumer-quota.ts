import { GatewayError } from '../errors.js';
import { dayWindow, type DayWindow } from '../state/day.js';
import type { TokenBucketResult } from '../state/store.js';
import type { RequestContext, Middleware } from '../snapshot/snapshot.js';
import type { MiddlewareCompileContext } from '../snapshot/snapshot.js';

const DAY_S = 86_400;

/** Where quotas live in the state store: `<qps><consumer id>` buckets and `<qpd><consumer id>:<YYYY-MM-DD>` counters. */
export const QUOTA_KEYS = { qps: 'quota:qps:', qpd: 'quota:qpd:' } as const;

/**
 * Consumer quotas, added by the compiler right after a route's auth
 * middlewares (see snapshot/compile.ts): once a consumer is identified, its `qps`
 * (a token bucket of rate qps and burst max(1, qps)) and its `qpd`
 * (requests per calendar day in `state.timeZone`) are checked. Both are
 * keyed by consumer id only, so they hold across every route and, with
 * Redis, across every gateway process. Over either: 429 QUOTA_EXCEEDED
 * with Retry-After (for qpd, the seconds to the next day boundary).
 *
 * A request stopped by qps does not count towards qpd.
 */
export function consumerQuota(ctx: MiddlewareCompileContext): Middleware {
  const store = ctx.state;
  const timeZone = store.timeZone ?? 'UTC';
  const clock = store.now ?? Date.now;
  let window: DayWindow | undefined;

  const currentDay = (now: number): DayWindow => {
    let w = window;
    if (w === undefined || now >= w.end || now < w.start) window = w = dayWindow(now, timeZone);
    return w;
  };

  const checkQps = (qps: number, burst: number, r: TokenBucketResult): void => {
    if (r.allowed) return;
    const seconds = Math.max(1, Math.ceil(r.retryAfterMs / 1000));
    throw new GatewayError('QUOTA_EXCEEDED', 'consumer requests-per-second quota exceeded', {
      headers: {
        'Retry-After': String(seconds),
        'RateLimit-Policy': `"qps";q=${burst};w=${Math.max(1, Math.ceil(burst / qps))}`,
        RateLimit: `"qps";r=0;t=${seconds}`,
      },
    });
  };

  const checkQpd = (qpd: number, count: number, now: number, w: DayWindow): void => {
    if (count <= qpd) return;
    const seconds = Math.max(1, Math.ceil((w.end - now) / 1000));
    throw new GatewayError('QUOTA_EXCEEDED', 'consumer requests-per-day quota exceeded', {
      headers: { 'Retry-After': String(seconds), 'RateLimit-Policy': `"qpd";q=${qpd};w=${DAY_S}`, RateLimit: `"qpd";r=0;t=${seconds}` },
    });
  };

  const perDay = (id: string, qpd: number): void | Promise<void> => {
    const now = clock();
    const w = currentDay(now);
    const n = store.increment(`${QUOTA_KEYS.qpd}${id}:${w.day}`, 1, w.end);
    if (n instanceof Promise) return n.then((count) => checkQpd(qpd, count, now, w));
    checkQpd(qpd, n, now, w);
  };

  return {
    name: 'consumer-quota',
    onRequest(rc: RequestContext): void | Promise<void> {
      const consumer = rc.consumer;
      if (consumer === undefined) return;
      const { qps, qpd } = consumer.config;
      if (qps !== undefined) {
        const burst = Math.max(1, qps);
        const r = store.takeToken(QUOTA_KEYS.qps + consumer.id, qps, burst);
        if (r instanceof Promise) {
          return r.then((res) => {
            checkQps(qps, burst, res);
            if (qpd !== undefined) return perDay(consumer.id, qpd);
          });
        }
        checkQps(qps, burst, r);
      }
      if (qpd !== undefined) return perDay(consumer.id, qpd);
    },
  };
}
