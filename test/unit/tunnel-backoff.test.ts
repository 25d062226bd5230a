// The reconnect schedule: fast retries at the initial delay, then
// exponential ceilings with full jitter, capped; the bounds hold for any
// random source (including 0, 1, NaN, out of range); reset starts over;
// invalid options are refused.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Backoff } from '../../src/tunnel/backoff.js';
import { fuzzRuns } from '../helpers/fuzz.js';

const take = (b: Backoff, n: number) => Array.from({ length: n }, () => b.next());

describe('Backoff', () => {
  test('three fast retries, then ceilings initial·2^k reached with random → 1, capped at max', () => {
    const b = new Backoff({ initialMs: 200, maxMs: 30_000, random: () => 1 });
    assert.deepEqual(take(b, 12), [200, 200, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]);
    assert.equal(b.attempts, 12);
  });

  test('random → 0 gives the floor (initialMs), never 0', () => {
    const b = new Backoff({ initialMs: 200, maxMs: 30_000, random: () => 0 });
    assert.deepEqual(take(b, 8), Array(8).fill(200));
  });

  test('full jitter: uniform between the floor and the ceiling', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 10_000, fastRetries: 0, random: () => 0.5 });
    // k = 1, 2, 3: ceilings 200, 400, 800 → midpoints with the floor 100.
    assert.deepEqual(take(b, 3), [150, 250, 450]);
  });

  test('reset() starts the schedule over', () => {
    const b = new Backoff({ initialMs: 10, maxMs: 1000, fastRetries: 1, random: () => 1 });
    assert.deepEqual(take(b, 4), [10, 20, 40, 80]);
    b.reset();
    assert.equal(b.attempts, 0);
    assert.deepEqual(take(b, 3), [10, 20, 40]);
  });

  test('a long run saturates at the cap without overflow', () => {
    const b = new Backoff({ initialMs: 1, maxMs: 5000, fastRetries: 0, random: () => 1 });
    const last = take(b, 3000).at(-1);
    assert.equal(last, 5000);
  });

  test('invalid options are refused with a RangeError', () => {
    for (const o of [
      { initialMs: 0, maxMs: 10 },
      { initialMs: -1, maxMs: 10 },
      { initialMs: Number.NaN, maxMs: 10 },
      { initialMs: 10, maxMs: 5 },
      { initialMs: 10, maxMs: Number.POSITIVE_INFINITY },
      { initialMs: 10, maxMs: 20, fastRetries: -1 },
      { initialMs: 10, maxMs: 20, fastRetries: 1.5 },
    ]) {
      assert.throws(() => new Backoff(o), RangeError, JSON.stringify(o));
    }
  });

  test('property: every delay lies in [initial, min(max, initial·2^k)] for any random source; fast retries are exact', () => {
    const randomValue = fc.oneof(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.constantFrom(0, 1, -1, 2, Number.NaN, Number.POSITIVE_INFINITY));
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5000 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.integer({ min: 0, max: 5 }),
        fc.array(randomValue, { minLength: 1, maxLength: 60 }),
        (initialMs, extra, fastRetries, randoms) => {
          const maxMs = initialMs + extra;
          let i = 0;
          const b = new Backoff({ initialMs, maxMs, fastRetries, random: () => randoms[i++ % randoms.length]! });
          for (let n = 0; n < 60; n++) {
            const d = b.next();
            if (n < fastRetries) {
              assert.equal(d, initialMs);
              continue;
            }
            const ceiling = Math.min(maxMs, initialMs * 2 ** (n - fastRetries + 1));
            assert.ok(d >= initialMs && d <= ceiling, `delay ${n} = ${d}, expected [${initialMs}, ${ceiling}]`);
            assert.ok(d > 0 && d <= maxMs);
          }
        },
      ),
      fuzzRuns(1000),
    );
  });

  test('with Math.random, the ceiling is reached eventually (the jitter spans the range)', () => {
    const b = new Backoff({ initialMs: 10, maxMs: 1000, fastRetries: 0 });
    take(b, 10);
    const later = take(b, 400);
    assert.ok(later.some((d) => d > 900) && later.some((d) => d < 200), 'delays spread over [10, 1000]');
  });
});
