// GET /limits: the keys every rate limit and consumer quota tracks, with their
// usage, read-only, bounded; against the memory store and a real Redis.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { send } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { openFds, fdsSettle } from '../helpers/fds.js';
import { formatHostPort } from '../../src/net/address.js';
import { MAX_KEYS, type LimitsReport } from '../../src/admin/limits.js';

const ALICE = 'key-for-consumer-alice-01';
const BOB = 'key-for-consumer-bob-0001';

function config(upstream: string, state: Record<string, unknown>) {
  return {
    listeners: [
      { name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false },
      { name: 'tcp', protocol: 'tcp', listen: '127.0.0.1:0', accessLog: false, upstream: 'up', middlewares: [{ 'rate-limit': { rate: 0.01, burst: 5 } }] },
    ],
    upstreams: [{ name: 'up', targets: [{ address: upstream }] }],
    consumers: [
      { id: 'alice', keys: [ALICE], qps: 100, qpd: 1000 },
      { id: 'bob', keys: [BOB], qpd: 5 },
    ],
    routes: [
      {
        name: 'api',
        listener: 'web',
        upstream: 'up',
        match: { pathPrefix: '/api' },
        middlewares: [{ 'key-auth': {} }, { 'rate-limit': { rate: 0.01, burst: 10, key: 'consumer' } }, { 'rate-limit': { rate: 0.01, burst: 20, key: 'header:X-User' } }],
      },
      { name: 'open', listener: 'web', upstream: 'up', match: { pathPrefix: '/open' }, middlewares: [{ 'rate-limit': { rate: 0.01, burst: 3, key: 'header:X-Tenant' } }] },
    ],
    admin: { listen: '127.0.0.1:0' },
    state,
  };
}

/** `count` requests over one keep-alive connection, each with its own X-Tenant; all must pass. */
async function tenants(base: string, count: number, tag: string): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < count; i++) {
      const status = await new Promise<number>((resolve, reject) => {
        const u = new URL(base);
        http
          .get({ host: u.hostname, port: u.port, path: '/open', agent, headers: { 'x-tenant': `${tag}-${i}` } }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode!));
          })
          .on('error', reject);
      });
      assert.equal(status, 200);
    }
  } finally {
    agent.destroy();
  }
}

async function limits(gw: TestGateway): Promise<LimitsReport> {
  const r = await send(`http://${formatHostPort(gw.gateway.adminAddress()!)}`, { path: '/limits' });
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body) as LimitsReport;
}

function scenario(name: string, state: () => Record<string, unknown>, ready: (gw: TestGateway) => Promise<void>): void {
  describe(`GET /limits with the ${name} store`, () => {
    let up: TestUpstream;
    let gw: TestGateway;
    let fds: number;
    before(async () => {
      up = await startUpstream((_req, res) => res.end('ok'));
      fds = openFds();
      gw = await startGateway(config(up.address, state()));
      await ready(gw);
    });
    after(async () => {
      await gw.close();
      await up.close();
    });

    test('every limit lists its keys with what is left, the limit and the reset time; reading takes nothing', async () => {
      const started = Date.now();
      for (let i = 0; i < 3; i++) assert.equal((await send(gw.url(), { path: '/api', headers: { 'x-api-key': ALICE, 'x-user': 'u1' } })).status, 200);
      assert.equal((await send(gw.url(), { path: '/api', headers: { 'x-api-key': ALICE, 'x-user': 'u2' } })).status, 200);
      assert.equal((await send(gw.url(), { path: '/api', headers: { 'x-api-key': BOB, 'x-user': 'u2' } })).status, 200);
      const tcp = gw.gateway.listenerAddress('tcp')!;
      for (let i = 0; i < 2; i++) {
        const s = net.connect({ host: tcp.host, port: tcp.port });
        await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
        s.destroy();
      }

      const report = await waitFor(async () => {
        const r = await limits(gw);
        return r.listeners[0]!.keys.length > 0 ? r : undefined;
      }, 'the connection limit to show its key');
      assert.equal(report.maxKeys, MAX_KEYS);
      const [consumer, user, open] = report.routes;
      assert.deepEqual([consumer!.route, consumer!.policy, consumer!.per, consumer!.burst, consumer!.middleware], ['api', 'api', 'consumer', 10, 'rate-limit']);
      const byKey = (keys: { key: string }[]) => Object.fromEntries(keys.map((k) => [k.key, k]));
      assert.deepEqual(
        consumer!.keys.map((k) => [k.key, k.remaining, k.limit]).sort(),
        [['c:alice', 6, 10], ['c:bob', 9, 10]],
      );
      assert.equal(consumer!.truncated, false);
      assert.deepEqual([user!.policy, user!.per], ['api.2', 'header:X-User']);
      assert.deepEqual(
        user!.keys.map((k) => [k.key, k.remaining, k.limit]).sort(),
        [['h:u1', 17, 20], ['h:u2', 18, 20]],
      );
      assert.deepEqual(open!.keys, []);
      for (const k of [...consumer!.keys, ...user!.keys]) {
        const reset = Date.parse(k.resetAt);
        assert.ok(reset > started, `${k.key} resets in the future`);
      }

      assert.deepEqual(report.consumerQuota.routes, ['api']);
      assert.deepEqual(report.consumerQuota.qps.keys.map((k) => [k.key, k.limit]), [['alice', 100]]);
      const qpd = byKey(report.consumerQuota.qpd.keys) as Record<string, LimitsReport['consumerQuota']['qpd']['keys'][number]>;
      assert.deepEqual([qpd.alice!.count, qpd.alice!.limit, qpd.bob!.count, qpd.bob!.limit], [4, 1000, 1, 5]);
      assert.match(qpd.alice!.day, /^\d{4}-\d{2}-\d{2}$/);
      assert.ok(Date.parse(qpd.alice!.resetAt) > started);

      assert.equal(report.listeners.length, 1);
      const l = report.listeners[0]!;
      assert.deepEqual([l.listener, l.index, l.per, l.burst], ['tcp', 0, 'ip', 5]);
      assert.deepEqual(l.keys.map((k) => [k.key, k.remaining, k.limit]), [['127.0.0.1', 3, 5]]);

      // Read-only: asking again takes no token and counts no request.
      const again = await limits(gw);
      assert.deepEqual(again.routes[0]!.keys.map((k) => [k.key, k.remaining]).sort(), [['c:alice', 6], ['c:bob', 9]]);
      assert.deepEqual(again.consumerQuota.qpd.keys.map((k) => k.count).sort(), [1, 4]);
    });

    test(`keys are client-chosen: at most ${MAX_KEYS} per limit, then truncated`, async () => {
      await tenants(gw.url(), MAX_KEYS + 1, 't');
      const report = await limits(gw);
      const open = report.routes.find((r) => r.route === 'open')!;
      assert.equal(open.keys.length, MAX_KEYS);
      assert.equal(open.truncated, true);
      assert.ok(open.keys.every((k) => /^h:t-\d+$/.test(k.key) && k.remaining === 2 && k.limit === 3));
      // The other limits are not cut by it.
      assert.equal(report.routes.find((r) => r.policy === 'api')!.truncated, false);
    });

    test('only GET: other methods are 405', async () => {
      const r = await send(`http://${formatHostPort(gw.gateway.adminAddress()!)}`, { method: 'POST', path: '/limits' });
      assert.equal(r.status, 405);
      assert.equal(r.headers.allow, 'GET');
      assert.equal(JSON.parse(r.body).code, 'METHOD_NOT_ALLOWED');
    });

    test('file descriptors come back after the gateway closes', async () => {
      await gw.close();
      await fdsSettle(fds);
      gw = await startGateway(config(up.address, state()));
    });
  });
}

scenario('memory', () => ({ store: 'memory' }), async () => {});

let redis: TestRedis;
// Glob characters in the key prefix: the SCAN pattern must escape them.
const PREFIX = 'lim[*]?:';
/** Keys of other prefixes, which must not be listed: the second one matches the prefix read as an unescaped glob. */
async function strangers(): Promise<void> {
  await redis.command('HSET', 'other:rl:api:x:c:mallory', 'tk', '1', 'ts', '1');
  await redis.command('HSET', 'lim*X:quota:qps:mallory', 'tk', '1', 'ts', '1');
  await redis.command('SET', 'lim*X:quota:qpd:mallory:2026-01-01', '7', 'PX', '600000');
}
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});
scenario(
  'redis',
  () => ({ store: 'redis', url: redis.url, keyPrefix: PREFIX }),
  async (gw) => {
    let n = 0;
    // Until its connection is ready the gateway answers from memory: wait until a limit shows up in Redis.
    await waitFor(async () => {
      const tag = `probe-${n++}`;
      await send(gw.url(), { path: '/open', headers: { 'x-tenant': tag } });
      return (await redis.command('KEYS', 'lim\\[\\*\\]\\?:rl:open:*')).includes(tag);
    }, 'the gateway to use redis');
    await redis.command('FLUSHDB');
    await strangers();
  },
);
