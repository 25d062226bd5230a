import { readdirSync, readlinkSync } from 'node:fs';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { discoverySchema } from '../../src/config/schemas/discovery.js';
import type { DiscoveryUpdate } from '../../src/discovery/backend.js';
import { EtcdDiscovery } from '../../src/discovery/etcd.js';
import { registerEtcd } from '../../src/discovery/register-etcd.js';
import { createLogger } from '../../src/observability/logger.js';
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

function watch(prefix: string): { d: EtcdDiscovery; updates: DiscoveryUpdate[]; addresses: () => string[] | undefined } {
  const config = discoverySchema.parse({ type: 'etcd', endpoints: [etcd.url], prefix });
  if (config.type !== 'etcd') throw new Error('not etcd');
  const d = new EtcdDiscovery(config, createLogger('silent'));
  const updates: DiscoveryUpdate[] = [];
  d.start((u) => updates.push(u));
  const addresses = (): string[] | undefined => {
    const last = updates.at(-1);
    return last?.ok ? last.targets.map((t) => t.address).sort() : undefined;
  };
  return { d, updates, addresses };
}

test('etcdctl entries appear, a malformed one is skipped with its reason, a delete removes', async () => {
  const { d, updates, addresses } = watch('/svc1');
  try {
    await waitFor(() => addresses()?.length === 0, 'empty set');
    await etcd.ctl('put', '/svc1/127.0.0.1:2001', JSON.stringify({ address: '127.0.0.1:2001', weight: 3 }));
    await etcd.ctl('put', '/svc1/bad', 'not json, no address');
    await waitFor(() => addresses()?.includes('127.0.0.1:2001'), 'entry appears');
    const last = updates.at(-1)!;
    assert.ok(last.ok);
    assert.equal(last.targets.find((t) => t.address === '127.0.0.1:2001')?.weight, 3);
    await waitFor(() => { const u = updates.at(-1); return u?.ok && u.skipped.some((s) => s.entry === '/svc1/bad' && s.reason.length > 0); }, 'malformed skipped');
    await etcd.ctl('del', '/svc1/127.0.0.1:2001');
    await waitFor(() => addresses() !== undefined && !addresses()!.includes('127.0.0.1:2001'), 'entry leaves');
  } finally {
    d.close();
  }
});

test('registerEtcd entries appear and leave on revoke and on lease expiry; figures', async () => {
  const { d, addresses } = watch('/svc2');
  try {
    await waitFor(() => addresses()?.length === 0, 'empty set');
    let t0 = performance.now();
    const reg = await registerEtcd({ endpoints: [etcd.url], prefix: '/svc2', ttl: 2_000 }, { address: '127.0.0.1:2002', weight: 2 });
    t0 = performance.now();
    await waitFor(() => addresses()?.includes('127.0.0.1:2002'), 'registered entry appears', 10_000, 5);
    console.log(`# registerEtcd resolved -> in discovery: ${Math.round(performance.now() - t0)} ms`);
    t0 = performance.now();
    await reg.close();
    await waitFor(() => addresses()?.length === 0, 'closed entry leaves', 10_000, 5);
    console.log(`# close (revoke) -> gone from discovery: ${Math.round(performance.now() - t0)} ms`);
    assert.equal(reg.registered(), false);

    // a lease nobody keeps alive: the entry leaves when it expires
    const lease = (await etcd.ctl('lease', 'grant', '1')).match(/lease ([0-9a-f]+) granted/)?.[1];
    assert.ok(lease, 'lease id');
    await etcd.ctl('put', '--lease', lease, '/svc2/127.0.0.1:2003', '127.0.0.1:2003');
    await waitFor(() => addresses()?.includes('127.0.0.1:2003'), 'leased entry appears');
    t0 = performance.now();
    await waitFor(() => addresses()?.length === 0, 'expired entry leaves', 10_000, 5);
    console.log(`# 1 s lease expiry -> gone from discovery: ${Math.round(performance.now() - t0)} ms`);
  } finally {
    d.close();
  }
});

test('etcd halted -> ok:false; restarted -> the set again; fds return', async () => {
  const names = (): string[] => readdirSync('/proc/self/fd').map((f) => { try { return `${f} ${readlinkSync(`/proc/self/fd/${f}`)}`; } catch { return f; } });
  const was = names();
  const baseline = openFds();
  const { d, updates, addresses } = watch('/svc3');
  try {
    await etcd.ctl('put', '/svc3/a', '127.0.0.1:2004');
    await waitFor(() => addresses()?.includes('127.0.0.1:2004'), 'entry appears');
    await etcd.halt();
    await waitFor(() => updates.at(-1)?.ok === false, 'ok:false while halted');
    await etcd.restart();
    await waitFor(() => addresses()?.includes('127.0.0.1:2004'), 'set again after restart');
  } finally {
    d.close();
  }
  await fdsSettle(baseline, 4).catch((err: Error) => { throw new Error(`${err.message}: ${names().filter((n) => !was.includes(n)).join(', ')}`); });
});

test('registration: pause removes, resume re-adds, survives a wipe, close removes', async () => {
  const baseline = openFds();
  const { d, addresses } = watch('/svc4');
  const reg = await registerEtcd({ endpoints: [etcd.url], prefix: '/svc4', ttl: 2_000 }, { address: '127.0.0.1:2005', timeout: 1_500 });
  const changes: string[] = [];
  reg.onChange = (r, why) => changes.push(`${r}:${why}`);
  try {
    await waitFor(() => addresses()?.includes('127.0.0.1:2005'), 'registered');
    assert.equal(JSON.parse(await etcd.ctl('get', '--print-value-only', '/svc4/127.0.0.1:2005')).weight, 1);
    await reg.pause();
    assert.equal(reg.registered(), false);
    await waitFor(() => addresses()?.length === 0, 'paused entry leaves');
    await reg.resume();
    assert.equal(reg.registered(), true);
    await waitFor(() => addresses()?.includes('127.0.0.1:2005'), 'resumed entry back');
    await etcd.wipe();
    await waitFor(async () => (await etcd.ctl('get', '--print-value-only', '/svc4/127.0.0.1:2005')).includes('127.0.0.1:2005'), 're-put after wipe', 20_000, 200);
    await waitFor(() => addresses()?.includes('127.0.0.1:2005'), 'discovery sees it after wipe', 20_000);
    assert.ok(changes.some((c) => c.startsWith('false:lease lost')), changes.join());
  } finally {
    await reg.close();
    assert.equal((await etcd.ctl('get', '/svc4/127.0.0.1:2005')).trim(), '');
    d.close();
  }
  await fdsSettle(baseline, 4);
});
