import { createHash } from 'node:crypto';
import type { RateLimitOptions } from '../config/schemas/middlewares.js';
import { GatewayError } from '../errors.js';
import type { TokenBucketResult } from '../state/store.js';
import type { RequestContext, ResponseHead, Middleware } from '../snapshot/snapshot.js';
import type { MiddlewareCompileContext } from '../snapshot/snapshot.js';

/**
 * `rate-limit`: a token bucket per key (route, client IP, consumer or a
 * header value), in the gateway's state store, so it is shared by every
 * process using the same Redis.
 *
 * Bucket keys are `rl:<route>:<hash of the settings>[.n]:<key>`: several
 * limits stack on one route without sharing a bucket, and a reload that
 * keeps a limit as it was keeps its bucket.
 *
 * Headers follow draft-ietf-httpapi-ratelimit-headers-10 (September 2025;
 * the same fields as -08, -09 and -11): `RateLimit-Policy: "<name>";q=<burst>;w=<window>`
 * where the window is the seconds the bucket needs to refill from empty
 * (burst / rate, at least 1), and `RateLimit: "<name>";r=<remaining>;t=<seconds>`
 * where r and t are the tokens left and the seconds until the bucket is full
 * again, as the response head goes out, or, on a 429, r=0 and t the same
 * point in time as Retry-After (as the draft asks). The policy name is
 * the route name, with `.2`, `.3`… for the second and later limits of a route.
 *
 * With the memory store every call is synchronous: no promise per request
 * unless a request has to wait (delay mode).
 */
export function rateLimit(options: RateLimitOptions, ctx: MiddlewareCompileContext): Middleware {
  const { rate, burst } = options;
  const store = ctx.state;
  const route = ctx.route.name;
  const maxDelayMs = options.mode === 'delay' ? options.maxDelay : 0;

  const { prefix, name, window } = rateLimitPolicy(route, ctx.route.middlewares, options);
  const policy = `"${name}";q=${burst};w=${window}`;
  const keyOf = keyFunction(options.key);
  // A store that can be read synchronously (memory) is asked again on the response, so no
  // per-request data is kept; otherwise (Redis) each admitted request's answer is kept here.
  const peek = store.peekTokens?.bind(store);
  const admitted = peek === undefined ? new WeakMap<RequestContext, TokenBucketResult>() : undefined;

  const decide = (rc: RequestContext, r: TokenBucketResult): void | Promise<void> => {
    if (!r.allowed) {
      const seconds = Math.max(1, Math.ceil(r.retryAfterMs / 1000));
      throw new GatewayError('RATE_LIMITED', undefined, {
        headers: { 'Retry-After': String(seconds), 'RateLimit-Policy': policy, RateLimit: `"${name}";r=0;t=${seconds}` },
      });
    }
    admitted?.set(rc, r);
    const delay = r.delayMs;
    if (delay !== undefined && delay > 0) return new Promise((resolve) => setTimeout(resolve, delay));
  };

  return {
    name: 'rate-limit',
    onRequest(rc: RequestContext): void | Promise<void> {
      const r = store.takeToken(prefix + keyOf(rc), rate, burst, 1, maxDelayMs);
      if (r instanceof Promise) return r.then((res) => decide(rc, res));
      return decide(rc, r);
    },
    // Runs only for requests every limit of the route admitted.
    onResponse(rc: RequestContext, head: ResponseHead): void {
      let remaining: number;
      let resetMs: number;
      if (peek !== undefined) {
        const tokens = peek(prefix + keyOf(rc), rate, burst);
        remaining = tokens > 0 ? Math.floor(tokens) : 0;
        resetMs = ((burst - tokens) * 1000) / rate;
      } else {
        const r = admitted!.get(rc);
        if (r === undefined) return;
        remaining = r.remaining;
        resetMs = r.resetMs;
      }
      head.headers.push('RateLimit-Policy', policy, 'RateLimit', `"${name}";r=${remaining};t=${Math.ceil(resetMs / 1000)}`);
    },
  };
}

/**
 * Where one limit of a route keeps its buckets (`prefix`, followed by the
 * per-request key), its policy name and window (seconds to refill from
 * empty). `options` must be the very object listed in `middlewares` (the
 * route config's), which tells its place among the route's limits.
 */
export function rateLimitPolicy(
  route: string,
  middlewares: readonly { name: string; options: unknown }[],
  options: RateLimitOptions,
): { prefix: string; name: string; window: number } {
  const limits = middlewares.filter((m) => m.name === 'rate-limit').map((m) => m.options);
  const index = Math.max(0, limits.indexOf(options));
  const settings = settingsOf(options);
  const twins = limits.slice(0, index).filter((o) => settingsOf(o) === settings).length;
  return {
    prefix: `rl:${route}:${createHash('sha256').update(settings).digest('hex').slice(0, 12)}${twins > 0 ? `.${twins}` : ''}:`,
    name: index === 0 ? route : `${route}.${index + 1}`,
    window: Math.max(1, Math.ceil(options.burst / options.rate)),
  };
}

function settingsOf(o: unknown): string {
  const v = o as RateLimitOptions;
  return JSON.stringify([v.rate, v.burst, v.key, v.mode, v.maxDelay]);
}

/**
 * The per-request part of the bucket key. `consumer` without an identified
 * consumer, and `header:NAME` without that header, count by client IP.
 */
function keyFunction(key: string): (rc: RequestContext) => string {
  if (key === 'route') return () => '';
  if (key === 'ip') return (rc) => `ip:${rc.clientIp}`;
  if (key === 'consumer') return (rc) => (rc.consumer !== undefined ? `c:${rc.consumer.id}` : `ip:${rc.clientIp}`);
  const header = key.slice('header:'.length).toLowerCase();
  // rawHeaders, not req.headers: Node builds req.headers lazily, and the proxy path never needs it.
  return (rc) => {
    const raw = rc.req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i]!;
      if (n.length === header.length && n.toLowerCase() === header && raw[i + 1] !== '') return `h:${raw[i + 1]}`;
    }
    return `ip:${rc.clientIp}`;
  };
}
