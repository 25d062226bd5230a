// The agent's service features, in process (a real gateway, a real agent,
// real local servers on port 0):
// - PROXY v1 and v2: a `tcp` listener with a `{ tunnel }` upstream; the
//   local server parses the header (src/l4/proxy-protocol/parse.ts) and
//   sees the real client's ip:port and the listener's address; an HTTP
//   service (pooled connections, no single client) gets v2 LOCAL.
// - Bandwidth: the service's streams together never beat burst + rate·t,
//   so a transfer takes at least (bytes − burst) / rate (a lower bound, a
//   correctness property), and every byte arrives, in each direction.
// - Health: the local service stops → withdrawn (up: false) → the gateway
//   answers 503 NO_TARGET → it restarts → served again.
// - Admin: /status and /metrics content; descriptors come back after.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { formatHostPort } from '../../src/net/address.js';
import { parseProxyHeader, type ProxyHeader } from '../../src/l4/proxy-protocol/parse.js';
import { startAgentAdmin } from '../../src/tunnel/agent/admin.js';
import type { Agent } from '../../src/tunnel/agent/agent.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { startAgent, TEST_TOKEN, tunnelListener, tunnelPki } from '../helpers/tunnel.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { waitFor } from '../helpers/wait.js';
import type { Pki } from '../helpers/certs.js';

const KiB = 1024;

/** A TCP server that reads a PROXY header first (recorded), then echoes what follows. */
async function proxyEchoServer(): Promise<{ server: net.Server; port: number; headers: ProxyHeader[]; bad: string[] }> {
  const headers: ProxyHeader[] = [];
  const bad: string[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const r = parseProxyHeader(buf);
      if (r.kind === 'incomplete') return;
      s.off('data', onData);
      if (r.kind !== 'header') {
        bad.push(r.kind === 'malformed' ? r.reason : r.kind);
        return void s.destroy();
      }
      headers.push(r.header);
      s.write(buf.subarray(r.header.consumed));
      s.pipe(s);
    };
    s.on('data', onData);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as net.AddressInfo).port, headers, bad };
}

/**
 * An HTTP service behind a PROXY header, as a PROXY-aware server sees it:
 * the front parses the header (recorded), then hands the socket to `web`.
 * `stop()` closes the port and every connection; `restart()` listens on
 * the same port again.
 */
class ProxiedHttp {
  readonly heads: ProxyHeader[] = [];
  readonly web = http.createServer((req, res) => res.end(`hello ${req.url}`));
  private front: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  async restart(): Promise<void> {
    const front = net.createServer((s) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
      let buf = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        const r = parseProxyHeader(buf);
        if (r.kind === 'incomplete') return;
        s.off('data', onData);
        if (r.kind !== 'header') return void s.destroy();
        this.heads.push(r.header);
        s.pause();
        s.unshift(buf.subarray(r.header.consumed));
        this.web.emit('connection', s);
      };
      s.on('data', onData);
    });
    await new Promise<void>((r) => front.listen(this.port, '127.0.0.1', r));
    this.port = (front.address() as net.AddressInfo).port;
    this.front = front;
  }

  async stop(): Promise<void> {
    const f = this.front;
    this.front = null;
    if (f === null) return;
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => f.close(r));
  }
}

/** Sends `payload` on a new connection to `port`, half-closes, resolves with all it read back. */
function roundTrip(port: number, payload: Buffer): Promise<{ data: Buffer; local: { address: string; port: number } }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.once('error', reject);
    let local = { address: '', port: 0 };
    sock.once('connect', () => {
      local = { address: sock.localAddress!, port: sock.localPort! };
      sock.end(payload);
    });
    sock.once('close', () => resolve({ data: Buffer.concat(chunks), local }));
  });
}

describe('tunnel agent: PROXY protocol, bandwidth, health, admin', () => {
  let pki: Pki;
  let gateway: TestGateway;
  let agent: Agent;
  let v1: Awaited<ReturnType<typeof proxyEchoServer>>;
  let v2: Awaited<ReturnType<typeof proxyEchoServer>>;
  let sink: net.Server;
  let source: net.Server;
  let web: ProxiedHttp;
  let fdsBefore: number;
  const sourceBytes = 192 * KiB;

  const port = (name: string) => gateway.gateway.listenerAddress(name)!.port;

  before(async () => {
    fdsBefore = openFds();
    const made = await tunnelPki();
    pki = made.pki;
    v1 = await proxyEchoServer();
    v2 = await proxyEchoServer();
    // sink: counts what it receives, answers the count as text when the client ends.
    sink = net.createServer({ allowHalfOpen: true }, (s) => {
      let n = 0;
      s.on('data', (c: Buffer) => (n += c.length));
      s.once('end', () => s.end(String(n)));
      s.on('error', () => undefined);
    });
    // source: sends `sourceBytes` and ends.
    source = net.createServer((s) => {
      s.on('error', () => undefined);
      s.end(Buffer.alloc(sourceBytes, 5));
    });
    web = new ProxiedHttp();
    await web.restart();
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => source.listen(0, '127.0.0.1', r));
    gateway = await startGateway({
      listeners: [
        { name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false },
        { name: 'p1', protocol: 'tcp', listen: '127.0.0.1:0', upstream: 'p1', accessLog: false },
        { name: 'p2', protocol: 'tcp', listen: '127.0.0.1:0', upstream: 'p2', accessLog: false },
        { name: 'sink', protocol: 'tcp', listen: '127.0.0.1:0', upstream: 'sink', accessLog: false },
        { name: 'source', protocol: 'tcp', listen: '127.0.0.1:0', upstream: 'source', accessLog: false },
        tunnelListener(made.gw, { agents: [{ id: 'office-1', token: TEST_TOKEN, codes: ['p1', 'p2', 'sink', 'source', 'crm'] }] }),
      ],
      upstreams: [
        { name: 'p1', targets: [{ tunnel: 'p1' }] },
        { name: 'p2', targets: [{ tunnel: 'p2' }] },
        { name: 'sink', targets: [{ tunnel: 'sink' }] },
        { name: 'source', targets: [{ tunnel: 'source' }] },
        { name: 'crm', targets: [{ tunnel: 'crm' }] },
      ],
      routes: [{ name: 'crm', listener: 'web', match: { host: 'crm.example.com' }, upstream: 'crm' }],
    });
    agent = await startAgent(formatHostPort(gateway.gateway.listenerAddress('tunnel')!), pki.caCert, [
      { code: 'p1', local: `127.0.0.1:${v1.port}`, proxyProtocol: 'v1' },
      { code: 'p2', local: `127.0.0.1:${v2.port}`, proxyProtocol: 'v2' },
      { code: 'sink', local: `127.0.0.1:${(sink.address() as net.AddressInfo).port}`, bandwidth: 64 * KiB },
      { code: 'source', local: `127.0.0.1:${(source.address() as net.AddressInfo).port}`, bandwidth: '64KiB' },
      { code: 'crm', local: `127.0.0.1:${web.port}`, type: 'http', proxyProtocol: 'v2', healthCheck: { interval: '100ms', timeout: '500ms', unhealthyThreshold: 1 } },
      { code: 'nope', local: `127.0.0.1:${web.port}` },
    ]);
    await waitFor(() => ['p1', 'p2', 'sink', 'source', 'crm'].every((c) => gateway.gateway.tunnels.registrations(c).length === 1), 'every service registered');
  });

  after(async () => {
    await agent?.stop();
    await gateway?.close();
    for (const s of [v1?.server, v2?.server, sink, source]) s?.close();
    await web?.stop();
    await pki?.cleanup();
  });

  it('PROXY v1: the local service sees the real client and the address it connected to', async () => {
    const payload = randomBytes(300 * KiB);
    const { data, local } = await roundTrip(port('p1'), payload);
    assert.ok(data.equals(payload), 'every byte after the header comes back');
    assert.deepEqual(v1.bad, []);
    const h = v1.headers.at(-1)!;
    assert.equal(h.version, 1);
    assert.equal(h.command, 'PROXY');
    assert.deepEqual(h.addresses, { sourceAddress: local.address, sourcePort: local.port, destinationAddress: '127.0.0.1', destinationPort: port('p1') });
  });

  it('PROXY v2: the same, in the binary form', async () => {
    const payload = Buffer.from('hello over v2');
    const { data, local } = await roundTrip(port('p2'), payload);
    assert.equal(data.toString(), 'hello over v2');
    assert.deepEqual(v2.bad, []);
    const h = v2.headers.at(-1)!;
    assert.equal(h.version, 2);
    assert.equal(h.command, 'PROXY');
    assert.equal(h.family, 'inet');
    assert.deepEqual(h.addresses, { sourceAddress: local.address, sourcePort: local.port, destinationAddress: '127.0.0.1', destinationPort: port('p2') });
  });

  it('PROXY on an HTTP service (pooled connections carry many clients): v2 LOCAL, the request still served', async () => {
    const res = await send(gateway.url(), { path: '/x', headers: { host: 'crm.example.com' } });
    assert.equal(res.status, 200);
    assert.equal(res.body, 'hello /x');
    assert.ok(web.heads.length >= 1);
    assert.equal(web.heads.at(-1)!.command, 'LOCAL');
    assert.equal(web.heads.at(-1)!.addresses, null);
  });

  it('bandwidth, gateway → service: two streams share 64 KiB/s; 192 KiB take at least (192 − 64) / 64 s, every byte arrives', async () => {
    const started = performance.now();
    const [a, b] = await Promise.all([roundTrip(port('sink'), Buffer.alloc(96 * KiB, 1)), roundTrip(port('sink'), Buffer.alloc(96 * KiB, 2))]);
    const elapsed = performance.now() - started;
    assert.equal(a.data.toString(), String(96 * KiB));
    assert.equal(b.data.toString(), String(96 * KiB));
    // The bucket holds at most burst (64 KiB) tokens and refills at 64 KiB/s: 128 KiB more need 2 s (timer granularity aside).
    assert.ok(elapsed >= 2000 - 20, `took ${elapsed.toFixed(0)} ms`);
  });

  it('bandwidth, service → gateway: 192 KiB at 64 KiB/s take at least 2 s, every byte arrives', async () => {
    const started = performance.now();
    const { data } = await roundTrip(port('source'), Buffer.alloc(0));
    const elapsed = performance.now() - started;
    assert.equal(data.length, sourceBytes);
    assert.ok(elapsed >= 2000 - 20, `took ${elapsed.toFixed(0)} ms`);
  });

  it('/status and /metrics describe the connection, services, health and bytes', async () => {
    const admin = await startAgentAdmin(agent, { host: '127.0.0.1', port: 0 });
    try {
      const status = (await (await fetch(`http://${admin.address}/status`)).json()) as {
        connection: { state: string; server: string; session: string | null; streamsTotal: number; lastPingAt: string | null };
        services: { code: string; up: boolean; refused: string | null; health: { up: boolean; checks: number } | null; proxyProtocol: string; bandwidth: number | null; bytes: { in: number; out: number } }[];
      };
      assert.equal(status.connection.state, 'connected');
      assert.equal(status.connection.server, formatHostPort(gateway.gateway.listenerAddress('tunnel')!));
      assert.ok(typeof status.connection.session === 'string' && status.connection.session.length > 0);
      assert.ok(status.connection.streamsTotal >= 5);
      await waitFor(async () => ((await (await fetch(`http://${admin.address}/status`)).json()) as { connection: { lastPingAt: string | null } }).connection.lastPingAt, 'a heartbeat answered');
      const byCode = new Map(status.services.map((s) => [s.code, s]));
      assert.deepEqual([...byCode.keys()].sort(), ['crm', 'nope', 'p1', 'p2', 'sink', 'source']);
      assert.match(byCode.get('nope')!.refused ?? '', /not allowed/);
      assert.equal(byCode.get('p1')!.proxyProtocol, 'v1');
      assert.equal(byCode.get('sink')!.bandwidth, 64 * KiB);
      assert.equal(byCode.get('sink')!.bytes.in, 192 * KiB);
      assert.equal(byCode.get('source')!.bytes.out, sourceBytes);
      assert.equal(byCode.get('p1')!.health, null);
      assert.equal(byCode.get('crm')!.health!.up, true);
      assert.ok(byCode.get('crm')!.health!.checks >= 1);
      assert.ok(status.services.every((s) => (s.refused === null) === (s.code !== 'nope') && s.up));

      const res = await fetch(`http://${admin.address}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
      const text = await res.text();
      assert.match(text, /^portico_agent_connected 1$/m);
      assert.match(text, /^portico_agent_streams 0$/m);
      assert.match(text, /^portico_agent_streams_total ([5-9]|\d\d+)$/m);
      assert.match(text, /^portico_agent_reconnects_total 0$/m);
      assert.match(text, /^portico_agent_service_up\{code="crm"\} 1$/m);
      assert.match(text, new RegExp(`^portico_agent_bytes_total\\{code="sink",direction="in"\\} ${192 * KiB}$`, 'm'));
      assert.match(text, new RegExp(`^portico_agent_bytes_total\\{code="source",direction="out"\\} ${sourceBytes}$`, 'm'));
      assert.match(text, /^process_cpu_user_seconds_total /m);
      assert.equal((await fetch(`http://${admin.address}/other`)).status, 404);
      assert.equal((await fetch(`http://${admin.address}/status`, { method: 'POST' })).status, 405);
    } finally {
      await admin.close();
    }
  });

  it('health: the local service stops → withdrawn → 503 NO_TARGET; it restarts → served again', async () => {
    await web.stop();
    await waitFor(() => gateway.gateway.tunnels.registrations('crm')[0]?.up === false, 'crm withdrawn');
    assert.equal(agent.services.get('crm')!.up, false);
    assert.equal(gateway.gateway.tunnels.registrations('crm').length, 1, 'withdrawn, still listed');
    const down = await send(gateway.url(), { path: '/x', headers: { host: 'crm.example.com' } });
    assert.equal(down.status, 503);
    assert.equal((JSON.parse(down.body) as { code: string }).code, 'NO_TARGET');
    await web.restart();
    await waitFor(() => gateway.gateway.tunnels.registrations('crm')[0]?.up === true, 'crm back');
    const again = await send(gateway.url(), { path: '/y', headers: { host: 'crm.example.com' } });
    assert.equal(again.status, 200);
    assert.equal(again.body, 'hello /y');
  });

  it('leaves no descriptor behind once everything closed', async () => {
    await agent.stop();
    await gateway.close();
    for (const s of [v1.server, v2.server, sink, source]) await new Promise((r) => s.close(r));
    await web.stop();
    await fdsSettle(fdsBefore, 6);
  });
});
