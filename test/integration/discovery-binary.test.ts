import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, spawnLogged, startCli, stopAfter, type Logged } from '../helpers/cli.js';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { startZookeeper, type TestZookeeper } from '../helpers/zookeeper.js';
import { send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';
import { api } from '../helpers/config-store-fleet.js';

/** An upstream that answers its own name. */
function named(name: string): Promise<TestUpstream> {
  return startUpstream((_req, res) => res.end(name));
}

/** `portico register ARGS` as its own process; resolves once it says it registered. */
async function register(t: TestContext, args: string[]): Promise<Logged & { registeredAt: number }> {
  const p = spawnLogged(process.execPath, [CLI, 'register', ...args]);
  stopAfter(t, p.child, p.exited);
  await waitFor(() => {
    if (p.child.exitCode !== null) throw new Error(`register exited: ${p.output()}`);
    return /registered .* at /.test(p.output());
  }, 'portico register to register', 20_000);
  return { ...p, registeredAt: performance.now() };
}

/** The set of upstream names that answered `n` requests. */
async function answering(base: string, path: string, n = 12): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const r = await send(base, { path });
    seen.add(r.status === 200 ? r.body : String(r.status));
  }
  return seen;
}

/** Polls until the answers are exactly `want` (10 ms apart); resolves with the ms it took from `since`. */
async function until(base: string, path: string, want: string[], since: number, timeoutMs = 20_000): Promise<number> {
  await waitFor(
    async () => {
      const got = await answering(base, path, 6);
      return got.size === want.length && want.every((w) => got.has(w));
    },
    `${path} answered by ${want.join(', ')}`,
    timeoutMs,
    10,
  );
  return performance.now() - since;
}

describe('service discovery on the real binary: services registered by portico register come and go', { timeout: 300_000 }, () => {
  let zk: TestZookeeper;
  let etcd: TestEtcd;
  let dir: string;
  const ups: TestUpstream[] = [];

  before(async () => {
    [zk, etcd] = await Promise.all([startZookeeper(), startEtcd()]);
    dir = mkdtempSync(join(tmpdir(), 'portico-discovery-'));
  });
  after(async () => {
    await Promise.all(ups.map((u) => u.close()));
    await Promise.all([zk?.stop(), etcd?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('ZooKeeper and etcd: a registered service gets traffic, a killed one leaves when its session or lease ends, a failing check deregisters', async (t) => {
    const [z1, z2, e1, e2] = await Promise.all([named('z1'), named('z2'), named('e1'), named('e2')]);
    ups.push(z1, z2, e1, e2);
    const file = join(dir, 'portico.yaml');
    writeFileSync(
      file,
      `listeners: [{ name: web, protocol: http, listen: 127.0.0.1:0 }]
admin: { listen: 127.0.0.1:0 }
upstreams:
  - name: real-servers
    discovery: { type: zookeeper, servers: ['${zk.hosts}'], path: /real_server, emptyGrace: 0s }
  - name: orders
    discovery: { type: etcd, endpoints: ['${etcd.url}'], prefix: /services/orders, emptyGrace: 0s }
routes:
  - { name: real, listener: web, match: { pathPrefix: /real }, upstream: real-servers }
  - { name: orders, listener: web, match: { pathPrefix: /orders }, upstream: orders }
`,
    );
    const gw = await startCli(file);
    stopAfter(t, gw.child, gw.exited);
    const web = gw.urls.web!;
    assert.equal((await send(web, { path: '/real' })).status, 503, 'no service registered yet');

    // ZooKeeper: the course's scheme, /real_server/127.0.0.1:PORT as ephemeral nodes.
    const rz1 = await register(t, ['--zookeeper', zk.hosts, '--path', '/real_server', '--address', z1.address, '--session-timeout', '2s']);
    const zkJoin = await until(web, '/real', ['z1'], rz1.registeredAt);
    const rz2 = await register(t, ['--zookeeper', zk.hosts, '--path', '/real_server', '--address', z2.address, '--session-timeout', '2s']);
    await until(web, '/real', ['z1', 'z2'], rz2.registeredAt);
    const killedZ = performance.now();
    rz1.child.kill('SIGKILL');
    const zkLeave = await until(web, '/real', ['z2'], killedZ);

    // etcd: keys /services/orders/127.0.0.1:PORT held by a 2 s lease.
    const re1 = await register(t, ['--etcd', etcd.url, '--prefix', '/services/orders', '--address', e1.address, '--ttl', '2s']);
    const etcdJoin = await until(web, '/orders', ['e1'], re1.registeredAt);
    const re2 = await register(t, ['--etcd', etcd.url, '--prefix', '/services/orders', '--address', e2.address, '--ttl', '2s', '--check', 'tcp', '--interval', '200ms']);
    await until(web, '/orders', ['e1', 'e2'], re2.registeredAt);
    const killedE = performance.now();
    re1.child.kill('SIGKILL');
    const etcdLeave = await until(web, '/orders', ['e2'], killedE);

    // A health-checked registration leaves while its service is down.
    const downAt = performance.now();
    await e2.close();
    await waitFor(() => /"registered":false/.test(re2.output()), 'the failed check to deregister', 10_000);
    await waitFor(async () => (await send(web, { path: '/orders' })).status === 503, 'orders to have no target', 10_000);
    const checkLeave = performance.now() - downAt;

    // A clean stop deregisters at once.
    const stoppedAt = performance.now();
    rz2.child.kill('SIGTERM');
    assert.equal(await rz2.exited, 0);
    await waitFor(async () => (await send(web, { path: '/real' })).status === 503, 'real-servers to be empty', 10_000);
    const cleanLeave = performance.now() - stoppedAt;

    const status = await api(gw.admin!, 'GET', '/status');
    const d = JSON.stringify(status.json);
    assert.match(d, /"discovery":\{"type":"zookeeper"/);
    assert.match(d, /"discovery":\{"type":"etcd"/);
    const metrics = (await send(gw.admin!, { path: '/metrics' })).body;
    assert.match(metrics, /portico_discovery_targets\{upstream="real-servers",type="zookeeper"\} 0/);
    assert.match(metrics, /portico_discovery_up\{upstream="orders",type="etcd"\} 1/);
    t.diagnostic(
      `zookeeper: join ${zkJoin.toFixed(0)} ms, leave after SIGKILL (2 s session) ${zkLeave.toFixed(0)} ms, after SIGTERM ${cleanLeave.toFixed(0)} ms; ` +
        `etcd: join ${etcdJoin.toFixed(0)} ms, leave after SIGKILL (2 s lease) ${etcdLeave.toFixed(0)} ms; failing check → gone ${checkLeave.toFixed(0)} ms`,
    );
  });

  it('a malformed node is left out and shown with its reason; the good ones keep serving', async (t) => {
    const up = await named('good');
    ups.push(up);
    const file = join(dir, 'malformed.yaml');
    writeFileSync(
      file,
      `listeners: [{ name: web, protocol: http, listen: 127.0.0.1:0 }]
admin: { listen: 127.0.0.1:0 }
upstreams:
  - name: svc
    discovery: { type: zookeeper, servers: ['${zk.hosts}'], path: /malformed }
routes: [{ name: r, listener: web, upstream: svc }]
`,
    );
    await zk.cli('create', '/malformed', '');
    await zk.cli('create', `/malformed/${up.address}`, '');
    await zk.cli('create', '/malformed/not-an-address', '');
    await zk.cli('create', '/malformed/n2', '{"address":');
    const gw = await startCli(file);
    stopAfter(t, gw.child, gw.exited);
    await until(gw.urls.web!, '/', ['good'], performance.now());
    const status = await api(gw.admin!, 'GET', '/status');
    const text = JSON.stringify(status.json);
    assert.match(text, /not-an-address/);
    assert.match(text, /not valid JSON/);
  });
});
