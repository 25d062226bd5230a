import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { DiscoveryUpdate } from '../../src/discovery/backend.js';
import { registerZookeeper } from '../../src/discovery/register-zookeeper.js';
import { ZookeeperDiscovery } from '../../src/discovery/zookeeper.js';
import { createLogger } from '../../src/observability/logger.js';
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

function watch(p: string) {
  const updates: DiscoveryUpdate[] = [];
  const d = new ZookeeperDiscovery({ type: 'zookeeper', servers: [zk.hosts], path: p, sessionTimeout: 10_000, emptyGrace: 0 }, createLogger('silent'));
  d.start((u) => updates.push(u));
  const last = () => updates.at(-1);
  const has = (a: string) => {
    const u = last();
    return u?.ok === true && u.targets.some((t) => t.address === a);
  };
  return { d, updates, last, has };
}

test('registrations, zkCli children, a bad child skipped, pause/resume/close; absent path', async () => {
  const baseline = openFds();
  const w = watch('/real_server');
  await waitFor(() => (w.last()?.ok === false && /the path \/real_server does not exist/.test((w.last() as { error: string }).error)) || undefined, 'absent path reported');
  const t0 = Date.now();
  const reg = await registerZookeeper({ servers: [zk.hosts], path: '/real_server' }, { address: '127.0.0.1:2003', weight: 3 });
  const t1 = Date.now();
  await waitFor(() => w.has('127.0.0.1:2003') || undefined, 'registered target seen');
  console.log(`# registerZookeeper took ${t1 - t0} ms; seen ${Date.now() - t1} ms after it resolved`);
  assert.deepEqual((w.last() as Extract<DiscoveryUpdate, { ok: true }>).targets, [{ address: '127.0.0.1:2003', weight: 3 }]);
  assert.equal(reg.registered(), true);
  await zk.cli('create', '-e', '/real_server/127.0.0.1:2004', '');
  await zk.cli('create', '/real_server/not-an-address', '');
  await waitFor(() => { const u = w.last(); return (u?.ok && u.skipped.length === 1) || undefined; }, 'bad child skipped');
  const u = w.last() as Extract<DiscoveryUpdate, { ok: true }>;
  assert.equal(u.skipped[0]!.entry, '/real_server/not-an-address');
  assert.ok(u.skipped[0]!.reason.length > 0);
  await reg.pause();
  assert.equal(reg.registered(), false);
  await waitFor(() => !w.has('127.0.0.1:2003') || undefined, 'paused target gone');
  await reg.resume();
  await waitFor(() => w.has('127.0.0.1:2003') || undefined, 'resumed target back');
  await reg.close();
  await waitFor(() => !w.has('127.0.0.1:2003') || undefined, 'closed target gone');
  w.d.close();
  await fdsSettle(baseline);
});

test('a killed registering process leaves after its session expires', async () => {
  const w = watch('/killed');
  const mod = path.resolve('build/src/discovery/register-zookeeper.js');
  const child = spawn(process.execPath, ['-e', `import(${JSON.stringify(mod)}).then(m => m.registerZookeeper({servers:[${JSON.stringify(zk.hosts)}], path:'/killed', sessionTimeout: 1000}, {address:'127.0.0.1:2010'})).then(() => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => d.toString().includes('up') && resolve()));
    await waitFor(() => w.has('127.0.0.1:2010') || undefined, 'child registration seen');
    const t0 = Date.now();
    child.kill('SIGKILL');
    await waitFor(() => !w.has('127.0.0.1:2010') || undefined, 'killed registration gone', 15_000);
    console.log(`# SIGKILL to absence: ${Date.now() - t0} ms (session timeout 1000 ms)`);
  } finally {
    child.kill('SIGKILL');
    w.d.close();
  }
});

test('ensemble halted → ok:false; back → set again; registration re-made after expiry', async () => {
  const w = watch('/exp');
  const reg = await registerZookeeper({ servers: [zk.hosts], path: '/exp', sessionTimeout: 1000 }, { address: '127.0.0.1:2020' });
  try {
    await waitFor(() => w.has('127.0.0.1:2020') || undefined, 'registered');
    await zk.halt();
    await waitFor(() => w.last()?.ok === false || undefined, 'ok:false while halted');
    await new Promise((r) => setTimeout(r, 3000));
    await zk.restart();
    await waitFor(() => w.has('127.0.0.1:2020') || undefined, 'registration re-made after expiry and seen', 20_000);
    assert.equal(reg.registered(), true);
  } finally {
    await reg.close();
    w.d.close();
  }
});
