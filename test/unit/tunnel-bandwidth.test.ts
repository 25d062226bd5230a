// Bandwidth limiting: the token bucket's arithmetic on an injected clock;
// chunks pass as the same Buffer objects and are split only into views;
// 1 MiB over a real TCP pair through a 256 KiB/s throttle arrives intact,
// and at no point did more than burst + rate·t bytes arrive (so the whole
// transfer takes at least 3 s: a lower bound, a correctness property);
// backpressure reaches the source; destroy and end leave no timer or
// socket behind.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createHash, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { MIN_BURST, Throttle, TokenBucket } from '../../src/tunnel/bandwidth.js';
import { connect, startTcpServer } from '../helpers/tcp.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { waitFor } from '../helpers/wait.js';
import { fuzzRuns } from '../helpers/fuzz.js';

const KiB = 1024;
const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('TokenBucket', () => {
  test('starts full, refills at rate, never above burst; burst defaults to the rate, at least 64 KiB', () => {
    let now = 0;
    const bucket = new TokenBucket({ rate: 100 * KiB, now: () => now });
    assert.equal(bucket.burst, 100 * KiB);
    assert.equal(bucket.available(), 100 * KiB);
    bucket.take(100 * KiB);
    assert.equal(bucket.available(), 0);
    now = 500;
    assert.equal(bucket.available(), 50 * KiB);
    assert.equal(bucket.delayFor(60 * KiB), 100);
    now = 10_000;
    assert.equal(bucket.available(), 100 * KiB, 'capped at burst');
    assert.equal(new TokenBucket({ rate: 1000 }).burst, MIN_BURST);
    assert.equal(new TokenBucket({ rate: 1000, burst: 10 }).burst, MIN_BURST);
    assert.equal(new TokenBucket({ rate: 1000, burst: 200 * KiB }).burst, 200 * KiB);
  });

  test('property: whatever is asked when, at most burst + rate·t tokens are granted by time t; after delayFor(n), n are available', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000_000 }),
        fc.option(fc.integer({ min: 1, max: 10_000_000 }), { nil: undefined }),
        fc.array(fc.tuple(fc.double({ min: 0, max: 2000, noNaN: true }), fc.integer({ min: 0, max: 20_000_000 }), fc.boolean()), { maxLength: 40 }),
        (rate, burst, steps) => {
          let now = 1000;
          const bucket = new TokenBucket({ rate, burst, now: () => now });
          let granted = 0;
          for (const [dt, n, wait] of steps) {
            now += dt;
            if (wait) {
              const want = Math.min(n, bucket.burst);
              now += bucket.delayFor(want);
              assert.ok(bucket.available() >= want, `${bucket.available()} available after waiting for ${want}`);
            }
            const take = Math.min(n, bucket.available());
            bucket.take(take);
            granted += take;
            assert.ok(granted <= bucket.burst + (rate * (now - 1000)) / 1000 + 1, `${granted} granted by ${now - 1000} ms`);
            assert.ok(bucket.available() >= 0);
          }
        },
      ),
      fuzzRuns(2000),
    );
  });

  test('invalid rates and bursts are refused with a RangeError', () => {
    for (const o of [{ rate: 0 }, { rate: -1 }, { rate: Number.NaN }, { rate: Number.POSITIVE_INFINITY }, { rate: 1, burst: 0 }, { rate: 1, burst: Number.NaN }]) {
      assert.throws(() => new TokenBucket(o), RangeError, JSON.stringify(o));
    }
    assert.throws(() => new Throttle({}), RangeError);
  });
});

describe('Throttle', () => {
  test('a chunk the tokens cover is passed through as the same object; a larger one is split into views, in order', async () => {
    const base = timers();
    const t = new Throttle({ rate: 64 * KiB, burst: 64 * KiB });
    const out: Buffer[] = [];
    t.on('data', (c: Buffer) => out.push(c));
    const small = randomBytes(1000);
    const big = randomBytes(100 * KiB);
    t.write(small);
    t.end(big);
    await new Promise((resolve) => t.on('end', resolve));
    assert.equal(out[0], small, 'the same Buffer object');
    assert.ok(out.length >= 3, `${out.length} pieces`);
    for (const piece of out.slice(1)) assert.equal(piece.buffer, big.buffer, 'a view of the big chunk, not a copy');
    assert.ok(Buffer.concat(out.slice(1)).equals(big));
    assert.equal(timers(), base, 'no timer after end');
  });

  test('1 MiB over a real TCP pair at 256 KiB/s: intact, and never more than burst + rate·t bytes by time t (≥ 3 s in all)', async (t) => {
    const fds = openFds();
    const base = timers();
    const rate = 256 * KiB;
    const total = 1024 * KiB;
    const data = randomBytes(total);
    const arrivals: { at: number; bytes: number }[] = [];
    let received = 0;
    const hash = createHash('sha256');
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    const server = await startTcpServer((socket) => {
      socket.on('data', (c: Buffer) => {
        received += c.length;
        hash.update(c);
        arrivals.push({ at: performance.now(), bytes: received });
      });
      socket.on('end', () => {
        socket.end();
        resolveDone();
      });
    });
    t.after(() => server.close());
    const socket = await connect(server.port);
    const started = performance.now();
    const throttle = new Throttle({ rate });
    const chunks = Array.from({ length: total / (16 * KiB) }, (_, i) => data.subarray(i * 16 * KiB, (i + 1) * 16 * KiB));
    await pipeline(Readable.from(chunks), throttle, socket);
    await done;
    const elapsed = performance.now() - started;
    assert.equal(received, total);
    assert.equal(hash.digest('hex'), createHash('sha256').update(data).digest('hex'), 'every byte intact, in order');
    for (const a of arrivals) {
      const allowed = throttle.bucket.burst + (rate * (a.at - started)) / 1000;
      assert.ok(a.bytes <= allowed + 1, `${a.bytes} bytes by ${(a.at - started).toFixed(1)} ms, more than ${allowed.toFixed(0)}`);
    }
    assert.ok(elapsed >= ((total - rate) / rate) * 1000 - 1, `took ${elapsed.toFixed(0)} ms`);
    console.log(`# 1 MiB at 256 KiB/s (burst 256 KiB) took ${elapsed.toFixed(0)} ms (lower bound 3000 ms)`);
    socket.destroy();
    await server.close();
    await fdsSettle(fds);
    assert.equal(timers(), base);
  });

  test('backpressure: a slow consumer holds the source back (the source is read only as fast as the throttle drains)', async (t) => {
    const base = timers();
    let produced = 0;
    const limit = 64 * 1024 * KiB;
    const source = new Readable({
      highWaterMark: 16 * KiB,
      read() {
        if (produced >= limit) return void this.push(null);
        produced += 16 * KiB;
        this.push(Buffer.alloc(16 * KiB));
      },
    });
    let consumed = 0;
    const sink = new Writable({
      highWaterMark: 16 * KiB,
      write(chunk: Buffer, _enc, cb) {
        consumed += chunk.length;
        cb();
      },
    });
    const throttle = new Throttle({ rate: 128 * KiB, burst: 64 * KiB });
    t.after(() => throttle.destroy());
    const run = pipeline(source, throttle, sink).catch((err: Error) => err);
    await waitFor(() => consumed >= 192 * KiB, '192 KiB through the throttle');
    const ahead = produced - consumed;
    // Source buffer + throttle's writable and readable buffers + the chunk in progress + slack: a few 16 KiB chunks, not megabytes.
    assert.ok(ahead <= 128 * KiB, `the source ran ${ahead} bytes ahead of the consumer`);
    console.log(`# backpressure: the source ran ${ahead / KiB} KiB ahead of the consumer`);
    throttle.destroy();
    const err = await run;
    assert.ok(err instanceof Error, 'the pipeline fails when the throttle is destroyed');
    assert.equal(timers(), base, 'destroy cleared the waiting timer');
  });

  test('destroy while a chunk waits for tokens: no timer, no handle remains', async (ctx) => {
    const before = process.getActiveResourcesInfo().length;
    const base = timers();
    const t = new Throttle({ rate: 1024, burst: 1 });
    ctx.after(() => t.destroy());
    t.on('data', () => undefined);
    t.write(Buffer.alloc(200 * KiB));
    await waitFor(() => timers() > base, 'the throttle waits for tokens');
    t.destroy();
    await new Promise((resolve) => t.on('close', resolve));
    assert.equal(timers(), base);
    assert.equal(process.getActiveResourcesInfo().length, before);
  });
});
