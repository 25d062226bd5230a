// The Redis state store against a real redis-server (started by the test on
// a free loopback port): the Lua scripts, the in-process fallback when Redis
// dies or hangs, and two gateway processes sharing one limit.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pino from 'pino';
import { FallbackStore } from '../../src/state/fallback.js';
import { RedisStore } from '../../src/state/redis.js';
import { startCli, type Running } from '../helpers/cli.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

/** A pino logger whose lines are collected. */
function collectingLogger() {
  const lines: { level: number; msg: string; err?: string }[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  return { logger, lines };
}

const FALLBACK = /redis unavailable; using the in-process memory store/;
const BACK = /redis is reachable again/;

interface Tally {
  ok: number;
  limited: number;
  other: Record<string, number>;
  elapsedMs: number;
}

/**
 * Drives `urls` concurrently with `connections` keep-alive connections each,
 * for `durationMs` (bounded), and counts the answers.
 */
async function drive(urls: string[], connections: number, durationMs: number): Promise<Tally> {
  const tally: Tally = { ok: 0, limited: 0, other: {}, elapsedMs: 0 };
  const started = performance.now();
  const deadline = started + durationMs;
  const agents: http.Agent[] = [];
  const worker = async (target: URL, agent: http.Agent) => {
    while (performance.now() < deadline) {
      const status = await new Promise<string>((resolve) => {
        const req = http.get({ host: target.hostname, port: target.port, path: target.pathname, agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(String(res.statusCode)));
          res.on('error', (e) => resolve(e.message));
        });
        req.setTimeout(5000, () => req.destroy(new Error('timeout')));
        req.on('error', (e) => resolve(e.message));
      });
      if (status === '200') tally.ok++;
      else if (status === '429') tally.limited++;
      else tally.other[status] = (tally.other[status] ?? 0) + 1;
    }
  };
  const workers: Promise<void>[] = [];
  for (const u of urls) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
    agents.push(agent);
    for (let i = 0; i < connections; i++) workers.push(worker(new URL(u), agent));
  }
  await Promise.all(workers);
  tally.elapsedMs = performance.now() - started;
  for (const a of agents) a.destroy();
  return tally;
}

describe('RedisStore (real redis-server)', () => {
  let redis: TestRedis;
  let store: RedisStore;
  let inspect: Redis;
  before(async () => {
    redis = await startRedis();
    store = new RedisStore({ url: redis.url, keyPrefix: 'unit:', timeoutMs: 500 });
    inspect = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await inspect.connect();
    await waitFor(() => store.ready, 'the store to connect');
  });
  after(async () => {
    await store.close();
    inspect.disconnect();
    await redis.stop();
  });

  test('token bucket: burst, refusal with the wait, refill on the server clock', async () => {
    const got = [];
    for (let i = 0; i < 4; i++) got.push(await store.takeToken('tb', 10, 3));
    assert.deepEqual(
      got.map((r) => [r.allowed, r.remaining]),
      [
        [true, 2],
        [true, 1],
        [true, 0],
        [false, 0],
      ],
    );
    assert.ok(got[3]!.retryAfterMs > 0 && got[3]!.retryAfterMs <= 100, `retryAfterMs ${got[3]!.retryAfterMs}`);
    assert.ok(got[2]!.resetMs > 200 && got[2]!.resetMs <= 300, `resetMs ${got[2]!.resetMs}`);
    await new Promise((r) => setTimeout(r, 120));
    assert.equal((await store.takeToken('tb', 10, 3)).allowed, true, 'one token back after 100 ms');

    // The key is under keyPrefix, expires when the bucket would be full again (+1 s), and holds the server's time.
    const pttl = await inspect.pttl('unit:tb');
    assert.ok(pttl > 1000 && pttl <= 1400, `PTTL ${pttl}`);
    const [ts, [sec, usec]] = await Promise.all([inspect.hget('unit:tb', 'ts'), inspect.time()]);
    const serverMs = Number(sec) * 1000 + Number(usec) / 1000;
    assert.ok(Math.abs(serverMs - Number(ts)) < 1000, `ts ${ts} vs TIME ${serverMs}`);
  });

  test('token bucket is atomic under concurrency', async () => {
    const results = await Promise.all(Array.from({ length: 200 }, () => store.takeToken('atomic', 0.001, 50)));
    assert.equal(results.filter((r) => r.allowed).length, 50);
  });

  test('delay mode: debt up to maxDelay, then refusal', async () => {
    const r = [];
    for (let i = 0; i < 5; i++) r.push(await store.takeToken('debt', 10, 1, 1, 300));
    assert.deepEqual(
      r.map((x) => x.allowed),
      [true, true, true, true, false],
    );
    assert.equal(r[0]!.delayMs, 0);
    for (const [i, x] of r.slice(1, 4).entries()) {
      // 100, 200, 300 ms, less the few ms between the calls.
      assert.ok(x.delayMs! > (i + 1) * 100 - 30 && x.delayMs! <= (i + 1) * 100, `delay ${x.delayMs}`);
    }
    assert.ok(r[4]!.retryAfterMs > 300, `retry ${r[4]!.retryAfterMs}`);
  });

  test('counter: INCRBY with PEXPIREAT set once', async () => {
    const expiresAt = Date.now() + 60_000;
    assert.equal(await store.increment('cnt', 1, expiresAt), 1);
    assert.equal(await store.increment('cnt', 4, expiresAt + 999_999), 5, 'a later expiresAt does not move the expiry');
    const pttl = await inspect.pttl('unit:cnt');
    assert.ok(pttl > 55_000 && pttl <= 60_000, `PTTL ${pttl}`);
    assert.equal(await store.increment('gone', 1, Date.now() - 1), 1);
    assert.equal(await inspect.exists('unit:gone'), 0, 'an expiry in the past removes the key');
  });
});

describe('FallbackStore: Redis dead or hung never blocks', () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });

  test('redis stopped: answers from memory at once, logs once; logs once more when it is back', async () => {
    const { logger, lines } = collectingLogger();
    const store = new FallbackStore(new RedisStore({ url: redis.url, keyPrefix: 'fb:', timeoutMs: 150 }), logger);
    try {
      await waitFor(() => store.usingRedis, 'the store to use redis');
      assert.ok(lines.some((l) => l.msg === 'state store: connected to redis'));
      const viaRedis = store.takeToken('k', 1, 2);
      assert.ok(viaRedis instanceof Promise, 'a Redis answer is asynchronous');
      assert.equal((await viaRedis).allowed, true);

      await redis.halt();
      const results = [];
      for (let i = 0; i < 20; i++) {
        const t0 = performance.now();
        results.push(await store.takeToken('k', 1, 2));
        assert.ok(performance.now() - t0 < 400, 'never waits on a dead Redis');
        await new Promise((r) => setTimeout(r, 50));
      }
      // The memory bucket starts full (2): limits still hold, per process.
      assert.equal(results.filter((r) => r.allowed).length, 2);
      assert.equal(store.usingRedis, false);
      assert.equal(lines.filter((l) => FALLBACK.test(l.msg)).length, 1, JSON.stringify(lines));

      await redis.restart();
      await waitFor(() => store.usingRedis, 'the store to use redis again', 10_000);
      assert.equal(lines.filter((l) => BACK.test(l.msg)).length, 1);
      assert.equal(lines.filter((l) => FALLBACK.test(l.msg)).length, 1, 'reconnect attempts are not logged');
      assert.equal(await store.increment('c', 1, Date.now() + 10_000), 1);
    } finally {
      await store.close();
    }
  });

  test('redis hung (SIGSTOP): a command is given up after the timeout and memory answers', async () => {
    const { logger, lines } = collectingLogger();
    const store = new FallbackStore(new RedisStore({ url: redis.url, keyPrefix: 'hung:', timeoutMs: 150 }), logger);
    try {
      await waitFor(() => store.usingRedis, 'the store to use redis');
      redis.pause();
      const t0 = performance.now();
      const r = await store.takeToken('k', 1, 1);
      const waited = performance.now() - t0;
      assert.equal(r.allowed, true);
      assert.ok(waited >= 100 && waited < 1000, `waited ${waited.toFixed(0)} ms (timeout 150 ms)`);
      const t1 = performance.now();
      assert.equal((store.takeToken('k', 1, 1) as { allowed: boolean }).allowed, false, 'the next call is answered by memory, synchronously');
      assert.ok(performance.now() - t1 < 50);
      assert.equal(lines.filter((l) => FALLBACK.test(l.msg)).length, 1);
      redis.resume();
      await waitFor(() => store.usingRedis, 'the probe to see redis answer again', 10_000);
      assert.equal(lines.filter((l) => BACK.test(l.msg)).length, 1);
    } finally {
      redis.resume();
      await store.close();
    }
  });

  test('redis unreachable from the start: memory answers, one log line', async () => {
    const { logger, lines } = collectingLogger();
    // A port nothing listens on (the server above is on its own port; this one was just closed).
    const s = http.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as { port: number }).port;
    await new Promise<void>((r) => s.close(() => r()));
    const store = new FallbackStore(new RedisStore({ url: `redis://127.0.0.1:${port}`, keyPrefix: 'x:', timeoutMs: 150 }), logger);
    try {
      const r = store.takeToken('k', 1, 1);
      assert.ok(!(r instanceof Promise), 'answered from memory, synchronously');
      await waitFor(() => lines.some((l) => FALLBACK.test(l.msg)), 'the fallback log line');
      await new Promise((r) => setTimeout(r, 500)); // reconnect attempts meanwhile
      assert.equal(lines.filter((l) => FALLBACK.test(l.msg)).length, 1);
    } finally {
      await store.close();
    }
  });
});

describe('two gateway processes share one limit through Redis', () => {
  const RATE = 100;
  const BURST = 10;
  let redis: TestRedis;
  let up: TestUpstream;
  let dir: string;
  let a: Running;
  let b: Running;
  before(async () => {
    redis = await startRedis();
    up = await startUpstream();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portico-redis-test-'));
    const config = {
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [{ name: 'up', targets: [{ address: up.address }] }],
      routes: [
        { name: 'fast', listener: 'web', upstream: 'up', match: { pathPrefix: '/fast' }, middlewares: [{ 'rate-limit': { rate: RATE, burst: BURST } }] },
        { name: 'slow', listener: 'web', upstream: 'up', match: { pathPrefix: '/slow' }, middlewares: [{ 'rate-limit': { rate: 0.2, burst: 3 } }] },
      ],
      state: { store: 'redis', url: redis.url, keyPrefix: 'two:', timeout: '150ms' },
    };
    const file = path.join(dir, 'portico.json');
    fs.writeFileSync(file, JSON.stringify(config));
    [a, b] = await Promise.all([startCli(file), startCli(file)]);
    await waitFor(() => [a, b].every((p) => p.logs.some((l) => l.msg === 'state store: connected to redis')), 'both gateways to connect to redis');
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await up.close();
    await redis.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('driven together far over the limit, they admit what ONE limit allows (within 10%)', async () => {
    const tally = await drive([`${a.urls.web}/fast`, `${b.urls.web}/fast`], 16, 3000);
    const allowed = BURST + (RATE * tally.elapsedMs) / 1000;
    const ratio = tally.ok / allowed;
    const offered = (tally.ok + tally.limited) / (tally.elapsedMs / 1000);
    console.log(
      `two processes: admitted ${tally.ok} in ${(tally.elapsedMs / 1000).toFixed(2)} s (limit allows ${allowed.toFixed(0)}: ratio ${ratio.toFixed(3)}), ` +
        `refused ${tally.limited}, offered ${offered.toFixed(0)} req/s`,
    );
    assert.deepEqual(tally.other, {}, 'every request was answered 200 or 429');
    assert.ok(offered > 4 * RATE, `offered load ${offered.toFixed(0)} req/s is not well over the limit`);
    assert.ok(Math.abs(ratio - 1) <= 0.1, `admitted/allowed = ${ratio.toFixed(3)}`);
    assert.equal(up.received.length >= tally.ok, true);
  });

  test('Redis stopped mid-test: requests still answered, limited by the memory fallback, one log line', async () => {
    await redis.halt();
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const t0 = performance.now();
      const status = await new Promise<number>((resolve, reject) => {
        http.get(`${a.urls.web}/slow`, { agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode!));
        }).on('error', reject);
      });
      assert.ok(performance.now() - t0 < 1000, 'answered without waiting on Redis');
      statuses.push(status);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(statuses, [200, 200, 200, 429, 429, 429, 429, 429], 'burst 3 from the in-process bucket, then 429');
    await new Promise((r) => setTimeout(r, 1000)); // reconnect attempts meanwhile
    for (const p of [a, b]) {
      const lines = p.logs.filter((l) => typeof l.msg === 'string' && FALLBACK.test(l.msg));
      assert.equal(lines.length, 1, `one fallback line per process: ${JSON.stringify(p.logs.slice(-5))}`);
      assert.equal(lines[0]!.level, 40, 'a warning');
    }

    await redis.restart();
    await waitFor(() => [a, b].every((p) => p.logs.some((l) => typeof l.msg === 'string' && BACK.test(l.msg))), 'both gateways to use redis again', 10_000);
    const inspect = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await inspect.connect();
      await new Promise<void>((resolve, reject) => http.get(`${a.urls.web}/slow`, { agent: false }, (res) => (res.resume(), res.on('end', resolve))).on('error', reject));
      const keys = await inspect.keys('two:rl:slow:*');
      assert.equal(keys.length, 1, 'the limit lives in Redis again');
    } finally {
      inspect.disconnect();
    }
  });
});
