import assert from 'node:assert/strict';
import net from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { formatHostPort } from '../../src/net/address.js';
import type { Agent } from '../../src/tunnel/agent/agent.js';
import type { Pki } from '../helpers/certs.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { startTcpServer, type TcpServer } from '../helpers/tcp.js';
import { startAgent, tunnelListener, tunnelPki } from '../helpers/tunnel.js';
import { freePort, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Exposure through a tunnel listener: an agent's `remotePort` opens a
 * public TCP port on the gateway while its registration lives, spliced to
 * its local service; its `hosts` become HTTP routes on the tunnel's
 * `http.listener`, behind the configured routes.
 */

/** Sends `payload`, ends the write side, and collects everything until the server closes. */
function roundTrip(port: number, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.once('error', reject);
    sock.once('close', () => resolve(Buffer.concat(chunks)));
    sock.end(payload);
  });
}

/** Sends `payload` and resolves once the connection closed: with the bytes received and the error that closed it, if any. */
function refusedStream(port: number, payload: Buffer): Promise<{ received: number; error: string | null }> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let received = 0;
    let error: string | null = null;
    sock.on('data', (c: Buffer) => (received += c.length));
    sock.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
    sock.once('close', () => resolve({ received, error }));
    sock.write(payload);
  });
}

/** Resolves with the error code of a connection attempt to `port` (or 'connected'). */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve('connected');
    });
    sock.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe('tunnel exposure: remotePort and claimed hosts', () => {
  let pki: Pki;
  let gw: { cert: string; key: string };
  let gateway: TestGateway;
  let echo: TcpServer;
  let origin: TestUpstream;
  let tunnelAddr: string;
  let doc: Record<string, unknown>;
  const agents: Agent[] = [];

  const agent = async (services: unknown[]): Promise<Agent> => {
    const a = await startAgent(tunnelAddr, pki.caCert, services);
    agents.push(a);
    return a;
  };
  /** Waits for the gateway's verdict on `code` (accepted: registered; refused: the agent knows why). */
  const verdict = (a: Agent, code: string) =>
    waitFor(() => (a.refused.has(code) ? `refused: ${a.refused.get(code)}` : gateway.gateway.tunnels.registrations(code).length > 0 ? 'accepted' : undefined), `a verdict on ${code}`);

  before(async () => {
    ({ pki, gw } = await tunnelPki());
    echo = await startTcpServer((s) => s.pipe(s));
    origin = await startUpstream((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ from: 'origin', host: req.headers.host, path: req.url }));
    });
    doc = {
      listeners: [
        { name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false },
        tunnelListener(gw, {
          http: { listener: 'web', hosts: ['*.tunnel.test'] },
          agents: [{ id: 'office-1', token: 'office-1-token-0123456789', codes: ['crm', 'ssh', 'other', 'device-*'], allowPorts: ['20000-65000'] }],
        }),
      ],
      routes: [{ name: 'configured', listener: 'web', match: { host: 'taken.tunnel.test', pathPrefix: '/api' }, respond: { status: 200, body: 'configured' } }],
    };
    gateway = await startGateway(doc);
    tunnelAddr = formatHostPort(gateway.gateway.listenerAddress('tunnel')!);
  });

  afterEach(async () => {
    for (const a of agents.splice(0)) await a.stop();
    await waitFor(() => gateway.gateway.tunnels.codesRegistered().length === 0, 'every registration gone');
  });

  after(async () => {
    await gateway?.close();
    await echo?.close();
    await origin?.close();
    await pki?.cleanup();
  });

  it('opens remotePort while the agent is there: 1 MiB echoed with half-close, listed as a tunnel-port; closed when the agent leaves', async () => {
    const port = await freePort();
    const fdsBefore = openFds();
    const a = await agent([{ code: 'ssh', local: echo.address, type: 'tcp', remotePort: port }]);
    assert.equal(await verdict(a, 'ssh'), 'accepted');
    const payload = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = i % 251;
    const back = await roundTrip(port, payload);
    assert.equal(back.length, payload.length);
    assert.ok(back.equals(payload), 'the echo came back byte for byte');

    const entries = gateway.gateway.connectionRegistry.list({ kind: 'tunnel-port' });
    assert.equal(entries.length, 1);
    assert.equal(entries[0]!.route, 'ssh');
    assert.equal(entries[0]!.listener, 'tunnel');
    assert.match(entries[0]!.target ?? '', /^tunnel:ssh@office-1#/);
    assert.equal(entries[0]!.bytesIn, payload.length);
    assert.equal(entries[0]!.bytesOut, payload.length);

    // A connection open when the agent leaves is closed with the port; new ones are refused.
    const held = net.connect(port, '127.0.0.1');
    held.on('error', () => undefined);
    held.write('hello');
    await new Promise((r) => held.once('data', r));
    const closed = new Promise((r) => held.once('close', r));
    await a.stop();
    await closed;
    await waitFor(async () => (await tryConnect(port)) === 'ECONNREFUSED', 'the port refuses connections');
    assert.equal(gateway.gateway.connectionRegistry.list({ kind: 'tunnel-port' }).length, 0);
    assert.equal(gateway.gateway.connectionRegistry.list({ kind: 'tunnel-stream' }).length, 0);
    agents.length = 0;
    await fdsSettle(fdsBefore);
  });

  it('closing the tunnel-port entry through the registry closes the port and its connections', async () => {
    const port = await freePort();
    const a = await agent([{ code: 'ssh', local: echo.address, type: 'tcp', remotePort: port }]);
    assert.equal(await verdict(a, 'ssh'), 'accepted');
    const held = net.connect(port, '127.0.0.1');
    held.on('error', () => undefined);
    held.write('x');
    await new Promise((r) => held.once('data', r));
    const closed = new Promise((r) => held.once('close', r));
    const registry = gateway.gateway.connectionRegistry;
    const entry = registry.get(registry.list({ kind: 'tunnel-port' })[0]!.id)!;
    assert.equal(entry.close(), true);
    await closed;
    assert.equal(await tryConnect(port), 'ECONNREFUSED');
  });

  it('refuses a remotePort outside allowPorts, and the agent is told why', async () => {
    const a = await agent([{ code: 'ssh', local: echo.address, type: 'tcp', remotePort: 19_999 }]);
    assert.match(await verdict(a, 'ssh'), /^refused: port 19999 is outside this agent's allowPorts/);
    assert.equal(await tryConnect(19_999), 'ECONNREFUSED');
  });

  it('refuses a remotePort already in use (EADDRINUSE), and a later agent gets it once it is free', async () => {
    const before = openFds();
    const squatter = net.createServer();
    const port = await freePort();
    await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', r));
    const a = await agent([{ code: 'ssh', local: echo.address, type: 'tcp', remotePort: port }]);
    assert.match(await verdict(a, 'ssh'), /^refused: port \d+ \(tcp\) on 127\.0\.0\.1 cannot be opened: .*EADDRINUSE/);
    assert.equal(gateway.gateway.tunnels.registrations('ssh').length, 0);
    await a.stop();
    agents.length = 0;
    await new Promise<void>((r) => squatter.close(() => r()));
    await fdsSettle(before);
    const b = await agent([{ code: 'ssh', local: echo.address, type: 'tcp', remotePort: port }]);
    assert.equal(await verdict(b, 'ssh'), 'accepted');
    assert.equal((await roundTrip(port, Buffer.from('again'))).toString(), 'again');
  });

  it('a port held by one registration is refused to another', async () => {
    const port = await freePort();
    const a = await agent([{ code: 'ssh', local: echo.address, type: 'tcp', remotePort: port }]);
    assert.equal(await verdict(a, 'ssh'), 'accepted');
    const b = await agent([{ code: 'device-1', local: echo.address, type: 'tcp', remotePort: port }]);
    assert.match(await verdict(b, 'device-1'), /EADDRINUSE/);
  });

  it('a remotePort whose local service is down: the client is closed, nothing leaks', async () => {
    const port = await freePort();
    const dead = await freePort();
    const a = await agent([{ code: 'ssh', local: `127.0.0.1:${dead}`, type: 'tcp', remotePort: port }]);
    assert.equal(await verdict(a, 'ssh'), 'accepted');
    await refusedStream(port, Buffer.from('warm-up')); // the first connection's one-time allocations
    const before = openFds();
    for (let i = 0; i < 20; i++) {
      const r = await refusedStream(port, Buffer.from('lost'));
      assert.equal(r.received, 0);
      // Closed by the gateway (unread bytes make it a reset), never left open.
      assert.ok(r.error === null || r.error === 'ECONNRESET', String(r.error));
    }
    await fdsSettle(before);
  });

  it('serves a claimed host over HTTP (Host preserved), and 404 once its agent leaves', async () => {
    const a = await agent([{ code: 'crm', local: origin.address, type: 'http', hosts: ['crm.tunnel.test'] }]);
    assert.equal(await verdict(a, 'crm'), 'accepted');
    const res = await send(gateway.url(), { path: '/hello', headers: { host: 'crm.tunnel.test' } });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), { from: 'origin', host: 'crm.tunnel.test', path: '/hello' });
    assert.deepEqual(gateway.gateway.tunnels.hosts!.list(), { web: { 'crm.tunnel.test': 'crm' } });
    await a.stop();
    await waitFor(() => gateway.gateway.tunnels.registrations('crm').length === 0, 'crm gone');
    const gone = await send(gateway.url(), { path: '/hello', headers: { host: 'crm.tunnel.test' } });
    assert.equal(gone.status, 404);
    assert.deepEqual(gateway.gateway.tunnels.hosts!.list(), {});
  });

  it('two agents with the same code share a host; it answers until the last leaves', async () => {
    const a = await agent([{ code: 'crm', local: origin.address, type: 'http', hosts: ['crm.tunnel.test'] }]);
    const b = await agent([{ code: 'crm', local: origin.address, type: 'http', hosts: ['crm.tunnel.test'] }]);
    await waitFor(() => gateway.gateway.tunnels.registrations('crm').length === 2, 'both registered');
    assert.equal(b.refused.size, 0);
    await a.stop();
    await waitFor(() => gateway.gateway.tunnels.registrations('crm').length === 1, 'one left');
    assert.equal((await send(gateway.url(), { headers: { host: 'crm.tunnel.test' } })).status, 200);
    await b.stop();
    await waitFor(() => gateway.gateway.tunnels.registrations('crm').length === 0, 'none left');
    assert.equal((await send(gateway.url(), { headers: { host: 'crm.tunnel.test' } })).status, 404);
  });

  it('refuses a host outside the tunnel\'s http.hosts, and a host another code holds', async () => {
    const a = await agent([
      { code: 'crm', local: origin.address, type: 'http', hosts: ['crm.tunnel.test'] },
      { code: 'other', local: origin.address, type: 'http', hosts: ['crm.tunnel.test'] },
      { code: 'device-1', local: origin.address, type: 'http', hosts: ['crm.elsewhere.test'] },
    ]);
    assert.equal(await verdict(a, 'crm'), 'accepted');
    assert.equal(await verdict(a, 'other'), 'refused: host "crm.tunnel.test" taken by code crm');
    assert.equal(await verdict(a, 'device-1'), 'refused: host "crm.elsewhere.test" is outside the tunnel\'s http.hosts');
    assert.equal((await send(gateway.url(), { headers: { host: 'crm.elsewhere.test' } })).status, 404);
  });

  it('a configured route wins over a claimed host; the rest of the host goes to the agent', async () => {
    const a = await agent([{ code: 'crm', local: origin.address, type: 'http', hosts: ['taken.tunnel.test'] }]);
    assert.equal(await verdict(a, 'crm'), 'accepted');
    const configured = await send(gateway.url(), { path: '/api/x', headers: { host: 'taken.tunnel.test' } });
    assert.equal(configured.status, 200);
    assert.equal(configured.body, 'configured');
    const claimed = await send(gateway.url(), { path: '/site', headers: { host: 'taken.tunnel.test' } });
    assert.equal(claimed.status, 200);
    assert.equal((JSON.parse(claimed.body) as { from: string }).from, 'origin');
  });

  it('a claimed host survives a reload of the gateway config', async () => {
    const a = await agent([{ code: 'crm', local: origin.address, type: 'http', hosts: ['crm.tunnel.test'] }]);
    assert.equal(await verdict(a, 'crm'), 'accepted');
    // The same document again (port-0 listeners keep their sockets): a new snapshot, the same live claims.
    const result = await gateway.reload(doc);
    assert.deepEqual(result, { ok: true, version: 2 });
    const res = await send(gateway.url(), { path: '/after-reload', headers: { host: 'crm.tunnel.test' } });
    assert.equal(res.status, 200);
    assert.equal((JSON.parse(res.body) as { path: string }).path, '/after-reload');
  });
});
