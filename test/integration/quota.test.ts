// Consumer quotas (qps, qpd) end to end: key-auth identifies the consumer,
// the compiler adds the quota check right after it; memory and Redis stores.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { dayWindow } from '../../src/state/day.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function get(base: string, path: string, key?: string, extra: Record<string, string> = {}): Promise<Reply> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = key === undefined ? { ...extra } : { 'x-api-key': key, ...extra };
    const req = http.request({ host: u.hostname, port: u.port, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
    req.end();
  });
}

const code = (r: Reply) => (r.status === 200 ? 200 : `${r.status} ${(JSON.parse(r.body) as { code: string }).code}`);

const KEYS = {
  a: 'key-for-consumer-a-0001',
  b: 'key-for-consumer-b-0001',
  c: 'key-for-consumer-c-0001',
  d: 'key-for-consumer-d-0001',
  e: 'key-for-consumer-e-0001',
};

function config(upstream: string, state: Record<string, unknown>) {
  return {
    listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
    upstreams: [{ name: 'up', targets: [{ address: upstream }] }],
    consumers: [
      { id: 'a', keys: [KEYS.a], qps: 0.5 },
      { id: 'b', keys: [KEYS.b], qps: 0.5 },
      { id: 'c', keys: [KEYS.c], qpd: 3 },
      { id: 'd', keys: [KEYS.d] },
      { id: 'e', keys: [KEYS.e] },
    ],
    routes: [
      { name: 'one', listener: 'web', upstream: 'up', match: { pathPrefix: '/one' }, middlewares: [{ 'key-auth': {} }] },
      { name: 'two', listener: 'web', upstream: 'up', match: { pathPrefix: '/two' }, middlewares: [{ 'key-auth': {} }, { 'rate-limit': { rate: 0.1, burst: 1, key: 'consumer' } }] },
      { name: 'open', listener: 'web', upstream: 'up', match: { pathPrefix: '/open' } },
      { name: 'probe', listener: 'web', upstream: 'up', match: { pathPrefix: '/probe' }, middlewares: [{ 'rate-limit': { rate: 1000, key: 'header:X-Probe' } }] },
    ],
    state,
  };
}

describe('consumer quotas (memory store)', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream();
    gw = await startGateway(config(up.address, { store: 'memory', timeZone: 'Pacific/Kiritimati' }));
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('qps: a token bucket per consumer, shared by every route', async () => {
    // qps 0.5: burst max(1, 0.5) = 1, one request every 2 s.
    const got = [await get(gw.url(), '/one', KEYS.a), await get(gw.url(), '/one', KEYS.a)];
    assert.deepEqual(got.map(code), [200, '429 QUOTA_EXCEEDED']);
    assert.equal(got[1]!.headers['retry-after'], '2');
    assert.equal(got[1]!.headers['ratelimit-policy'], '"qps";q=1;w=2');
    assert.equal(got[1]!.headers['ratelimit'], '"qps";r=0;t=2');
    assert.equal((JSON.parse(got[1]!.body) as { error: string }).error, 'consumer requests-per-second quota exceeded');
    assert.equal(code(await get(gw.url(), '/two', KEYS.a)), '429 QUOTA_EXCEEDED', 'the same bucket on another route');
    assert.equal(code(await get(gw.url(), '/one', KEYS.b)), 200, 'another consumer has its own bucket');
    assert.equal(code(await get(gw.url(), '/one', KEYS.d)), 200, 'no quota configured');
  });

  test('qpd: per consumer per day in state.timeZone; Retry-After is the time to that midnight', async () => {
    const got = [];
    for (let i = 0; i < 4; i++) got.push(await get(gw.url(), '/one', KEYS.c));
    const now = Date.now();
    assert.deepEqual(got.map(code), [200, 200, 200, '429 QUOTA_EXCEEDED']);
    const expected = Math.ceil((dayWindow(now, 'Pacific/Kiritimati').end - now) / 1000);
    const retry = Number(got[3]!.headers['retry-after']);
    assert.ok(Math.abs(retry - expected) <= 2, `Retry-After ${retry}, expected about ${expected} (next midnight at UTC+14)`);
    assert.equal(got[3]!.headers['ratelimit-policy'], '"qpd";q=3;w=86400');
    assert.equal(got[3]!.headers['ratelimit'], `"qpd";r=0;t=${retry}`);
  });

  test('runs after authentication, and only on routes with an auth middleware', async () => {
    assert.equal(code(await get(gw.url(), '/one')), '401 UNAUTHORIZED');
    assert.equal(code(await get(gw.url(), '/one', 'not-a-key-of-anyone-000')), '401 UNAUTHORIZED');
    for (let i = 0; i < 5; i++) assert.equal(code(await get(gw.url(), '/open', KEYS.c)), 200, 'no auth middleware: no consumer, no quota');
  });

  test('rate-limit key consumer counts per identified consumer', async () => {
    assert.equal(code(await get(gw.url(), '/two', KEYS.d)), 200);
    assert.equal(code(await get(gw.url(), '/two', KEYS.d)), '429 RATE_LIMITED');
    assert.equal(code(await get(gw.url(), '/two', KEYS.e)), 200, 'another consumer, another bucket');
  });
});

describe('consumer quotas through Redis: two gateways share them', () => {
  let redis: TestRedis;
  let up: TestUpstream;
  let gw1: TestGateway;
  let gw2: TestGateway;
  before(async () => {
    redis = await startRedis();
    up = await startUpstream();
    const doc = config(up.address, { store: 'redis', url: redis.url, keyPrefix: 'quota-test:' });
    gw1 = await startGateway(doc);
    gw2 = await startGateway(doc);
    // Until its connection is ready a gateway answers from memory: wait until a limit of each one shows up in Redis.
    let n = 0;
    for (const [name, gw] of [['gw1', gw1], ['gw2', gw2]] as const) {
      await waitFor(async () => {
        const tag = `${name}-${n++}`;
        await get(gw.url(), '/probe', undefined, { 'x-probe': tag });
        return (await redis.command('KEYS', `quota-test:rl:probe:*:h:${tag}`)).includes(tag);
      }, `${name} to use redis`);
    }
  });
  after(async () => {
    await gw1?.close();
    await gw2?.close();
    await up.close();
    await redis.stop();
  });

  test('qpd and qps count across both gateways', async () => {
    const c = [await get(gw1.url(), '/one', KEYS.c), await get(gw2.url(), '/one', KEYS.c), await get(gw1.url(), '/one', KEYS.c), await get(gw2.url(), '/one', KEYS.c)];
    assert.deepEqual(c.map(code), [200, 200, 200, '429 QUOTA_EXCEEDED']);
    const a = [await get(gw1.url(), '/one', KEYS.a), await get(gw2.url(), '/one', KEYS.a), await get(gw1.url(), '/one', KEYS.a)];
    assert.deepEqual(a.map(code), [200, '429 QUOTA_EXCEEDED', '429 QUOTA_EXCEEDED']);
    const keys = await redis.command('KEYS', 'quota-test:quota:*');
    assert.match(keys, /quota-test:quota:qps:a/);
    assert.match(keys, /quota-test:quota:qpd:c:\d{4}-\d{2}-\d{2}/);
  });
});
