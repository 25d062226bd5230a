import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { formatHostPort } from '../../src/net/address.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startAgent, tunnelListener, tunnelPki } from '../helpers/tunnel.js';
import { waitFor } from '../helpers/wait.js';
import { send } from '../helpers/http.js';
import type { Pki } from '../helpers/certs.js';
import type { Agent } from '../../src/tunnel/agent/agent.js';

describe('tunnel: a service behind an agent is a target', () => {
  let pki: Pki;
  let gw: { cert: string; key: string };
  let gateway: TestGateway;
  let origin: TestUpstream;
  let echo: net.Server;
  let agent: Agent;

  before(async () => {
    ({ pki, gw } = await tunnelPki());
    origin = await startUpstream((req, res, body) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ path: req.url, host: req.headers.host, body }));
    });
    echo = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    gateway = await startGateway({
      listeners: [
        { name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false },
        { name: 'tcp', protocol: 'tcp', listen: '127.0.0.1:0', upstream: 'ssh', accessLog: false },
        tunnelListener(gw),
      ],
      upstreams: [
        { name: 'crm', targets: [{ tunnel: 'crm' }] },
        { name: 'ssh', targets: [{ tunnel: 'ssh' }] },
      ],
      routes: [{ name: 'crm', listener: 'web', match: { host: 'crm.example.com' }, upstream: 'crm' }],
    });
    const tunnelAddr = formatHostPort(gateway.gateway.listenerAddress('tunnel')!);
    agent = await startAgent(tunnelAddr, pki.caCert, [
      { code: 'crm', local: origin.address, type: 'http' },
      { code: 'ssh', local: `127.0.0.1:${(echo.address() as net.AddressInfo).port}`, type: 'tcp' },
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

  it('serves HTTP routed to { tunnel: crm }', async () => {
    const res = await send(gateway.url(), { path: '/hello?x=1', method: 'POST', body: 'ping', headers: { host: 'crm.example.com' } });
    assert.equal(res.status, 200);
    const body = JSON.parse(res.body) as { path: string; host: string; body: string };
    assert.deepEqual(body, { path: '/hello?x=1', host: 'crm.example.com', body: 'ping' });
  });

  it('carries raw TCP to { tunnel: ssh } with half-close', async () => {
    const sock = net.connect(gateway.gateway.listenerAddress('tcp')!.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (c) => chunks.push(c));
    const payload = Buffer.alloc(1024 * 1024, 7);
    sock.end(payload);
    await new Promise((r) => sock.once('close', r));
    assert.equal(Buffer.concat(chunks).length, payload.length);
  });

  it('lists the agent, its services and its streams in the connection registry', async () => {
    const list = gateway.gateway.connectionRegistry.list({ kind: 'tunnel-agent' });
    assert.equal(list.length, 1);
    assert.equal(list[0]!.target, 'office-1');
  });

  it('answers 503 NO_TARGET once the agent is gone, and serves again when it is back', async () => {
    await agent.stop();
    await waitFor(() => gateway.gateway.tunnels.registrations('crm').length === 0, 'crm unregistered');
    const res = await send(gateway.url(), { path: '/x', headers: { host: 'crm.example.com' } });
    assert.equal(res.status, 503);
    assert.equal((JSON.parse(res.body) as { code: string }).code, 'NO_TARGET');
    agent.start();
    await agent.connected();
    await waitFor(() => gateway.gateway.tunnels.registrations('crm').length === 1, 'crm registered again');
    const again = await send(gateway.url(), { path: '/y', headers: { host: 'crm.example.com' } });
    assert.equal(again.status, 200);
  });
});
