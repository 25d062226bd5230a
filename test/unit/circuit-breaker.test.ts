import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { CircuitBreaker, PERMIT, PROBE, REJECTED_FULL, REJECTED_OPEN, type BreakerState } from '../../src/upstream/circuit-breaker.js';
import { circuitBreakerSchema, type CircuitBreakerConfig } from '../../src/config/schemas/upstream-policy.js';

/** A breaker on a clock the test moves by hand, recording its state changes. */
function breaker(options: Record<string, unknown> = {}) {
  const clock = { t: 1_000_000 };
  const changes: { from: BreakerState; to: BreakerState; reason: string }[] = [];
  const config: CircuitBreakerConfig = circuitBreakerSchema.parse({
    volumeThreshold: 4,
    errorPercent: 50,
    sleepWindow: '5s',
    window: '10s',
    buckets: 10,
    ...options,
  });
  const b = new CircuitBreaker(config, { now: () => clock.t, onStateChange: (from, to, reason) => changes.push({ from, to, reason }) });
  return { b, clock, changes };
}

/** One complete call: acquire, record, release. Returns what acquire gave. */
function call(b: CircuitBreaker, ok: boolean): number {
  const p = b.acquire();
  if (p > 0) {
    b.record(p, ok);
    b.release(p, true);
  }
  return p;
}

describe('circuit breaker: closed', () => {
  it('stays closed below volumeThreshold, even when every call fails', () => {
    const { b, changes } = breaker();
    for (let i = 0; i < 3; i++) assert.equal(call(b, false), PERMIT);
    assert.equal(b.state, 'closed');
    assert.deepEqual(changes, []);
  });

  it('opens when the window holds volumeThreshold calls and errorPercent of them failed', () => {
    const { b, changes } = breaker();
    call(b, true);
    call(b, true);
    call(b, false);
    assert.equal(b.state, 'closed', '1 of 3 failed');
    call(b, false);
    assert.equal(b.state, 'open', '2 of 4 failed = 50%');
    assert.equal(changes.length, 1);
    assert.equal(changes[0]!.from, 'closed');
    assert.equal(changes[0]!.to, 'open');
    assert.match(changes[0]!.reason, /2 of 4 calls failed \(50% >= 50%\)/);
    assert.equal(b.acquire(), REJECTED_OPEN);
  });

  it('successes alone never open it, and a rate under errorPercent does not', () => {
    const { b } = breaker({ errorPercent: 60 });
    for (let i = 0; i < 50; i++) call(b, i % 2 === 0);
    assert.equal(b.state, 'closed', '50% < 60%');
  });

  it('is a rolling window: failures older than the window no longer count', () => {
    const { b, clock } = breaker();
    call(b, false);
    call(b, false);
    call(b, false);
    clock.t += 10_000; // the three failures have left the 10 s window
    assert.equal(b.view().calls, 0);
    call(b, false);
    assert.equal(b.state, 'closed', 'only 1 call in the window');
    assert.deepEqual({ calls: b.view().calls, failures: b.view().failures }, { calls: 1, failures: 1 });
  });

  it('buckets expire one at a time', () => {
    const { b, clock } = breaker();
    call(b, false); // bucket at t
    clock.t += 5_000;
    call(b, true);
    call(b, true); // bucket at t + 5 s
    clock.t += 5_500; // the first bucket is now out, the second still in
    assert.deepEqual({ calls: b.view().calls, failures: b.view().failures }, { calls: 2, failures: 0 });
  });
});

describe('circuit breaker: open → half-open → closed or open', () => {
  function opened() {
    const x = breaker();
    for (let i = 0; i < 4; i++) call(x.b, false);
    assert.equal(x.b.state, 'open');
    return x;
  }

  it('rejects for sleepWindow, then lets exactly one probe through', () => {
    const { b, clock } = opened();
    clock.t += 4_999;
    assert.equal(b.acquire(), REJECTED_OPEN);
    clock.t += 1;
    const probe = b.acquire();
    assert.equal(probe, PROBE);
    assert.equal(b.state, 'half-open');
    assert.equal(b.acquire(), REJECTED_OPEN, 'a second call while the probe is in flight');
    assert.equal(b.acquire(), REJECTED_OPEN);
    b.record(probe, true);
    b.release(probe, true);
    assert.equal(b.state, 'closed');
    assert.equal(b.view().calls, 0, 'closing starts a fresh window');
    assert.equal(b.acquire(), PERMIT);
  });

  it('a failed probe opens it again for another sleepWindow', () => {
    const { b, clock, changes } = opened();
    clock.t += 5_000;
    const probe = b.acquire();
    b.record(probe, false);
    b.release(probe, true);
    assert.equal(b.state, 'open');
    clock.t += 4_000;
    assert.equal(b.acquire(), REJECTED_OPEN);
    clock.t += 1_000;
    assert.equal(b.acquire(), PROBE);
    assert.deepEqual(
      changes.map((c) => `${c.from}→${c.to}`),
      ['closed→open', 'open→half-open', 'half-open→open', 'open→half-open'],
    );
    assert.equal(changes[2]!.reason, 'probe call failed');
  });

  it('a probe that ends without an outcome (client left) lets the next call probe', () => {
    const { b, clock } = opened();
    clock.t += 5_000;
    const probe = b.acquire();
    b.release(probe, false);
    assert.equal(b.state, 'half-open');
    assert.equal(b.acquire(), PROBE);
  });

  it('late outcomes of calls admitted before it opened do not close it', () => {
    const { b } = breaker();
    const late = b.acquire();
    for (let i = 0; i < 4; i++) call(b, false);
    assert.equal(b.state, 'open');
    b.record(late, true);
    b.release(late, true);
    assert.equal(b.state, 'open');
  });
});

describe('circuit breaker: maxConcurrent', () => {
  it('rejects calls over the limit at once, and admits again when one ends', () => {
    const { b } = breaker({ maxConcurrent: 2 });
    const p1 = b.acquire();
    const p2 = b.acquire();
    assert.equal(p1, PERMIT);
    assert.equal(p2, PERMIT);
    assert.equal(b.acquire(), REJECTED_FULL);
    assert.equal(b.inflight, 2);
    b.record(p1, true);
    b.release(p1, true);
    assert.equal(b.acquire(), PERMIT);
    assert.equal(b.view().calls, 1, 'rejections are not counted as calls');
    assert.equal(b.state, 'closed');
  });
});

describe('circuit breaker: failing statuses', () => {
  it('defaults to 500, 502, 503 and 504', () => {
    const { b } = breaker();
    assert.deepEqual([200, 404, 500, 501, 502, 503, 504, 505].map((s) => b.isFailure(s)), [false, false, true, false, true, true, true, false]);
  });

  it('can be configured', () => {
    const { b } = breaker({ statuses: [429, 500] });
    assert.deepEqual([429, 500, 503].map((s) => b.isFailure(s)), [true, true, false]);
  });
});

describe('circuitBreaker config', () => {
  const doc = (cb: unknown) => ({
    listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:8080' }],
    upstreams: [{ name: 'users', targets: [{ address: '127.0.0.1:2003' }], circuitBreaker: cb }],
    routes: [{ name: 'r', listener: 'web', upstream: 'users' }],
  });

  it('accepts the issue example and fills defaults', () => {
    const r = validateConfig(doc({ timeout: '1s', maxConcurrent: 100, volumeThreshold: 20, errorPercent: 50, sleepWindow: '5s' }), {});
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    assert.deepEqual(r.config.upstreams[0]!.circuitBreaker, {
      timeout: 1000,
      maxConcurrent: 100,
      volumeThreshold: 20,
      errorPercent: 50,
      sleepWindow: 5000,
      window: 10_000,
      buckets: 10,
      statuses: [500, 502, 503, 504],
    });
  });

  it('errorPercent: 150 is an error naming its path', () => {
    const r = validateConfig(doc({ errorPercent: 150 }), {});
    assert.equal(r.ok, false);
    assert.deepEqual(!r.ok && r.errors, [{ path: 'upstreams[0].circuitBreaker.errorPercent', message: 'must be <= 100' }]);
  });

  it('rejects bad values and unknown keys with their paths', () => {
    const cases: [unknown, string][] = [
      [{ errorPercent: 0 }, 'upstreams[0].circuitBreaker.errorPercent'],
      [{ sleepWindow: 'soon' }, 'upstreams[0].circuitBreaker.sleepWindow'],
      [{ maxConcurrent: -1 }, 'upstreams[0].circuitBreaker.maxConcurrent'],
      [{ volumeThreshold: 0 }, 'upstreams[0].circuitBreaker.volumeThreshold'],
      [{ statuses: [200] }, 'upstreams[0].circuitBreaker.statuses[0]'],
      [{ fallback: { status: 99 } }, 'upstreams[0].circuitBreaker.fallback.status'],
      [{ window: '10ms', buckets: 20 }, 'upstreams[0].circuitBreaker.buckets'],
      [{ treshold: 5 }, 'upstreams[0].circuitBreaker.treshold'],
    ];
    for (const [cb, path] of cases) {
      const r = validateConfig(doc(cb), {});
      assert.equal(r.ok, false, JSON.stringify(cb));
      assert.deepEqual(!r.ok && r.errors.map((e) => e.path), [path], JSON.stringify(cb));
    }
  });
});
