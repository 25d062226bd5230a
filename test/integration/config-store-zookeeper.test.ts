import { after, before, describe, it } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startZookeeper, type TestZookeeper } from '../helpers/zookeeper.js';
import { runCli } from '../helpers/cli.js';
import { send } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { api, assert, logged, push, ready, respondRoute, sharedDoc, startInstance, until, type StoreUnderTest } from '../helpers/config-store-fleet.js';

describe('config in ZooKeeper: a fleet of real portico processes on one real ZooKeeper', { timeout: 400_000 }, () => {
  let zk: TestZookeeper;
  let store: StoreUnderTest;
  let dir: string;

  before(async () => {
    zk = await startZookeeper();
    dir = mkdtempSync(join(tmpdir(), 'portico-fleet-zk-'));
    store = {
      // A 2 s session, so an expiry takes seconds.
      configSource: `{ type: zookeeper, servers: ['${zk.hosts}'], path: /fleet, timeout: 1s, sessionTimeout: 2s }`,
      url: `zookeeper://${zk.hosts}/fleet`,
      writeRaw: async (text) => void (await zk.cli('set', '/fleet/config', text)),
    };
  });
  after(async () => {
    await zk?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('converges: a route added through instance A\'s admin API serves on instance B; zkCli.sh edits apply everywhere', async (t) => {
    const local = join(dir, 'probe.yaml');
    writeFileSync(local, `configSource: ${store.configSource}\nlisteners: [{ name: web, protocol: http, listen: 127.0.0.1:0 }]\n`);
    const pushed = await push(store, dir, sharedDoc([respondRoute('hello', '/hello', 'v1')]), local);
    assert.equal(pushed.code, 0, pushed.stderr);

    const a = await startInstance(t, dir, 'a', store);
    const b = await startInstance(t, dir, 'b', store);
    for (const i of [a, b]) assert.equal((await send(i.web, { path: '/hello' })).body, 'v1');

    const t0 = performance.now();
    const created = await api(a.admin, 'POST', '/routes', respondRoute('added', '/added', 'from-a'));
    assert.equal(created.status, 201, created.body);
    await until(b.web, '/added', 200, 'from-a');
    t.diagnostic(`zookeeper: route POSTed to A serves on B after ${(performance.now() - t0).toFixed(1)} ms`);

    const pulled = await runCli(['config', 'pull', '--from', store.url]);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.match(pulled.stdout, /name: added/);

    // One-line JSON is the easy way to set a document with zkCli.sh.
    await store.writeRaw(JSON.stringify({ routes: [respondRoute('hello', '/hello', 'v2')] }));
    for (const i of [a, b]) await until(i.web, '/hello', 200, 'v2');
    await until(a.web, '/added', 404);
  });

  it('refuses an invalid document with its reason; the last good one keeps serving', async (t) => {
    const a = await startInstance(t, dir, 'inv', store);
    await until(a.web, '/hello', 200, 'v2');
    await store.writeRaw('{"routes":[{"name":"x","listener":"web","upstream":"nowhere"}]}');
    await waitFor(async () => (await ready(a)).body.source.state === 'error', 'the refusal on /ready');
    assert.match((await ready(a)).body.source.error, /upstream/);
    assert.equal((await send(a.web, { path: '/hello' })).body, 'v2');
    await store.writeRaw(JSON.stringify({ routes: [respondRoute('hello', '/hello', 'v2')] }));
    await waitFor(async () => (await ready(a)).body.source.state === 'ok', 'the good document again');
  });

  it('keeps serving while ZooKeeper is down (degraded), and resyncs when it returns', async (t) => {
    const a = await startInstance(t, dir, 'outage', store);
    await until(a.web, '/hello', 200, 'v2');
    await zk.halt();
    await waitFor(async () => (await ready(a)).body.status === 'degraded', '/ready to say degraded', 15_000);
    for (let i = 0; i < 20; i++) assert.equal((await send(a.web, { path: '/hello' })).body, 'v2');
    await zk.restart();
    await waitFor(async () => (await ready(a)).body.source.state === 'ok', 'the store back', 20_000);
    assert.equal(logged(a, /config store unreachable/).length, 1);
    assert.equal(logged(a, /config store reachable again/).length, 1);
    await store.writeRaw(JSON.stringify({ routes: [respondRoute('hello', '/hello', 'v3')] }));
    await until(a.web, '/hello', 200, 'v3');
  });

  it('re-arms its watch on a new session after its session expired', async (t) => {
    const a = await startInstance(t, dir, 'expiry', store);
    await until(a.web, '/hello', 200, 'v3');
    // Frozen longer than its 2 s session: ZooKeeper expires the session; on waking, the client is told so.
    a.run.child.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 5000));
    a.run.child.kill('SIGCONT');
    await store.writeRaw(JSON.stringify({ routes: [respondRoute('hello', '/hello', 'after-expiry')] }));
    await until(a.web, '/hello', 200, 'after-expiry', 20_000);
    assert.equal((await ready(a)).body.source.state, 'ok');
  });

  it('starts from its cache while ZooKeeper is down, and says so', async (t) => {
    const a = await startInstance(t, dir, 'cached', store);
    await until(a.web, '/hello', 200, 'after-expiry');
    await a.run.stop();
    await zk.halt();
    try {
      const again = await startInstance(t, dir, 'cached', store);
      assert.equal((await send(again.web, { path: '/hello' })).body, 'after-expiry');
      assert.equal(logged(again, /starting from the cached document/).length, 1);
      await again.run.stop();
    } finally {
      await zk.restart();
    }
  });
});
