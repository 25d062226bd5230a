import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { freePort, startUpstream } from '../helpers/upstream.js';
import { startGateway, simpleConfig } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';

function get(url: string, agent: http.Agent | false = false): Promise<{ status: number; body: string; socketPort: number | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body, socketPort: res.socket?.localPort }));
    });
    req.on('error', reject);
  });
}

test('a slow response started before a reload completes on the old snapshot', async (t) => {
  const slow = await startUpstream((_req, res) => setTimeout(() => res.end('old upstream, slow'), 3000));
  const fresh = await startUpstream((_req, res) => res.end('new upstream'));
  const gw = await startGateway(simpleConfig([slow.address]));
  t.after(async () => {
    await gw.close();
    await slow.close();
    await fresh.close();
  });

  const inflight = get(gw.url() + '/slow');
  await waitFor(() => slow.received.length === 1, 'the slow request to reach the upstream');
  const port = gw.url();
  const result = await gw.reload(simpleConfig([fresh.address]));
  assert.deepEqual(result, { ok: true, version: 2 });
  assert.equal(gw.url(), port, 'the listener kept its socket');

  const after = await get(gw.url() + '/now');
  assert.equal(after.body, 'new upstream');
  const old = await inflight;
  assert.equal(old.status, 200);
  assert.equal(old.body, 'old upstream, slow');
});

test('keep-alive connections survive a reload that does not change the listener', async (t) => {
  const a = await startUpstream((_req, res) => res.end('a'));
  const b = await startUpstream((_req, res) => res.end('b'));
  const gw = await startGateway(simpleConfig([a.address]));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(async () => {
    agent.destroy();
    await gw.close();
    await a.close();
    await b.close();
  });
  const first = await get(gw.url(), agent);
  await gw.reload(simpleConfig([b.address]));
  const second = await get(gw.url(), agent);
  assert.equal(first.body, 'a');
  assert.equal(second.body, 'b');
  assert.equal(second.socketPort, first.socketPort, 'the same downstream connection carried both requests');
});

test('a reload that cannot bind keeps the old config serving', async (t) => {
  const a = await startUpstream((_req, res) => res.end('a'));
  const blocker = http.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const busy = (blocker.address() as { port: number }).port;
  const gw = await startGateway(simpleConfig([a.address]));
  t.after(async () => {
    await gw.close();
    await a.close();
    blocker.close();
  });
  const next = simpleConfig([a.address]);
  next.listeners.push({ name: 'second', protocol: 'http', listen: `127.0.0.1:${busy}`, accessLog: false });
  const result = await gw.reload(next);
  assert.equal(result.ok, false);
  assert.match((result as { error: string }).error, /cannot listen on 127\.0\.0\.1:\d+/);
  assert.equal(gw.gateway.current.version, 1);
  assert.equal((await get(gw.url())).body, 'a');
});

test('listeners renamed, moved and removed by a reload', async (t) => {
  const a = await startUpstream((_req, res) => res.end('a'));
  const port = await freePort();
  const first = simpleConfig([a.address], {}, {}, { listen: `127.0.0.1:${port}` });
  const gw = await startGateway(first);
  t.after(async () => {
    await gw.close();
    await a.close();
  });
  const oldUrl = gw.url();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const before = await get(oldUrl, agent);
  const renamed = {
    listeners: [{ name: 'other', protocol: 'http', listen: `127.0.0.1:${port}`, accessLog: false }],
    upstreams: [{ name: 'up', targets: [{ address: a.address }] }],
    routes: [{ name: 'r', listener: 'other', upstream: 'up' }],
  };
  // Same address under a new name: the socket and its connections are kept.
  assert.equal((await gw.reload(renamed)).ok, true);
  assert.equal(gw.url('other'), oldUrl);
  const again = await get(oldUrl, agent);
  assert.equal(again.socketPort, before.socketPort);
  const moved = { ...renamed, listeners: [{ name: 'other', protocol: 'http', listen: '127.0.0.2:0', accessLog: false }] };
  assert.equal((await gw.reload(moved)).ok, true);
  assert.notEqual(gw.url('other'), oldUrl);
  assert.equal((await get(gw.url('other'))).body, 'a');
  agent.destroy();
  await waitFor(async () => {
    try {
      await get(oldUrl);
      return false;
    } catch {
      return true;
    }
  }, 'the old address to stop accepting');
});

test('two port-0 listeners on one host get a port each', async (t) => {
  const a = await startUpstream((_req, res) => res.end('a'));
  const doc = simpleConfig([a.address]);
  doc.listeners.push({ name: 'second', protocol: 'http', listen: '127.0.0.1:0', accessLog: false });
  doc.routes.push({ name: 'r2', listener: 'second', upstream: 'up' });
  const gw = await startGateway(doc);
  t.after(async () => {
    await gw.close();
    await a.close();
  });
  assert.notEqual(gw.url('web'), gw.url('second'));
  assert.equal((await get(gw.url('second'))).body, 'a');
});
