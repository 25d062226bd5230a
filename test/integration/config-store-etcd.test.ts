import { after, before, describe, it } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { runCli } from '../helpers/cli.js';
import { send } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { api, assert, cacheOf, logged, metric, push, ready, respondRoute, sharedDoc, startInstance, until, type StoreUnderTest } from '../helpers/config-store-fleet.js';

describe('config in etcd: a fleet of real portico processes on one real etcd', { timeout: 400_000 }, () => {
  let etcd: TestEtcd;
  let store: StoreUnderTest;
  let dir: string;

  before(async () => {
    etcd = await startEtcd();
    dir = mkdtempSync(join(tmpdir(), 'portico-fleet-etcd-'));
    store = {
      configSource: `{ type: etcd, endpoints: ['${etcd.url}'], prefix: /fleet, timeout: 1s }`,
      url: `etcd://127.0.0.1:${etcd.port}/fleet`,
      writeRaw: async (text) => void (await etcd.ctl('put', '/fleet/config', text)),
    };
  });
  after(async () => {
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('converges: a route added through instance A\'s admin API serves on instance B; push, pull and direct edits apply everywhere', async (t) => {
    const local = join(dir, 'probe.yaml');
    writeFileSync(local, `configSource: ${store.configSource}\nlisteners: [{ name: web, protocol: http, listen: 127.0.0.1:0 }]\n`);
    const pushed = await push(store, dir, sharedDoc([respondRoute('hello', '/hello', 'v1')]), local);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.match(pushed.stderr, /pushed .* to etcd:\/\/127\.0\.0\.1:\d+\/fleet\/config \(revision \d+\)/);

    const a = await startInstance(t, dir, 'a', store);
    const b = await startInstance(t, dir, 'b', store);
    for (const i of [a, b]) assert.equal((await send(i.web, { path: '/hello' })).body, 'v1');

    // Instance A's admin API writes to the store; B's watch applies it.
    const t0 = performance.now();
    const created = await api(a.admin, 'POST', '/routes', respondRoute('added', '/added', 'from-a'));
    assert.equal(created.status, 201, created.body);
    await until(b.web, '/added', 200, 'from-a');
    const ms = performance.now() - t0;
    t.diagnostic(`etcd: route POSTed to A serves on B after ${ms.toFixed(1)} ms`);
    assert.equal((await send(a.web, { path: '/added' })).body, 'from-a');

    // The store holds it, with the pushed comment kept; the local files are untouched.
    const pulled = await runCli(['config', 'pull', '--from', store.url]);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.match(pulled.stdout, /# shared by the fleet/);
    assert.match(pulled.stdout, /name: added/);
    assert.doesNotMatch(pulled.stdout, /listeners/);

    // A change made with etcdctl (an operator, another tool) reaches both.
    await store.writeRaw(sharedDoc([respondRoute('hello', '/hello', 'v2')]));
    for (const i of [a, b]) await until(i.web, '/hello', 200, 'v2');
    await until(b.web, '/added', 404);

    // The ETag is the store's revision: a stale If-Match is refused on B too.
    const doc = await api(b.admin, 'GET', '/config');
    const stale = await send(b.admin, { method: 'PUT', path: '/config', headers: { 'content-type': 'application/json', 'if-match': '"1"' }, body: JSON.stringify(doc.json) });
    assert.equal(stale.status, 412, stale.body);
    // A local section cannot be changed through the store.
    const local2 = await api(a.admin, 'POST', '/listeners', { name: 'other', protocol: 'http', listen: '127.0.0.1:0' });
    assert.equal(local2.status, 403, local2.body);
    assert.match(local2.json.error, /listeners comes from .*a\.yaml/);

    // Each applied document is cached, atomically, readable by its owner only.
    assert.match(cacheOf(b).text, /v2/);
  });

  it('refuses an invalid document in the store with its reason; the last good one keeps serving', async (t) => {
    const a = await startInstance(t, dir, 'inv', store);
    await until(a.web, '/hello', 200, 'v2');
    // A route naming an upstream that does not exist, then a document that is not YAML, then a local section.
    for (const bad of ['routes:\n  - { name: x, listener: web, upstream: nowhere }\n', 'routes: [ {\n', 'listeners: []\n']) {
      await store.writeRaw(bad);
      await waitFor(async () => (await ready(a)).body.source.state === 'error', 'the refusal on /ready');
      const r = await ready(a);
      assert.equal(r.status, 200);
      assert.ok(r.body.source.error.length > 0);
      assert.equal((await send(a.web, { path: '/hello' })).body, 'v2', 'the last good config serves');
      // The next good document clears it.
      await store.writeRaw(sharedDoc([respondRoute('hello', '/hello', 'v2')]));
      await waitFor(async () => (await ready(a)).body.source.state === 'ok', 'the good document again');
    }
    assert.ok(logged(a, /config rejected/).length >= 3);
  });

  it('keeps serving when etcd stops: /ready degraded, metrics and one log line each way; resyncs when it returns', async (t) => {
    const a = await startInstance(t, dir, 'outage', store);
    await until(a.web, '/hello', 200, 'v2');
    await etcd.halt();
    await waitFor(async () => (await ready(a)).body.status === 'degraded', '/ready to say degraded', 15_000);
    const r = await ready(a);
    assert.equal(r.status, 200, 'degraded is still ready');
    assert.equal(r.body.source.state, 'degraded');
    assert.equal(metric((await send(a.admin, { path: '/metrics' })).body, 'portico_config_source_up{'), 0);
    for (let i = 0; i < 20; i++) assert.equal((await send(a.web, { path: '/hello' })).body, 'v2');
    // An admin write while the store is down is refused, and changes nothing.
    const w = await api(a.admin, 'POST', '/routes', respondRoute('while-down', '/down', 'x'));
    assert.equal(w.status >= 500, true, w.body);
    assert.equal((await send(a.web, { path: '/down' })).status, 404);

    await etcd.restart();
    await waitFor(async () => (await ready(a)).body.source.state === 'ok', 'the store back on /ready', 20_000);
    assert.equal(metric((await send(a.admin, { path: '/metrics' })).body, 'portico_config_source_up{'), 1);
    assert.equal(logged(a, /config store unreachable/).length, 1, 'one line going down');
    assert.equal(logged(a, /config store reachable again/).length, 1, 'one line coming back');
    // The watch works again.
    await store.writeRaw(sharedDoc([respondRoute('hello', '/hello', 'v3')]));
    await until(a.web, '/hello', 200, 'v3');
  });

  it('re-arms its watch after a compaction', async (t) => {
    const a = await startInstance(t, dir, 'compact', store);
    for (let i = 0; i < 5; i++) await store.writeRaw(sharedDoc([respondRoute('hello', '/hello', `c${i}`)]));
    await until(a.web, '/hello', 200, 'c4');
    const status = JSON.parse(await etcd.ctl('endpoint', 'status', '-w', 'json')) as { Status: { header: { revision: number } } }[];
    await etcd.ctl('compact', String(status[0]!.Status.header.revision));
    await store.writeRaw(sharedDoc([respondRoute('hello', '/hello', 'after-compaction')]));
    await until(a.web, '/hello', 200, 'after-compaction');
  });

  it('starts from its cache while etcd is down, and says so; without a cache it refuses to start', async (t) => {
    const a = await startInstance(t, dir, 'cached', store);
    await until(a.web, '/hello', 200, 'after-compaction');
    await a.run.stop();
    await etcd.halt();
    try {
      const again = await startInstance(t, dir, 'cached', store);
      assert.equal((await send(again.web, { path: '/hello' })).body, 'after-compaction');
      assert.equal(logged(again, /starting from the cached document/).length, 1);
      assert.equal((await ready(again)).body.status, 'degraded');
      await again.run.stop();
      writeFileSync(join(dir, 'nocache.yaml'), `configSource: ${store.configSource}\nlisteners: [{ name: web, protocol: http, listen: 127.0.0.1:0 }]\n`);
      const r = await runCli(['start', join(dir, 'nocache.yaml')], { timeoutMs: 20_000 });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /cannot reach etcd:\/\/.* and no cached document at .*: start once with the store reachable/);
    } finally {
      await etcd.restart();
    }
  });

  it('keeps serving when the document is deleted or etcd loses its data, until a push restores it', async (t) => {
    const a = await startInstance(t, dir, 'wipe', store);
    await until(a.web, '/hello', 200, 'after-compaction');
    await etcd.ctl('del', '/fleet/config');
    await waitFor(async () => /is missing/.test((await ready(a)).body.source.error ?? ''), 'the missing document on /ready');
    assert.equal((await send(a.web, { path: '/hello' })).body, 'after-compaction');
    await store.writeRaw(sharedDoc([respondRoute('hello', '/hello', 'back')]));
    await until(a.web, '/hello', 200, 'back');

    await etcd.wipe();
    await waitFor(async () => /is missing/.test((await ready(a)).body.source.error ?? ''), 'the lost data on /ready', 20_000);
    assert.equal((await send(a.web, { path: '/hello' })).body, 'back');
    const pushed = await push(store, dir, sharedDoc([respondRoute('hello', '/hello', 'restored')]), a.file);
    assert.equal(pushed.code, 0, pushed.stderr);
    await until(a.web, '/hello', 200, 'restored');
  });

  it('push refuses an invalid document with its path and a stale --if-revision; pull of an empty store fails clearly', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'routes:\n  - { name: x, listener: web, upstream: nowhere }\n');
    const r = await runCli(['config', 'push', '--to', store.url, '--local', join(dir, 'wipe.yaml'), bad]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /routes\[0\]\.upstream/);
    const good = join(dir, 'good.yaml');
    writeFileSync(good, sharedDoc([respondRoute('hello', '/hello', 'stale')]));
    const stale = await runCli(['config', 'push', '--to', store.url, '--if-revision', '1', '--local', join(dir, 'wipe.yaml'), good]);
    assert.equal(stale.code, 1, stale.stderr);
    assert.match(stale.stderr, /is at revision \d+, not 1/);
    const empty = await runCli(['config', 'pull', '--from', `etcd://127.0.0.1:${etcd.port}/nothing-here`]);
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /holds no document/);
    const usage = await runCli(['config', 'push', '--to', 'consul://127.0.0.1:8500', bad]);
    assert.equal(usage.code, 2);
  });
});
