import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { formatHostPort } from '../../src/net/address.js';
import type { Agent } from '../../src/tunnel/agent/agent.js';
import type { Pki } from '../helpers/certs.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { closedWithin, connect } from '../helpers/tcp.js';
import { startAgent, tunnelListener, tunnelPki } from '../helpers/tunnel.js';
import { adminCall } from '../helpers/tunnel-peer.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

const KEY = 'tunnel-admin-test-key';

describe('admin API: tunnel agents', () => {
  let pki: Pki;
  let gateway: TestGateway;
  let origin: TestUpstream;
  let echo: net.Server;
  let agent: Agent;
  let fdsBefore = 0;
  const call = (method: string, path: string, key: string | null = KEY) => adminCall(`http://${formatHostPort(gateway.gateway.adminAddress()!)}`, method, path, key);

  before(async () => {
    let gw: { cert: string; key: string };
    ({ pki, gw } = await tunnelPki());
    origin = await startUpstream();
    echo = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    gateway = await startGateway({
      admin: { listen: '127.0.0.1:0', apiKey: KEY },
      listeners: [
        { name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false },
        { name: 'tcp', protocol: 'tcp', listen: '127.0.0.1:0', upstream: 'ssh', accessLog: false },
        tunnelListener(gw),
      ],
      upstreams: [
        { name: 'crm', targets: [{ tunnel: 'crm' }] },
        { name: 'ssh', targets: [{ tunnel: 'ssh' }] },
      ],
      routes: [{ name: 'crm', listener: 'web', upstream: 'crm' }],
    });
    fdsBefore = openFds();
    agent = await startAgent(formatHostPort(gateway.gateway.listenerAddress('tunnel')!), pki.caCert, [
      { code: 'crm', local: origin.address, type: 'http' },
      { code: 'ssh', local: `127.0.0.1:${(echo.address() as net.AddressInfo).port}`, type: 'tcp' },
      { code: 'forbidden', local: origin.address, type: 'tcp' },
    ]);
    await waitFor(() => gateway.gateway.tunnels.registrations('ssh').length === 1, 'ssh registered');
  });

  after(async () => {
    await agent?.stop();
    await gateway?.close();
    await origin?.close();
    echo?.close();
    await pki?.cleanup();
  });

  /** The one listed agent, once its heartbeat answered. */
  async function theAgent(): Promise<any> {
    return waitFor(async () => {
      const r = await call('GET', '/agents');
      assert.equal(r.status, 200);
      return r.body.agents.length === 1 && r.body.agents[0].lastPingAt !== null ? r.body.agents[0] : undefined;
    }, 'one agent with a heartbeat');
  }

  /** Waits until the agent reconnected under another connection id than `old`. */
  async function reconnectedAfter(old: string): Promise<any> {
    return waitFor(async () => {
      const r = await call('GET', '/agents');
      const a = r.body.agents[0];
      return a !== undefined && a.connection !== old && a.services.length === 2 ? a : undefined;
    }, 'the agent back on a new connection');
  }

  it('needs the admin key', async () => {
    assert.equal((await call('GET', '/agents', null)).status, 401);
    assert.equal((await call('GET', '/agents', 'wrong-key')).status, 401);
    assert.equal((await call('DELETE', '/agents/office-1', null)).status, 401);
    assert.equal((await call('POST', '/agents')).status, 405);
    assert.equal((await call('GET', '/agents/office-1')).status, 405);
  });

  it('lists the agent: connection, codes, refusals, streams, heartbeat', async () => {
    const a = await theAgent();
    assert.equal(a.id, 'office-1');
    assert.equal(a.listener, 'tunnel');
    assert.match(a.peer, /^127\.0\.0\.1:\d+$/);
    assert.match(a.connection, /^0-[0-9a-z]+$/);
    assert.ok(Date.parse(a.connectedAt) <= Date.now());
    assert.ok(a.ageMs >= 0);
    assert.deepEqual(
      a.services.map((s: any) => [s.code, s.type, s.hosts, s.remotePort, s.up]).sort(),
      [
        ['crm', 'http', [], null, true],
        ['ssh', 'tcp', [], null, true],
      ],
    );
    assert.deepEqual(a.refused, [{ code: 'forbidden', reason: 'code "forbidden" is not allowed for agent office-1' }]);
    assert.deepEqual(a.streams, { open: 0, total: 0 });
    assert.equal(typeof a.rttMs, 'number');
    // The agent's own view agrees with the gateway's.
    assert.equal(agent.conn.session, a.connection);
    assert.deepEqual([...agent.refused.keys()], ['forbidden']);
  });

  it('counts streams and lists agent, services and streams in /connections; DELETE closes a stream', async () => {
    const client = await connect(gateway.gateway.listenerAddress('tcp')!.port);
    client.write('hello');
    await new Promise((r) => client.once('data', r));
    const a = await waitFor(async () => ((await theAgent()).streams.open === 1 ? theAgent() : undefined), 'one open stream');
    assert.deepEqual(a.streams, { open: 1, total: 1 });

    const agents = (await call('GET', '/connections?kind=tunnel-agent')).body.connections;
    assert.equal(agents.length, 1);
    assert.equal(agents[0].id, a.connection);
    assert.equal(agents[0].target, 'office-1');
    const services = (await call('GET', '/connections?kind=tunnel-service')).body.connections;
    assert.deepEqual(services.map((s: any) => s.route).sort(), ['crm', 'ssh']);
    for (const s of services) assert.ok(s.id.startsWith(`${a.connection}.`), s.id);
    const streams = (await call('GET', '/connections?kind=tunnel-stream')).body.connections;
    assert.equal(streams.length, 1);
    assert.match(streams[0].target, /^tunnel:ssh@office-1#\d+$/);
    assert.match(streams[0].peer, /^127\.0\.0\.1:\d+$/);

    const del = await call('DELETE', `/connections/${streams[0].id}`);
    assert.equal(del.status, 202);
    assert.equal(await closedWithin(client, 5000), true);
    await waitFor(async () => (await call('GET', '/connections?kind=tunnel-stream')).body.connections.length === 0, 'the stream unlisted');
    // Closing one stream leaves the agent connected.
    assert.equal((await theAgent()).connection, a.connection);
  });

  it('DELETE /connections/<service id> disconnects the agent (a code is its connection\'s); it reconnects by itself', async () => {
    const a = await theAgent();
    const services = (await call('GET', '/connections?kind=tunnel-service')).body.connections;
    assert.equal((await call('DELETE', `/connections/${services[0].id}`)).status, 202);
    const back = await reconnectedAfter(a.connection);
    assert.notEqual(back.connection, a.connection);
  });

  it('DELETE /connections/<agent id> disconnects it', async () => {
    const a = await theAgent();
    assert.equal((await call('DELETE', `/connections/${a.connection}`)).status, 202);
    await reconnectedAfter(a.connection);
  });

  it('DELETE /agents/:id disconnects every connection of the id; 404 UNKNOWN_AGENT for none', async () => {
    const a = await theAgent();
    const r = await call('DELETE', '/agents/office-1');
    assert.equal(r.status, 202);
    assert.deepEqual(r.body, { id: 'office-1', connections: 1, status: 'closing' });
    await reconnectedAfter(a.connection);

    const none = await call('DELETE', '/agents/nobody');
    assert.equal(none.status, 404);
    assert.equal(none.body.code, 'UNKNOWN_AGENT');
    assert.equal(typeof none.body.error, 'string');
    assert.equal((await call('DELETE', '/agents/%E0%A4%A')).status, 400);
    assert.equal((await call('DELETE', '/agents/')).status, 404);
  });

  it('leaves no descriptor behind after the disconnects', async () => {
    await theAgent();
    await fdsSettle(fdsBefore, 4);
  });
});
