import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';

describe('ip-restriction', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  /** The client address is taken from X-Forwarded-For because loopback is a trusted proxy. */
  const from = (path: string, ip?: string) => send(gw.url(), { path, headers: ip === undefined ? {} : { 'x-forwarded-for': ip } });

  before(async () => {
    up = await startUpstream();
    const route = (name: string, prefix: string, options: unknown) => ({
      name,
      listener: 'web',
      match: { pathPrefix: prefix },
      upstream: 'up',
      middlewares: [{ 'ip-restriction': options }],
    });
    gw = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false, trustedProxies: ['127.0.0.1', '::1'] }],
      upstreams: [{ name: 'up', targets: [{ address: up.address }] }],
      routes: [
        route('deny', '/deny', { deny: ['10.0.0.0/8', '2001:db8::/32'] }),
        route('allow', '/allow', { allow: ['192.168.0.0/16', '2001:db8:aa::/48', '198.51.100.7'], deny: ['192.168.1.0/24', '2001:db8:aa:1::/64'] }),
        route('loopback', '/loop', { allow: ['127.0.0.1', '::1'] }),
      ],
    });
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('deny list: IPv4 and IPv6 CIDRs, IPv4-mapped IPv6 included', async () => {
    const before = up.received.length;
    for (const ip of ['10.0.0.1', '10.255.255.255', '2001:db8::1', '2001:db8:ffff::9', '::ffff:10.1.2.3']) {
      const r = await from('/deny/x', ip);
      assert.equal(r.status, 403, ip);
      const body = JSON.parse(r.body) as { code: string; requestId: string };
      assert.equal(body.code, 'FORBIDDEN');
      assert.equal(body.requestId, r.headers['x-request-id']);
    }
    assert.equal(up.received.length, before, 'denied requests never reach the upstream');
    for (const ip of ['11.0.0.1', '9.255.255.255', '2001:db9::1', '2001:db7::1', '::1']) {
      assert.equal((await from('/deny/x', ip)).status, 200, ip);
    }
    assert.equal((await from('/deny/x')).status, 200, 'the direct loopback peer');
  });

  test('allow list: anything not listed is denied, and deny wins inside it', async () => {
    for (const ip of ['192.168.0.1', '192.168.200.3', '2001:db8:aa::1', '2001:db8:aa:2::1', '198.51.100.7']) {
      assert.equal((await from('/allow/x', ip)).status, 200, ip);
    }
    for (const ip of ['192.168.1.1', '192.168.1.254', '2001:db8:aa:1::5', '198.51.100.8', '8.8.8.8', '2001:db8:ab::1', '10.0.0.1']) {
      assert.equal((await from('/allow/x', ip)).status, 403, ip);
    }
    assert.equal((await from('/allow/x')).status, 403, 'loopback is not in the allow list');
  });

  test('single addresses, and a forged chain cannot hide the client behind a trusted proxy', async () => {
    assert.equal((await from('/loop/x')).status, 200);
    assert.equal((await from('/loop/x', '203.0.113.1')).status, 403);
    // The right-most untrusted hop is the client: 203.0.113.1 here, whatever the client wrote to its left.
    assert.equal((await from('/loop/x', '127.0.0.1, 203.0.113.1')).status, 403);
    assert.equal((await from('/deny/x', '1.1.1.1, 10.0.0.5')).status, 403);
    assert.equal((await from('/deny/x', '10.0.0.5, 1.1.1.1')).status, 200);
  });
});

describe('ip-restriction without trusted proxies', () => {
  test('X-Forwarded-For from an untrusted peer is ignored: the peer address decides', async (t) => {
    const up = await startUpstream();
    const gw = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [{ name: 'up', targets: [{ address: up.address }] }],
      routes: [
        { name: 'a', listener: 'web', match: { pathPrefix: '/a' }, upstream: 'up', middlewares: [{ 'ip-restriction': { deny: ['127.0.0.0/8'] } }] },
        { name: 'b', listener: 'web', match: { pathPrefix: '/b' }, upstream: 'up', middlewares: [{ 'ip-restriction': { allow: ['203.0.113.0/24'] } }] },
      ],
    });
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    assert.equal((await send(gw.url(), { path: '/a', headers: { 'x-forwarded-for': '8.8.8.8' } })).status, 403);
    assert.equal((await send(gw.url(), { path: '/b', headers: { 'x-forwarded-for': '203.0.113.5' } })).status, 403);
  });
});
