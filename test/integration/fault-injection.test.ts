import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { send, type Reply } from '../helpers/http.js';

async function timed(p: Promise<Reply>): Promise<Reply & { ms: number }> {
  const start = process.hrtime.bigint();
  const r = await p;
  return { ...r, ms: Number(process.hrtime.bigint() - start) / 1e6 };
}

describe('fault-injection', () => {
  let up: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    up = await startUpstream();
    const route = (name: string, prefix: string, options: unknown) => ({
      name,
      listener: 'web',
      match: { pathPrefix: prefix },
      upstream: 'up',
      middlewares: [{ 'fault-injection': options }],
    });
    gw = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [{ name: 'up', targets: [{ address: up.address }] }],
      routes: [
        route('abort-all', '/abort-all', { abort: { percent: 100, status: 503 } }),
        route('abort-none', '/abort-none', { abort: { percent: 0, status: 503 } }),
        route('abort-default', '/abort-default', { abort: { status: 418 } }),
        route('abort-half', '/abort-half', { abort: { percent: 50, status: 500 } }),
        route('gated', '/gated', { abort: { status: 504 }, header: 'X-Chaos' }),
        route('delay', '/delay', { delay: { percent: 100, duration: '200ms' } }),
        route('delay-none', '/delay-none', { delay: { percent: 0, duration: '5s' } }),
        route('both', '/both', { delay: { duration: '100ms' }, abort: { status: 502 } }),
      ],
    });
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('abort 100%: the configured status, JSON FAULT_INJECTED, the upstream untouched', async () => {
    const before = up.received.length;
    for (let i = 0; i < 5; i++) {
      const r = await send(gw.url(), { path: '/abort-all/x' });
      assert.equal(r.status, 503);
      const body = JSON.parse(r.body) as { code: string; requestId: string };
      assert.equal(body.code, 'FAULT_INJECTED');
      assert.equal(body.requestId, r.headers['x-request-id']);
    }
    const r = await send(gw.url(), { path: '/abort-default/x' });
    assert.equal(r.status, 418, 'percent defaults to 100');
    assert.equal(up.received.length, before);
  });

  test('abort 0%: every request is proxied', async () => {
    const before = up.received.length;
    for (let i = 0; i < 20; i++) assert.equal((await send(gw.url(), { path: '/abort-none/x' })).status, 200);
    assert.equal(up.received.length, before + 20);
  });

  test('abort 50%: both outcomes occur', async () => {
    const seen = new Set<number>();
    for (let i = 0; i < 200 && seen.size < 2; i++) seen.add((await send(gw.url(), { path: '/abort-half/x' })).status);
    assert.deepEqual([...seen].sort(), [200, 500]);
  });

  test('header-gated: only requests carrying the header are affected', async () => {
    assert.equal((await send(gw.url(), { path: '/gated/x' })).status, 200);
    assert.equal((await send(gw.url(), { path: '/gated/x', headers: { 'x-chaos': '1' } })).status, 504);
    assert.equal((await send(gw.url(), { path: '/gated/x', headers: { 'X-CHAOS': '' } })).status, 504);
    assert.equal((await send(gw.url(), { path: '/gated/x', headers: { 'x-chaos-other': '1' } })).status, 200);
  });

  test('delay: the request is proxied after at least the duration', async () => {
    const r = await timed(send(gw.url(), { path: '/delay/x' }));
    assert.equal(r.status, 200);
    assert.ok(r.ms >= 190, `took ${r.ms} ms`);
    const fast = await timed(send(gw.url(), { path: '/delay-none/x' }));
    assert.equal(fast.status, 200);
    assert.ok(fast.ms < 5000, 'a 0% delay never waits the 5s');
  });

  test('delay then abort', async () => {
    const before = up.received.length;
    const r = await timed(send(gw.url(), { path: '/both/x' }));
    assert.equal(r.status, 502);
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'FAULT_INJECTED');
    assert.ok(r.ms >= 90, `took ${r.ms} ms`);
    assert.equal(up.received.length, before);
  });

  test('a client that leaves during a delay is not proxied', async () => {
    const before = up.received.length;
    const u = new URL(gw.url());
    await new Promise<void>((resolve) => {
      const req = http.get({ host: u.hostname, port: u.port, path: '/delay/gone', agent: false });
      req.on('error', () => resolve());
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 50);
    });
    // A later delayed request's timer fires after the abandoned one's, so once it is answered the first was decided.
    assert.equal((await send(gw.url(), { path: '/delay/next' })).status, 200);
    assert.deepEqual(up.received.slice(before).map((r) => r.url), ['/delay/next']);
  });
});
