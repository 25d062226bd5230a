import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createLogger } from '../../src/observability/logger.js';
import { StoreUnavailableError } from '../../src/stores/document-store.js';
import { EtcdDocumentStore } from '../../src/stores/etcd-document.js';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { waitFor } from '../helpers/wait.js';

let etcd: TestEtcd;
before(async () => {
  etcd = await startEtcd();
});
after(async () => {
  await etcd.stop();
});

const TIMEOUT = 1_500;
const store = (key: string): EtcdDocumentStore => new EtcdDocumentStore({ endpoints: [etcd.url], key, timeout: TIMEOUT }, createLogger('silent'));

test('get absent, put/get, compare-and-set refuses stale revisions and null when present', async () => {
  const s = store('/t1/config');
  try {
    assert.equal(await s.get(), undefined);
    const first = await s.put('a: 1', null);
    assert.equal(first.ok, true);
    const got = await s.get();
    assert.equal(got?.text, 'a: 1');
    assert.equal(first.ok && first.revision, got?.revision);
    const again = await s.put('a: 2', null);
    assert.deepEqual(again, { ok: false, reason: 'stale', revision: got?.revision });
    const wrong = await s.put('a: 3', '1');
    assert.equal(wrong.ok, false);
    const right = await s.put('a: 4', got!.revision);
    assert.equal(right.ok, true);
    assert.equal((await s.get())?.text, 'a: 4');
    const plain = await s.put('a: 5', undefined);
    assert.equal(plain.ok, true);
    assert.equal((await s.get())?.text, 'a: 5');
  } finally {
    await s.close();
  }
});

test('watch sees etcdctl puts, survives a compaction, a restart and a wipe', async () => {
  const baseline = openFds();
  const s = store('/t2/config');
  const events: string[] = [];
  let changes = 0;
  s.watch({
    onChange: () => void changes++,
    onConnection: (up, reason) => events.push(up ? 'up' : `down:${reason ?? ''}`),
  });
  try {
    await waitFor(() => events.includes('up') && changes > 0, 'first up');
    let before = changes;
    await etcd.ctl('put', '/t2/config', 'x: 1');
    await waitFor(() => changes > before, 'change after etcdctl put');
    assert.equal((await s.get())?.text, 'x: 1');

    // compaction: several puts, compact at the latest revision, then a put must still be seen
    for (let i = 0; i < 5; i++) await etcd.ctl('put', '/t2/other', String(i));
    const rev = (await s.put('x: 2', undefined)) as { revision: string };
    await etcd.ctl('compact', rev.revision);
    before = changes;
    await etcd.ctl('put', '/t2/config', 'x: 3');
    await waitFor(() => changes > before, 'change after compaction');
    assert.equal((await s.get())?.text, 'x: 3');

    // restart with the same data
    before = changes;
    await etcd.halt();
    await waitFor(() => events.some((e) => e.startsWith('down:')), 'down on halt');
    await etcd.restart();
    await waitFor(() => events.at(-1) === 'up' && changes > before, 'up again after restart');
    assert.equal((await s.get())?.text, 'x: 3');

    // wipe: revisions back to 1, key gone
    before = changes;
    await etcd.wipe();
    await waitFor(() => changes > before, 'change after wipe', 20_000);
    assert.equal(await s.get(), undefined);
    before = changes;
    await etcd.ctl('put', '/t2/config', 'x: 9');
    await waitFor(() => changes > before, 'watch delivers after wipe');
    assert.equal((await s.get())?.text, 'x: 9');
    assert.equal(events.filter((e) => e.startsWith('down:')).length >= 1, true);
  } finally {
    await s.close();
  }
  await fdsSettle(baseline, 4);
});

test('get and put while etcd is halted reject with StoreUnavailableError within the timeout', async () => {
  const baseline = openFds();
  const s = store('/t3/config');
  try {
    await s.put('y: 1', undefined);
    await etcd.halt();
    for (const call of [() => s.get(), () => s.put('y: 2', undefined), () => s.put('y: 3', '5')]) {
      const t0 = performance.now();
      await assert.rejects(call(), StoreUnavailableError);
      const took = performance.now() - t0;
      console.log(`# rejected in ${Math.round(took)} ms (timeout ${TIMEOUT})`);
      assert.ok(took < TIMEOUT + 1_000, `took ${took} ms`);
    }
  } finally {
    await etcd.restart();
    await s.close();
  }
  await fdsSettle(baseline, 4);
});

test('get and put while etcd is paused (accepts, never answers) reject within the timeout', async () => {
  const s = store('/t4/config');
  try {
    await s.put('z: 1', undefined);
    etcd.pause();
    for (const call of [() => s.get(), () => s.put('z: 2', undefined)]) {
      const t0 = performance.now();
      await assert.rejects(call(), StoreUnavailableError);
      const took = performance.now() - t0;
      console.log(`# paused: rejected in ${Math.round(took)} ms (timeout ${TIMEOUT})`);
      assert.ok(took < TIMEOUT + 1_000, `took ${took} ms`);
    }
  } finally {
    etcd.resume();
    await s.close();
  }
});
