import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { RetryBudget, RetryPolicy, smallestTimeout } from '../../src/upstream/retry.js';
import { healthCheckSchema, retriesSchema } from '../../src/config/schemas/upstream-policy.js';

function doc(upstream: Record<string, unknown>, route: Record<string, unknown> = {}) {
  return {
    listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:8080' }],
    upstreams: [{ name: 'users', targets: [{ address: '127.0.0.1:2003' }, { address: '127.0.0.1:2004' }], ...upstream }],
    routes: [{ name: 'r', listener: 'web', upstream: 'users', ...route }],
  };
}

function pathsOf(d: unknown): string[] {
  const r = validateConfig(d, {});
  assert.equal(r.ok, false, 'expected the document to be rejected');
  return r.ok ? [] : r.errors.map((e) => e.path);
}

describe('retry budget', () => {
  it('allows budgetPercent of the requests in the window, or budgetMinRetries', () => {
    const clock = { t: 0 };
    const b = new RetryBudget(20, 2, 10_000, () => clock.t);
    assert.equal(b.tryRetry(), true, 'the minimum applies with no requests');
    assert.equal(b.tryRetry(), true);
    assert.equal(b.tryRetry(), false, 'minimum of 2 spent');
    for (let i = 0; i < 20; i++) b.onRequest();
    assert.equal(b.tryRetry(), true, '20% of 20 = 4 > 2');
    assert.equal(b.tryRetry(), true);
    assert.equal(b.tryRetry(), false, '4 retries spent');
  });

  it('slides: retries and requests older than the window are forgotten', () => {
    const clock = { t: 0 };
    const b = new RetryBudget(0, 1, 10_000, () => clock.t);
    assert.equal(b.tryRetry(), true);
    assert.equal(b.tryRetry(), false);
    clock.t += 5_000;
    assert.equal(b.tryRetry(), false, 'still in the window');
    clock.t += 5_000;
    assert.equal(b.tryRetry(), true, 'the first retry left the window');
  });
});

describe('retry policy', () => {
  const policy = (o: Record<string, unknown> = {}, random = () => 0.5) => new RetryPolicy(retriesSchema.parse(o), undefined, random);

  it('defaults: 1 retry on connect failures, resets, 502, 503 and 504; idempotent methods only', () => {
    const p = policy();
    assert.equal(p.attempts, 1);
    assert.deepEqual(['UPSTREAM_CONNECT_REFUSED', 'UPSTREAM_CONNECT_TIMEOUT', 'UPSTREAM_RESET', 'UPSTREAM_RESPONSE_TIMEOUT', 'UPSTREAM_PROTOCOL_ERROR'].map((c) => p.retriesError(c as never)), [true, true, true, false, false]);
    assert.deepEqual([500, 502, 503, 504].map((s) => p.retriesStatus(s)), [false, true, true, true]);
    assert.deepEqual(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE', 'POST', 'PATCH'].map((m) => p.allowsMethod(m)), [true, true, true, true, true, true, false, false]);
    assert.equal(policy({ retryNonIdempotent: true }).allowsMethod('POST'), true);
    assert.equal(policy({ on: ['timeout'] }).retriesError('UPSTREAM_RESPONSE_TIMEOUT'), true);
  });

  it('backs off exponentially up to max, with jitter in the upper half', () => {
    const lo = policy({ backoff: { base: '100ms', max: '1s' } }, () => 0);
    const hi = policy({ backoff: { base: '100ms', max: '1s' } }, () => 0.999999);
    assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => lo.backoffMs(n)), [50, 100, 200, 400, 500, 500]);
    assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => Math.round(hi.backoffMs(n))), [100, 200, 400, 800, 1000, 1000]);
    assert.equal(policy({ backoff: { base: 0, max: 0 } }).backoffMs(3), 0);
  });

  it('the per-try head timeout is the smallest configured one', () => {
    assert.equal(smallestTimeout(60_000, 0, 0), 60_000);
    assert.equal(smallestTimeout(60_000, 2_000, 1_000), 1_000);
    assert.equal(smallestTimeout(0, 2_000, 0), 2_000);
    assert.equal(smallestTimeout(0, 0, 0), 0);
  });
});

describe('retries and healthCheck config', () => {
  it('the issue example validates as written', () => {
    const r = validateConfig(
      doc({
        healthCheck: {
          active: { path: '/healthz', interval: '2s', timeout: '1s', healthyThreshold: 2, unhealthyThreshold: 2 },
          passive: { unhealthyThreshold: 3, ejectTime: '10s' },
        },
        circuitBreaker: { timeout: '1s', maxConcurrent: 100, volumeThreshold: 20, errorPercent: 50, sleepWindow: '5s' },
        retries: { attempts: 2, on: ['connect-failure', 502, 503, 504], perTryTimeout: '2s' },
      }),
      {},
    );
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    const u = r.config.upstreams[0]!;
    assert.deepEqual(u.healthCheck, {
      active: { type: 'http', path: '/healthz', expectStatus: [200, 399], interval: 2000, timeout: 1000, healthyThreshold: 2, unhealthyThreshold: 2 },
      passive: { unhealthyThreshold: 3, ejectTime: 10_000, maxEjectTime: 100_000, statuses: [] },
      minHealthyPercent: 50,
    });
    assert.deepEqual(u.retries, {
      attempts: 2,
      on: ['connect-failure', 502, 503, 504],
      perTryTimeout: 2000,
      backoff: { base: 25, max: 250 },
      retryNonIdempotent: false,
      retryBufferBytes: 65536,
      budgetPercent: 20,
      budgetMinRetries: 10,
      budgetWindow: 10_000,
    });
  });

  it('negative attempts is an error naming its path, on the upstream and on a route', () => {
    assert.deepEqual(pathsOf(doc({ retries: { attempts: -1 } })), ['upstreams[0].retries.attempts']);
    assert.deepEqual(pathsOf(doc({}, { retries: { attempts: -1 } })), ['routes[0].retries.attempts']);
    const r = validateConfig(doc({ retries: { attempts: -1 } }), {});
    assert.equal(!r.ok && r.errors[0]!.message, 'must be >= 0');
  });

  it('rejects bad retry, health and threshold values with their paths', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ retries: { on: ['5xx'] } }, 'upstreams[0].retries.on[0]'],
      [{ retries: { on: [] } }, 'upstreams[0].retries.on'],
      [{ retries: { attempts: 11 } }, 'upstreams[0].retries.attempts'],
      [{ retries: { backoff: { base: '1s', max: '10ms' } } }, 'upstreams[0].retries.backoff.max'],
      [{ retries: { perTryTimeout: '-1s' } }, 'upstreams[0].retries.perTryTimeout'],
      [{ retries: { budgetPercent: 101 } }, 'upstreams[0].retries.budgetPercent'],
      [{ healthCheck: { active: { type: 'udp' } } }, 'upstreams[0].healthCheck.active.type'],
      [{ healthCheck: { active: { type: 'http', service: 'echo.Echo' } } }, 'upstreams[0].healthCheck.active.service'],
      [{ healthCheck: { active: { type: 'tcp', path: '/x' } } }, 'upstreams[0].healthCheck.active.path'],
      [{ healthCheck: { active: { expectStatus: [399, 200] } } }, 'upstreams[0].healthCheck.active.expectStatus'],
      [{ healthCheck: { active: { interval: 0 } } }, 'upstreams[0].healthCheck.active.interval'],
      [{ healthCheck: { passive: { ejectTime: '10s', maxEjectTime: '1s' } } }, 'upstreams[0].healthCheck.passive.maxEjectTime'],
      [{ healthCheck: { passive: { unhealthyThreshold: 0 } } }, 'upstreams[0].healthCheck.passive.unhealthyThreshold'],
      [{ healthCheck: { minHealthyPercent: 101 } }, 'upstreams[0].healthCheck.minHealthyPercent'],
      [{ healthCheck: { passive: { statuses: [200] } } }, 'upstreams[0].healthCheck.passive.statuses[0]'],
    ];
    for (const [upstream, path] of cases) assert.deepEqual(pathsOf(doc(upstream)), [path], JSON.stringify(upstream));
  });

  it('accepts numbers from ${ENV} as digit strings and a single expected status', () => {
    const h = healthCheckSchema.parse({ active: { expectStatus: '204', healthyThreshold: '3' } });
    assert.deepEqual(h.active!.expectStatus, [204, 204]);
    assert.equal(h.active!.healthyThreshold, 3);
    assert.deepEqual(retriesSchema.parse({ on: ['503', 'reset'] }).on, [503, 'reset']);
  });
});
