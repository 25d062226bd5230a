import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { discoverySchema } from '../../src/config/schemas/discovery.js';
import type { DiscoveryUpdate } from '../../src/discovery/backend.js';
import { DnsDiscovery } from '../../src/discovery/dns.js';
import { createLogger } from '../../src/observability/logger.js';
import { startDns, type TestDns } from '../helpers/dnsmasq.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { startGateway } from '../helpers/gateway.js';
import { freePort, startUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

const logger = createLogger('silent');

/** A started backend and every update it gave, with when (performance.now()). */
function watch(config: Record<string, unknown>) {
  const parsed = discoverySchema.parse({ type: 'dns', ...config });
  if (parsed.type !== 'dns') throw new Error('not dns');
  const backend = new DnsDiscovery(parsed, logger);
  const updates: { u: DiscoveryUpdate; at: number }[] = [];
  backend.start((u) => updates.push({ u, at: performance.now() }));
  const last = () => updates.at(-1)?.u;
  const addresses = () => {
    const u = last();
    return u?.ok ? u.targets.map((t) => `${t.address} ${t.weight}`).sort() : undefined;
  };
  return { backend, updates, last, addresses };
}

/** A UDP socket on loopback that reads queries and never answers; counts them. */
async function silentServer() {
  const sock = dgram.createSocket('udp4');
  let queries = 0;
  sock.on('message', () => queries++);
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  return { server: `127.0.0.1:${sock.address().port}`, queries: () => queries, close: () => new Promise<void>((r) => sock.close(() => r())) };
}

describe('DNS discovery against a real dnsmasq', () => {
  let dns: TestDns;
  before(async () => {
    dns = await startDns(
      {
        hosts: { 'api.example.internal': ['127.0.0.1', '127.0.0.2'], 'v6.example.internal': ['::1'], 'a.example.internal': ['127.0.0.11'], 'b.example.internal': ['127.0.0.12'], 'c.example.internal': ['127.0.0.13'] },
        srv: {
          '_api._tcp.example.internal': [
            { target: 'a.example.internal', port: 8001, priority: 10, weight: 5 },
            { target: 'b.example.internal', port: 8002, priority: 10, weight: 0 },
            { target: 'c.example.internal', port: 8003, priority: 20, weight: 100 },
          ],
        },
      },
      { ttl: 1 },
    );
  });
  after(() => dns.stop());

  it('A records become ip:port targets with weight 1', async () => {
    const w = watch({ name: 'api.example.internal', record: 'A', port: 8080, servers: [dns.server] });
    try {
      const got = await waitFor(w.addresses, 'an answer');
      assert.deepEqual(got, ['127.0.0.1:8080 1', '127.0.0.2:8080 1']);
    } finally {
      w.backend.close();
    }
  });

  it('AAAA records become bracketed [ip]:port targets', async () => {
    const w = watch({ name: 'v6.example.internal', record: 'AAAA', port: 9090, servers: [dns.server] });
    try {
      assert.deepEqual(await waitFor(w.addresses, 'an answer'), ['[::1]:9090 1']);
    } finally {
      w.backend.close();
    }
  });

  it('a name with no record of the type (NODATA) is an empty answer, not a failure', async () => {
    const w = watch({ name: 'api.example.internal', record: 'AAAA', port: 9090, servers: [dns.server] });
    try {
      assert.deepEqual(await waitFor(w.addresses, 'an answer'), []);
    } finally {
      w.backend.close();
    }
  });

  it('SRV: only the lowest priority, its weights (0 → 1) and ports', async () => {
    const w = watch({ name: '_api._tcp.example.internal', record: 'SRV', servers: [dns.server] });
    try {
      assert.deepEqual(await waitFor(w.addresses, 'an answer'), ['127.0.0.11:8001 5', '127.0.0.12:8002 1']);
    } finally {
      w.backend.close();
    }
  });

  it('NXDOMAIN for the configured name is a failure (the last targets stay)', async () => {
    const w = watch({ name: 'missing.example.internal', record: 'A', port: 80, servers: [dns.server] });
    try {
      const u = await waitFor(w.last, 'an update');
      assert.equal(u.ok, false);
      assert.match(!u.ok ? u.error : '', /^NXDOMAIN: missing\.example\.internal does not exist$/);
    } finally {
      w.backend.close();
    }
  });

  it('a minTtl above the record TTL spaces the queries', async () => {
    const slow = watch({ name: 'api.example.internal', record: 'A', port: 80, servers: [dns.server], minTtl: '1500ms' });
    try {
      await waitFor(() => (slow.updates.length >= 3 ? true : undefined), 'three resolutions', 10_000);
      for (let i = 1; i < slow.updates.length; i++) {
        const gap = slow.updates[i]!.at - slow.updates[i - 1]!.at;
        // Timers never fire early; 1 ms for clock rounding.
        assert.ok(gap >= 1499, `resolved again after ${gap} ms, minTtl is 1500 ms`);
      }
    } finally {
      slow.backend.close();
    }
  });

  it('a maxTtl below the record TTL re-resolves sooner than the TTL', async () => {
    const dns30 = await startDns({ hosts: { 'api.example.internal': ['127.0.0.1'] } }, { ttl: 3600 });
    const w = watch({ name: 'api.example.internal', record: 'A', port: 80, servers: [dns30.server], minTtl: '100ms', maxTtl: '200ms' });
    try {
      // With the 1 h TTL obeyed, a second resolution would not come for an hour.
      await waitFor(() => (w.updates.length >= 3 ? true : undefined), 'three resolutions', 10_000);
    } finally {
      w.backend.close();
      await dns30.stop();
    }
  });
});

describe('DNS discovery: changes and faults', () => {
  it('picks up changed records within about the TTL (A and SRV)', async () => {
    const dns = await startDns({ hosts: { 'api.example.internal': ['127.0.0.1'], 'a.example.internal': ['127.0.0.11'] }, srv: { '_s._tcp.example.internal': [{ target: 'a.example.internal', port: 1000 }] } }, { ttl: 1 });
    const a = watch({ name: 'api.example.internal', record: 'A', port: 80, servers: [dns.server] });
    const s = watch({ name: '_s._tcp.example.internal', record: 'SRV', servers: [dns.server] });
    try {
      assert.deepEqual(await waitFor(a.addresses, 'A answer'), ['127.0.0.1:80 1']);
      assert.deepEqual(await waitFor(s.addresses, 'SRV answer'), ['127.0.0.11:1000 1']);
      await dns.setRecords({ hosts: { 'api.example.internal': ['127.0.0.3', '127.0.0.4'], 'a.example.internal': ['127.0.0.11'] }, srv: { '_s._tcp.example.internal': [{ target: 'a.example.internal', port: 2000, weight: 7 }] } });
      await waitFor(() => (a.addresses()?.join() === '127.0.0.3:80 1,127.0.0.4:80 1' ? true : undefined), 'the new A set', 10_000);
      await waitFor(() => (s.addresses()?.join() === '127.0.0.11:2000 7' ? true : undefined), 'the new SRV set', 10_000);
    } finally {
      a.backend.close();
      s.backend.close();
      await dns.stop();
    }
  });

  it('a paused server → ok:false naming the timeout, then the set again once it answers; no fd leak', async () => {
    const dns = await startDns({ hosts: { 'api.example.internal': ['127.0.0.1'] } }, { ttl: 1 });
    const baseline = openFds();
    const w = watch({ name: 'api.example.internal', record: 'A', port: 80, servers: [dns.server], timeout: '300ms', minTtl: '200ms', maxTtl: '1s' });
    try {
      await waitFor(w.addresses, 'an answer');
      dns.pause();
      const failed = await waitFor(() => (w.last()?.ok === false ? w.last() : undefined), 'a failure', 10_000);
      assert.match(!failed.ok ? failed.error : '', /^timeout: /);
      dns.resume();
      assert.deepEqual(await waitFor(() => (w.last()?.ok ? w.addresses() : undefined), 'the set again', 10_000), ['127.0.0.1:80 1']);
    } finally {
      dns.resume();
      w.backend.close();
      await dns.stop();
    }
    await fdsSettle(baseline);
  });

  it('a server that never answers → ok:false within the timeout, retried with backoff; close() stops all queries', async () => {
    const silent = await silentServer();
    const baseline = openFds();
    const w = watch({ name: 'api.example.internal', record: 'A', port: 80, servers: [silent.server], timeout: '200ms', minTtl: '100ms', maxTtl: '400ms' });
    try {
      const failed = await waitFor(() => (w.last()?.ok === false ? w.last() : undefined), 'a failure', 10_000);
      assert.match(!failed.ok ? failed.error : '', /^timeout: no answer for api\.example\.internal A within 200 ms$/);
      await waitFor(() => (silent.queries() >= 3 ? true : undefined), 'retries', 10_000);
    } finally {
      w.backend.close();
    }
    const queries = silent.queries();
    const updates = w.updates.length;
    // Long enough for several retries at maxTtl (400 ms) had close() not stopped them.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(silent.queries(), queries, 'no query after close()');
    assert.equal(w.updates.length, updates, 'no update after close()');
    await fdsSettle(baseline);
    await silent.close();
  });

  it('close() during a query in flight: no update follows', async () => {
    const silent = await silentServer();
    const w = watch({ name: 'api.example.internal', record: 'A', port: 80, servers: [silent.server], timeout: '1s' });
    await waitFor(() => (silent.queries() >= 1 ? true : undefined), 'the query sent');
    w.backend.close();
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(w.updates.length, 0);
    await silent.close();
  });

  it('a server setServers refuses is a failure, not a throw (the config refuses it first)', () => {
    const parsed = discoverySchema.parse({ type: 'dns', name: 'api.example.internal', record: 'A', port: 80 });
    if (parsed.type !== 'dns') throw new Error('not dns');
    const backend = new DnsDiscovery({ ...parsed, servers: ['not an address'] }, logger);
    const updates: DiscoveryUpdate[] = [];
    backend.start((u) => updates.push(u));
    assert.equal(updates.length, 1);
    assert.match(updates[0] && !updates[0].ok ? updates[0].error : '', /^servers: /);
    backend.close();
  });
});

describe('DNS discovery through the gateway', () => {
  it('an upstream with only an A-record discovery receives the traffic', async () => {
    const up = await startUpstream();
    const dns = await startDns({ hosts: { 'api.example.internal': ['127.0.0.1'] } }, { ttl: 1 });
    const gw = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [{ name: 'api', discovery: { type: 'dns', name: 'api.example.internal', record: 'A', port: up.port, servers: [dns.server] } }],
      routes: [{ name: 'r', listener: 'web', upstream: 'api' }],
    });
    try {
      const res = await waitFor(async () => {
        const r = await fetch(`${gw.url()}/hello`);
        await r.arrayBuffer();
        return r.status === 200 ? r : undefined;
      }, 'a proxied answer', 10_000);
      assert.equal(res.status, 200);
      assert.ok(up.received.some((r) => r.url === '/hello'));
    } finally {
      await gw.close();
      await dns.stop();
      await up.close();
    }
  });

  it('the name vanishing (NXDOMAIN) keeps the last targets serving; NODATA empties them after emptyGrace', async () => {
    const baseline = openFds();
    const up = await startUpstream();
    const dns = await startDns({ hosts: { 'api.example.internal': ['127.0.0.1'], 'other.example.internal': ['127.0.0.9'] } }, { ttl: 1 });
    const gw = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [{ name: 'api', discovery: { type: 'dns', name: 'api.example.internal', record: 'A', port: up.port, servers: [dns.server], minTtl: '200ms', maxTtl: '1s', emptyGrace: '500ms' } }],
      routes: [{ name: 'r', listener: 'web', upstream: 'api' }],
    });
    const discovery = () => gw.gateway.current.upstreams.get('api')?.health().discovery;
    const get = async () => {
      const r = await fetch(`${gw.url()}/x`);
      await r.arrayBuffer();
      return r.status;
    };
    try {
      await waitFor(async () => ((await get()) === 200 ? true : undefined), 'a proxied answer', 10_000);
      // The name disappears from the zone: NXDOMAIN.
      await dns.setRecords({ hosts: { 'other.example.internal': ['127.0.0.9'] } });
      const d = await waitFor(() => (discovery()?.error?.startsWith('NXDOMAIN') ? discovery() : undefined), 'the NXDOMAIN failure on status', 10_000);
      assert.equal(d.error, 'NXDOMAIN: api.example.internal does not exist');
      assert.equal(d.targets, 1, 'the last target is kept');
      assert.equal(await get(), 200);
      // The name exists again but with no A record (only AAAA): NODATA, an empty answer, applied after emptyGrace.
      await dns.setRecords({ hosts: { 'api.example.internal': ['::1'] } });
      await waitFor(() => (discovery()?.targets === 0 ? true : undefined), 'the empty answer applied', 10_000);
      assert.notEqual(await get(), 200);
    } finally {
      await gw.close();
      await dns.stop();
      await up.close();
    }
    await fdsSettle(baseline);
  });

  it('SRV billing: one of two targets down → traffic only to the healthy one', async () => {
    let healthy = 0;
    const up = await startUpstream((req, res) => {
      if (req.url !== '/health') healthy++;
      res.end('ok');
    });
    const downPort = await freePort();
    const dns = await startDns(
      {
        hosts: { 'billing-1.example.internal': ['127.0.0.1'], 'billing-2.example.internal': ['127.0.0.1'] },
        srv: { '_billing._tcp.example.internal': [{ target: 'billing-1.example.internal', port: up.port, weight: 1 }, { target: 'billing-2.example.internal', port: downPort, weight: 1 }] },
      },
      { ttl: 1 },
    );
    const gw = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [{ name: 'billing', discovery: { type: 'dns', name: '_billing._tcp.example.internal', record: 'SRV', servers: [dns.server] }, healthCheck: { active: { type: 'http', path: '/health', interval: '2s' } } }],
      routes: [{ name: 'r', listener: 'web', upstream: 'billing' }],
    });
    const get = async () => {
      const r = await fetch(`${gw.url()}/pay`);
      await r.arrayBuffer();
      return r.status;
    };
    try {
      // Both SRV targets are discovered; the active check marks the one with no server unhealthy.
      const targets = () => (gw.gateway.status() as { upstreams: { name: string; targets: { address: string; healthy: boolean }[] }[] }).upstreams.find((u) => u.name === 'billing')?.targets ?? [];
      await waitFor(() => (targets().some((t) => t.address === `127.0.0.1:${downPort}` && !t.healthy) ? true : undefined), 'the down target found unhealthy', 20_000, 100);
      assert.deepEqual(targets().map((t) => `${t.address} ${t.healthy}`).sort(), [`127.0.0.1:${downPort} false`, `127.0.0.1:${up.port} true`].sort());
      // Until the down target is found unhealthy, some requests may fail; then ten in a row must succeed.
      await waitFor(async () => {
        for (let i = 0; i < 10; i++) if ((await get()) !== 200) return undefined;
        return true;
      }, 'ten answers in a row from the healthy target', 20_000, 200);
      const before = healthy;
      const statuses = [];
      for (let i = 0; i < 20; i++) statuses.push(await get());
      assert.deepEqual(statuses, Array(20).fill(200));
      assert.equal(healthy - before, 20, 'every request reached the healthy target');
    } finally {
      await gw.close();
      await dns.stop();
      await up.close();
    }
  });
});
