import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createLogger } from '../../src/observability/logger.js';
import { StoreUnavailableError } from '../../src/stores/document-store.js';
import { ZookeeperDocumentStore } from '../../src/stores/zookeeper-document.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { waitFor } from '../helpers/wait.js';
import { startZookeeper, type TestZookeeper } from '../helpers/zookeeper.js';

let zk: TestZookeeper;
before(async () => {
  zk = await startZookeeper();
});
after(async () => {
  await zk.stop();
});

const open = (path: string, sessionTimeout = 10_000, timeout = 2000) =>
  new ZookeeperDocumentStore({ servers: [zk.hosts], sessionTimeout, path, timeout }, createLogger('silent'));

test('get absent, put/get, CAS stale cases, oversized refused', async () => {
  const s = open('/portico/a/config');
  try {
    assert.equal(await s.get(), undefined);
    const first = await s.put('one: 1\n', undefined);
    assert.ok(first.ok);
    assert.deepEqual(await s.get(), { text: 'one: 1\n', revision: first.revision });
    const created = await s.put('x', null);
    assert.deepEqual(created, { ok: false, reason: 'stale', revision: first.revision });
    const second = await s.put('two: 2\n', first.revision);
    assert.ok(second.ok);
    assert.notEqual(second.revision, first.revision);
    const stale = await s.put('three', first.revision);
    assert.deepEqual(stale, { ok: false, reason: 'stale', revision: second.revision });
    assert.equal((await s.get())?.text, 'two: 2\n');
    const fresh = open('/portico/b/config');
    try {
      // Create-only into a store with no such path yet (the first admin API write): the parents are made.
      const created = await fresh.put('new', null);
      assert.equal(created.ok, true);
      assert.equal((await fresh.get())?.text, 'new');
      assert.equal((await fresh.put('again', null)).ok, false, 'create-only refuses once the node exists');
    } finally {
      await fresh.close();
    }
    await assert.rejects(s.put('x'.repeat(2 * 1024 * 1024), undefined), /jute\.maxbuffer/);
  } finally {
    await s.close();
  }
});

test('a zkCli change reaches onChange; halt → down, get rejects in time; restart → up', async () => {
  const s = open('/portico/w/config');
  await s.put('v: 1\n', undefined);
  const events: string[] = [];
  s.watch({ onChange: () => events.push('change'), onConnection: (up) => events.push(up ? 'up' : 'down') });
  await zk.cli('set', '/portico/w/config', 'v: 2');
  await waitFor(() => events.includes('change') || undefined, 'onChange after zkCli set');
  assert.equal((await s.get())?.text, 'v: 2');
  await zk.halt();
  await waitFor(() => events.includes('down') || undefined, 'onConnection(false)');
  const t0 = Date.now();
  await assert.rejects(s.get(), StoreUnavailableError);
  const took = Date.now() - t0;
  console.log(`# get while halted rejected after ${took} ms (timeout 2000)`);
  assert.ok(took < 3000, `get rejected after ${took} ms`);
  events.length = 0;
  await zk.restart();
  await waitFor(() => (events.includes('up') && events.includes('change')) || undefined, 'onConnection(true) and onChange');
  events.length = 0;
  await zk.cli('set', '/portico/w/config', 'v: 3');
  await waitFor(() => events.includes('change') || undefined, 'watch re-armed after reconnect');
  await s.close();
});

test('session expiry: a new session, the watch works again; fds back', async () => {
  const baseline = openFds();
  const s = open('/portico/e/config', 1000);
  await s.put('v: 1\n', undefined);
  const events: string[] = [];
  s.watch({ onChange: () => events.push('change'), onConnection: (up) => events.push(up ? 'up' : 'down') });
  try {
  await zk.halt();
  await new Promise((r) => setTimeout(r, 3000));
  await zk.restart();
  await waitFor(() => events.includes('up') || undefined, 'reconnected on a new session', 20_000);
  assert.equal((await s.get())?.text, 'v: 1\n');
  events.length = 0;
  await zk.cli('set', '/portico/e/config', 'v: 9');
  await waitFor(() => events.includes('change') || undefined, 'watch re-armed after expiry');
  assert.equal((await s.get())?.text, 'v: 9');
  } finally {
    await s.close();
  }
  await fdsSettle(baseline);
});
