import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startUpstream } from '../helpers/upstream.js';
import { startGateway, simpleConfig } from '../helpers/gateway.js';
import { formatHostPort } from '../../src/net/address.js';

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false, headers }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject);
  });
}

test('statistics per route, upstream and target, served by the admin API', async (t) => {
  const up = await startUpstream((req, res) => {
    res.statusCode = req.url === '/fail' ? 503 : 200;
    res.end('x'.repeat(100));
  });
  const gw = await startGateway({ ...simpleConfig([up.address]), admin: { listen: '127.0.0.1:0' } });
  t.after(async () => {
    await gw.close();
    await up.close();
  });
  for (let i = 0; i < 8; i++) await get(gw.url() + '/ok');
  for (let i = 0; i < 2; i++) await get(gw.url() + '/fail');

  const route = await gw.gateway.stats.view('route', 'r');
  assert.ok(route);
  assert.equal(route.requests, 10);
  assert.equal(route.statusClasses[2], 8);
  assert.equal(route.statusClasses[5], 2);
  assert.equal(route.bytesSent, 1000);
  assert.equal(route.latency.counts.reduce((a, b) => a + b, 0), 10);
  assert.equal(route.today, 10);
  const target = await gw.gateway.stats.view('target', up.address);
  assert.equal(target?.requests, 10);

  const admin = gw.gateway.adminAddress()!;
  const reply = await get(`http://${formatHostPort(admin)}/stats`);
  assert.equal(reply.status, 200);
  const report = JSON.parse(reply.body) as Record<string, Record<string, { requests: number; today: number }>>;
  assert.equal(report.route!.r!.requests, 10);
  assert.equal(report.upstream!.up!.today, 10);
  assert.deepEqual(Object.keys(report.consumer!), []);

  const status = JSON.parse((await get(`http://${formatHostPort(admin)}/status`)).body) as {
    upstreams: { name: string; panic: boolean; targets: { address: string; healthy: boolean; inflight: number }[] }[];
  };
  assert.equal(status.upstreams[0]!.name, 'up');
  assert.equal(status.upstreams[0]!.panic, false);
  assert.deepEqual(
    status.upstreams[0]!.targets.map((x) => [x.address, x.healthy, x.inflight]),
    [[up.address, true, 0]],
  );
});

test('two gateways sharing a Redis store add up their QPS and daily totals', async (t) => {
  const { startRedis } = await import('../helpers/redis.js');
  const redis = await startRedis();
  const up = await startUpstream((_req, res) => res.end('ok'));
  const doc = { ...simpleConfig([up.address]), state: { store: 'redis', url: redis.url, keyPrefix: `stats-${process.pid}:` } };
  const one = await startGateway(doc);
  const two = await startGateway(doc);
  t.after(async () => {
    await one.close();
    await two.close();
    await up.close();
    await redis.stop();
  });
  const { waitFor } = await import('../helpers/wait.js');
  // The store connects asynchronously (until then it answers from memory): wait for both connections.
  const usingRedis = (g: typeof one) => (g.gateway as unknown as { state: { store: { usingRedis?: boolean } } }).state.store.usingRedis === true;
  await waitFor(() => usingRedis(one) && usingRedis(two), 'both gateways to reach Redis');
  for (let i = 0; i < 6; i++) await get(one.url() + '/a');
  for (let i = 0; i < 4; i++) await get(two.url() + '/b');
  await waitFor(async () => (await one.gateway.stats.view('route', 'r'))?.today === 10, 'the daily total of both gateways', 10_000, 100);
  const mine = await one.gateway.stats.view('route', 'r');
  assert.equal(mine?.requests, 6, 'per-process counters stay per process');
  assert.equal(mine?.today, 10);
});
