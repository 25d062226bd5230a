// The rate-limit middleware end to end on the memory store: a real gateway
// in this process, a real HTTP upstream, requests over fresh connections.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startGateway, simpleConfig, type TestGateway } from '../helpers/gateway.js';
import { send, type Reply } from '../helpers/http.js';

/** One route per case, each on its own path prefix, all on one listener. */
function route(name: string, middlewares: unknown[], listener = 'web') {
  return { name, listener, upstream: 'up', match: { pathPrefix: `/${name}` }, middlewares };
}

describe('rate-limit (memory store)', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream();
    const base = simpleConfig([up.address], {}, {}, { trustedProxies: ['127.0.0.1/32'] });
    gw = await startGateway({
      ...base,
      routes: [
        route('basic', [{ 'rate-limit': { rate: 0.5, burst: 3 } }]),
        route('byip', [{ 'rate-limit': { rate: 0.5, burst: 1, key: 'ip' } }]),
        route('byheader', [{ 'rate-limit': { rate: 0.5, burst: 1, key: 'header:X-Api-Key' } }]),
        route('byconsumer', [{ 'rate-limit': { rate: 0.5, burst: 1, key: 'consumer' } }]),
        route('stacked', [{ 'rate-limit': { rate: 100, burst: 5 } }, { 'rate-limit': { rate: 0.5, burst: 2, key: 'ip' } }]),
        route('twins', [{ 'rate-limit': { rate: 0.5, burst: 2 } }, { 'rate-limit': { rate: 0.5, burst: 2 } }]),
        route('delay', [{ 'rate-limit': { rate: 10, burst: 1, mode: 'delay', maxDelay: '1s' } }]),
        route('delayshort', [{ 'rate-limit': { rate: 2, burst: 1, mode: 'delay', maxDelay: '1s' } }]),
      ],
    });
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('admits burst requests with RateLimit headers, then 429 JSON with Retry-After', async () => {
    const before = up.received.length;
    const replies: Reply[] = [];
    for (let i = 0; i < 4; i++) replies.push(await send(gw.url(), { path: '/basic/x' }));
    assert.deepEqual(
      replies.map((r) => r.status),
      [200, 200, 200, 429],
    );
    for (const [i, r] of replies.slice(0, 3).entries()) {
      assert.equal(r.headers['ratelimit-policy'], '"basic";q=3;w=6', 'q = burst, w = seconds to refill the burst');
      assert.match(r.headers['ratelimit']! as string, new RegExp(`^"basic";r=${2 - i};t=\\d+$`));
    }
    const limited = replies[3]!;
    assert.equal(limited.headers['content-type'], 'application/json');
    assert.equal(limited.headers['retry-after'], '2', '1 token at 0.5/s: 2 s, rounded up');
    assert.equal(limited.headers['ratelimit-policy'], '"basic";q=3;w=6');
    assert.equal(limited.headers['ratelimit'], '"basic";r=0;t=2', 't is the same point in time as Retry-After');
    const body = JSON.parse(limited.body) as { error: string; code: string; requestId: string };
    assert.equal(body.code, 'RATE_LIMITED');
    assert.equal(body.error, 'rate limit exceeded');
    assert.equal(body.requestId, limited.headers['x-request-id']);
    assert.equal(up.received.length - before, 3, 'the refused request never reached the upstream');
  });

  test('key ip: one bucket per trusted client IP', async () => {
    const from = (ip: string) => send(gw.url(), { path: '/byip', headers: { 'x-forwarded-for': ip } });
    assert.equal((await from('203.0.113.1')).status, 200);
    assert.equal((await from('203.0.113.1')).status, 429);
    assert.equal((await from('203.0.113.2')).status, 200, 'another client has its own bucket');
    assert.equal((await from('203.0.113.2')).status, 429);
  });

  test('key header:NAME: one bucket per header value; without the header, per client IP', async () => {
    const withKey = (k: string) => send(gw.url(), { path: '/byheader', headers: { 'x-api-key': k, 'x-forwarded-for': '198.51.100.7' } });
    assert.equal((await withKey('alpha')).status, 200);
    assert.equal((await withKey('alpha')).status, 429);
    assert.equal((await withKey('beta')).status, 200, 'same client, another header value');
    const noKey = (ip: string) => send(gw.url(), { path: '/byheader', headers: { 'x-forwarded-for': ip } });
    assert.equal((await noKey('198.51.100.7')).status, 200, 'no header: counted by IP, apart from the header buckets');
    assert.equal((await noKey('198.51.100.7')).status, 429);
    assert.equal((await noKey('198.51.100.8')).status, 200);
  });

  test('key consumer without a consumer falls back to the client IP', async () => {
    const from = (ip: string) => send(gw.url(), { path: '/byconsumer', headers: { 'x-forwarded-for': ip } });
    assert.equal((await from('192.0.2.1')).status, 200);
    assert.equal((await from('192.0.2.1')).status, 429);
    assert.equal((await from('192.0.2.2')).status, 200);
  });

  test('two stacked limits: both report, the tighter one refuses', async () => {
    const a = await send(gw.url(), { path: '/stacked' });
    assert.equal(a.status, 200);
    // One field line per limit; Node joins repeated fields with ", " (a structured-field List).
    const items = (v: unknown) => String(v).split(', ').sort();
    assert.deepEqual(items(a.headers['ratelimit-policy']), ['"stacked";q=5;w=1', '"stacked.2";q=2;w=4']);
    const state = items(a.headers['ratelimit']);
    assert.match(state[0]!, /^"stacked";r=[45];t=\d+$/, 'r is read as the response goes out: at 100/s the token may be back');
    assert.match(state[1]!, /^"stacked.2";r=1;t=\d+$/);
    assert.equal((await send(gw.url(), { path: '/stacked' })).status, 200);
    const c = await send(gw.url(), { path: '/stacked' });
    assert.equal(c.status, 429);
    assert.equal(c.headers['ratelimit-policy'], '"stacked.2";q=2;w=4', 'the 429 names the limit that refused');
  });

  test('two identical limits on one route keep separate buckets', async () => {
    // Sharing one bucket, each request would take 2 tokens and only the first would pass.
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await send(gw.url(), { path: '/twins' })).status);
    assert.deepEqual(statuses, [200, 200, 429]);
  });

  test('delay mode: requests over the limit wait for their token instead of being refused', async () => {
    const started = performance.now();
    const replies = await Promise.all(Array.from({ length: 6 }, () => send(gw.url(), { path: '/delay' })));
    const elapsed = performance.now() - started;
    assert.deepEqual(
      replies.map((r) => r.status),
      [200, 200, 200, 200, 200, 200],
    );
    // 1 token at once, then one every 100 ms: the last request waits about 500 ms.
    assert.ok(elapsed >= 450, `6 requests at 10/s with burst 1 took only ${elapsed.toFixed(0)} ms`);
    assert.ok(elapsed < 3000, `took ${elapsed.toFixed(0)} ms`);
    const times = replies.map((r) => r.ms).sort((x, y) => x - y);
    assert.ok(times[5]! - times[0]! >= 350, `answers spread over the refill time: ${times.map((t) => t.toFixed(0)).join(', ')} ms`);
  });

  test('delay mode: beyond maxDelay the request is refused with 429', async () => {
    const replies = await Promise.all(Array.from({ length: 6 }, () => send(gw.url(), { path: '/delayshort' })));
    const statuses = replies.map((r) => r.status).sort();
    // At 2/s: 1 immediate, 2 delayed by 500 and 1000 ms (<= maxDelay 1 s), 3 refused.
    assert.deepEqual(statuses, [200, 200, 200, 429, 429, 429]);
    for (const r of replies.filter((x) => x.status === 429)) {
      // A debt of 2 tokens plus the one asked for, at 2/s: 1.5 s, rounded up.
      assert.match(String(r.headers['retry-after']), /^[12]$/);
      assert.equal((JSON.parse(r.body) as { code: string }).code, 'RATE_LIMITED');
    }
  });
});
