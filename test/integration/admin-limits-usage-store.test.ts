// The state store's read-only enumeration (GET /limits reads through it):
// for arbitrary key prefixes, glob characters included, the memory store and
// a real Redis list exactly the keys that start with the prefix, bounded.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MemoryStore } from '../../src/state/memory.js';
import { RedisStore, escapeGlob } from '../../src/state/redis.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { fuzzRuns } from '../helpers/fuzz.js';
import { waitFor } from '../helpers/wait.js';

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis.stop();
});

/** Key text with every character SCAN's MATCH treats specially. */
const text = (max: number) => fc.string({ unit: fc.constantFrom(...'ab:*?[]\\^-!'.split('')), maxLength: max });

test('escapeGlob: only * ? [ ] and backslash are escaped, each by one backslash', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 30 }), (s) => {
      const e = escapeGlob(s);
      assert.equal(e.replace(/\\(.)/gs, '$1'), s);
      assert.equal(e.length - s.length, [...s].filter((c) => '*?[]\\'.includes(c)).length);
    }),
    fuzzRuns(2000),
  );
});

test('memory and Redis list the same keys for any prefix and key prefix, at most max, truncated beyond', async () => {
  await fc.assert(
    fc.asyncProperty(text(4), fc.uniqueArray(text(6), { maxLength: 8 }), text(3), fc.integer({ min: 1, max: 10 }), async (keyPrefix, keys, prefix, max) => {
      await redis.command('FLUSHDB');
      const store = new RedisStore({ url: redis.url, keyPrefix, timeoutMs: 1000 });
      const memory = new MemoryStore();
      try {
        await waitFor(() => store.ready, 'redis to be ready', 5000, 5);
        // A bucket and a counter per key; the buckets under "b", the counters under "c".
        for (const k of keys) {
          await store.takeToken(`b${k}`, 1, 5, 2);
          memory.takeToken(`b${k}`, 1, 5, 2);
          await store.increment(`c${k}`, 3, Date.now() + 60_000);
          memory.increment(`c${k}`, 3, Date.now() + 60_000);
        }
        const expected = keys.filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length)).sort();
        for (const listing of [await store.listBuckets(`b${prefix}`, max), memory.listBuckets(`b${prefix}`, max)]) {
          assert.equal(listing.truncated, expected.length > max);
          assert.equal(listing.entries.length, Math.min(max, expected.length));
          for (const e of listing.entries) {
            assert.ok(expected.includes(e.key), `listed ${JSON.stringify(e.key)} starts with the prefix`);
            assert.ok(e.tokens >= 3 && e.tokens <= 5);
          }
        }
        for (const listing of [await store.listCounters(`c${prefix}`, max), memory.listCounters(`c${prefix}`, max)]) {
          assert.equal(listing.truncated, expected.length > max);
          assert.equal(listing.entries.length, Math.min(max, expected.length));
          for (const e of listing.entries) {
            assert.ok(expected.includes(e.key));
            assert.equal(e.value, 3);
            assert.ok(e.expiresAt > listing.now);
          }
        }
        if (expected.length <= max) {
          assert.deepEqual((await store.listBuckets(`b${prefix}`, max)).entries.map((e) => e.key).sort(), expected);
          assert.deepEqual(memory.listBuckets(`b${prefix}`, max).entries.map((e) => e.key).sort(), expected);
        }
      } finally {
        await store.close();
        await memory.close();
      }
    }),
    fuzzRuns(100),
  );
});
