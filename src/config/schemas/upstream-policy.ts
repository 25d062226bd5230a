import { z } from 'zod';
import { parseDuration } from '../duration.js';
import { bool, headerName, headerValue } from '../values.js';

/**
 * Schemas of the upstream traffic policies: `healthCheck:`, `circuitBreaker:`
 * and `retries:` (the last also on routes). Strict like the rest of the
 * document; every message says what is accepted, because `portico validate`
 * prints it beside the field's path. Shared value schemas come from
 * config/values.ts; `int` and `duration` stay local for their messages.
 */

const numeric = (v: unknown) => (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v);

const int = (min: number, max: number) =>
  z.preprocess(numeric, z.number('must be a whole number').int('must be a whole number').min(min, `must be >= ${min}`).max(max, `must be <= ${max}`));


/** A duration (`500ms`, `2s`, `1m`; a bare number is ms) in milliseconds, within [minMs, maxMs]. */
const duration = (minMs: number, maxMs: number, range: string) =>
  z.union([z.string(), z.number()], `must be a duration such as 500ms or 2s (${range})`).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined || ms < minMs || ms > maxMs) {
      ctx.issues.push({ code: 'custom', input: v, message: `must be a duration such as 500ms or 2s (${range})` });
      return z.NEVER;
    }
    return ms;
  });

const HOUR = 3_600_000;
const positiveDuration = duration(1, HOUR, '1ms to 1h');
const optionalDuration = duration(0, HOUR, '0 to 1h, 0 = off');

/** An HTTP status in [min, max], as a number or a digit string. */
const status = (min: number, max: number) => int(min, max);


/** Statuses that count as failures (passive health, breaker) or trigger a retry: 400-599. */
const failureStatuses = z.array(status(400, 599)).max(200);

// ---------------------------------------------------------------------------
// healthCheck

/** `[low, high]` (inclusive) or a single status. */
const statusRange = z
  .union([status(100, 599), z.tuple([status(100, 599), status(100, 599)])], 'must be a status or [low, high], e.g. [200, 399]')
  .transform((v, ctx) => {
    const range: [number, number] = typeof v === 'number' ? [v, v] : v;
    if (range[0] > range[1]) {
      ctx.issues.push({ code: 'custom', input: v, message: 'must be [low, high] with low <= high' });
      return z.NEVER;
    }
    return range;
  });

const activeCheck = z
  .strictObject({
    /**
     * `http`: GET `path` and expect a status in `expectStatus`. `tcp`: a connection that opens is healthy.
     * `grpc`: the gRPC Health Checking Protocol (`grpc.health.v1.Health/Check` for `service`) over
     * HTTP/2, h2c or TLS as the upstream speaks; healthy iff the answer is SERVING.
     */
    type: z.enum(['http', 'tcp', 'grpc'], 'must be http, tcp or grpc').default('http'),
    path: z.string().startsWith('/', 'must start with "/"').regex(/^[^\s]*$/, 'must not contain spaces').optional(),
    /** Host header (`:authority` for grpc) of the check; default the target's address. */
    host: z.string().min(1).regex(/^[^\s\r\n\0]+$/, 'must be a host name without spaces').optional(),
    expectStatus: statusRange.optional(),
    /** For grpc: the service name asked about; '' (the default) is the server as a whole. */
    service: z.string().max(1024, 'must be at most 1024 characters').regex(/^[\x21-\x7e]*$/, 'must be a service name such as echo.Echo (no spaces)').optional(),
    interval: positiveDuration.default(10_000),
    timeout: positiveDuration.default(2_000),
    healthyThreshold: int(1, 1000).default(2),
    unhealthyThreshold: int(1, 1000).default(3),
  })
  .superRefine((a, ctx) => {
    const onlyHttp = a.type === 'http' ? [] : a.type === 'tcp' ? (['path', 'host', 'expectStatus'] as const) : (['path', 'expectStatus'] as const);
    for (const key of onlyHttp) {
      if (a[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: a.type === 'tcp' && key === 'host' ? 'applies only to type: http or grpc' : 'applies only to type: http' });
    }
    if (a.type !== 'grpc' && a.service !== undefined) ctx.addIssue({ code: 'custom', path: ['service'], message: 'applies only to type: grpc' });
  })
  // `service` is filled in for grpc checks only, so the other types' compiled form is unchanged.
  .transform((a) => ({
    ...a,
    path: a.path ?? '/',
    expectStatus: a.expectStatus ?? ([200, 399] as [number, number]),
    ...(a.type === 'grpc' ? { service: a.service ?? '' } : {}),
  }));

const passiveCheck = z
  .strictObject({
    /** Consecutive failed requests that eject a target. */
    unhealthyThreshold: int(1, 1000).default(5),
    /** First ejection; each repeat doubles it, up to maxEjectTime. */
    ejectTime: positiveDuration.default(30_000),
    maxEjectTime: positiveDuration.optional(),
    /** Response statuses that count as failures (besides connect errors, resets and timeouts). */
    statuses: failureStatuses.default([]),
  })
  .superRefine((p, ctx) => {
    if (p.maxEjectTime !== undefined && p.maxEjectTime < p.ejectTime) {
      ctx.addIssue({ code: 'custom', path: ['maxEjectTime'], message: 'must be at least ejectTime' });
    }
  })
  .transform((p) => ({ ...p, maxEjectTime: p.maxEjectTime ?? Math.min(p.ejectTime * 10, HOUR) }));

/** Upstream `healthCheck:` (active and passive). */
export const healthCheckSchema = z.strictObject({
  active: activeCheck.optional(),
  passive: passiveCheck.optional(),
  /**
   * Panic threshold: when fewer than this share of the (non-drained) targets
   * is healthy, every target is used, healthy or not. 0 disables panic mode.
   */
  minHealthyPercent: int(0, 100).default(50),
});

// ---------------------------------------------------------------------------
// circuitBreaker

const directResponse = z.strictObject({
  status: status(200, 599).default(503),
  headers: z.record(headerName, headerValue).default({}),
  body: z.union([z.string(), z.record(z.string(), z.unknown()), z.array(z.unknown())], 'must be a string, a mapping or a list').default(''),
});

/** Upstream `circuitBreaker:` (Hystrix semantics). */
export const circuitBreakerSchema = z
  .strictObject({
    /** A call whose response head takes longer fails (it is aborted: 504). 0 = off. */
    timeout: optionalDuration.default(0),
    /** Most calls in flight to the upstream; more are rejected at once. 0 = no limit. */
    maxConcurrent: int(0, 1_000_000).default(0),
    /** Calls in the rolling window before the error rate is considered. */
    volumeThreshold: int(1, 1_000_000).default(20),
    /** Failed share of the window's calls (percent) that opens the circuit. */
    errorPercent: int(1, 100).default(50),
    /** How long the circuit stays open before one probe call is let through. */
    sleepWindow: positiveDuration.default(5_000),
    /** The rolling window, split into `buckets` equal buckets. */
    window: positiveDuration.default(10_000),
    buckets: int(1, 1000).default(10),
    /** Response statuses that count as failures (besides connect errors, resets and timeouts). */
    statuses: failureStatuses.default([500, 502, 503, 504]),
    /** Answer sent instead of `503 CIRCUIT_OPEN` when the breaker rejects a request. */
    fallback: directResponse.optional(),
  })
  .superRefine((c, ctx) => {
    if (c.window < c.buckets) ctx.addIssue({ code: 'custom', path: ['buckets'], message: 'must be at most window in milliseconds (buckets of 1ms or more)' });
  });

// ---------------------------------------------------------------------------
// retries

export const RETRY_CONDITIONS = ['connect-failure', 'reset', 'timeout'] as const;
export type RetryCondition = (typeof RETRY_CONDITIONS)[number];

const retryOn = z.union([z.string(), z.number()]).transform((v, ctx): RetryCondition | number => {
  if ((RETRY_CONDITIONS as readonly unknown[]).includes(v)) return v as RetryCondition;
  const n = numeric(v);
  if (typeof n === 'number' && Number.isInteger(n) && n >= 400 && n <= 599) return n;
  ctx.issues.push({ code: 'custom', input: v, message: 'must be connect-failure, reset, timeout or a status from 400 to 599' });
  return z.NEVER;
});

/** Route or upstream `retries:`. A route's block replaces its upstream's whole block. */
export const retriesSchema = z.strictObject({
  /** Retries after the first try (0 turns retries off). */
  attempts: int(0, 10).default(1),
  on: z.array(retryOn).min(1, 'must list at least one condition').default(['connect-failure', 'reset', 502, 503, 504]),
  /** Time to the response head for each try; 0 = only timeouts.response. */
  perTryTimeout: optionalDuration.default(0),
  backoff: z
    .strictObject({
      base: duration(0, 60_000, '0 to 1m').default(25),
      max: duration(0, 60_000, '0 to 1m').default(250),
    })
    .prefault({})
    .refine((b) => b.max >= b.base, { message: 'must be at least base', path: ['max'] }),
  /** Retry POST and PATCH (and other non-idempotent methods) too. */
  retryNonIdempotent: bool.default(false),
  /** Request bodies up to this size are buffered so they can be sent again; larger ones are streamed and not retried. */
  retryBufferBytes: int(0, 16 * 1024 * 1024).default(64 * 1024),
  /** Retries may be at most this share of the requests over budgetWindow … */
  budgetPercent: int(0, 100).default(20),
  /** … or this many per budgetWindow, whichever is more. */
  budgetMinRetries: int(0, 1_000_000).default(10),
  budgetWindow: duration(1000, HOUR, '1s to 1h').default(10_000),
});

export type HealthCheckConfig = z.output<typeof healthCheckSchema>;
export type ActiveCheckConfig = NonNullable<HealthCheckConfig['active']>;
export type PassiveCheckConfig = NonNullable<HealthCheckConfig['passive']>;
export type CircuitBreakerConfig = z.output<typeof circuitBreakerSchema>;
export type RetriesConfig = z.output<typeof retriesSchema>;

/** The `balancer:` algorithms of an upstream (src/upstream/balancers/, one file each). */
export const BALANCERS = [
  'random',
  'round-robin',
  'weighted-round-robin',
  'consistent-hash',
  'least-connections',
  'p2c',
] as const;
export type BalancerName = (typeof BALANCERS)[number];
