import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { validateConfig } from '../../src/config/load.js';
import { formatHostPort } from '../../src/net/address.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/observability/logger.js';
import type { ConnectCallback, ConnectOptions, Connector } from '../../src/runtime/connector.js';
import { TcpConnector } from '../../src/runtime/tcp-connector.js';
import { send } from '../helpers/http.js';
import { connect, echo, readAll, startTcpServer } from '../helpers/tcp.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A connector for identities that do not resolve (`.invalid`, RFC 6761
 * §6.4): it alone knows which port each one is. Traffic that arrives
 * proves the path dialled through the connector seam; nothing else could
 * have reached the server.
 */
class MapConnector implements Connector {
  readonly identity: string;
  dials = 0;
  private readonly port: number;

  constructor(identity: string, port: number) {
    this.identity = identity;
    this.port = port;
  }

  connect(o: ConnectOptions, done: ConnectCallback): () => void {
    this.dials++;
    return new TcpConnector({ host: '127.0.0.1', port: this.port }, this.identity).connect(o, done);
  }
}

test('every dial goes through the target connector: HTTP/1.1 and h2c pools, health checks, WebSocket, L4', async (t) => {
  // HTTP/1.1 upstream that also speaks WebSocket, and answers its health check.
  const h1 = http.createServer((req, res) => res.end(`h1 ${req.url}`));
  const wss = new WebSocketServer({ server: h1 });
  wss.on('connection', (ws) => ws.on('message', (m) => ws.send(`ws ${String(m)}`)));
  const h2 = http2.createServer((req, res) => res.end(`h2 ${req.url}`));
  const tcp = await startTcpServer(echo);
  await new Promise<void>((r) => h1.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
  const connectors = new Map<string, MapConnector>([
    ['h1.invalid:80', new MapConnector('h1.invalid:80', (h1.address() as AddressInfo).port)],
    ['h2.invalid:80', new MapConnector('h2.invalid:80', (h2.address() as AddressInfo).port)],
    ['echo.invalid:7', new MapConnector('echo.invalid:7', tcp.port)],
  ]);
  const gateway = new Gateway(createLogger('silent'));
  gateway.targets.connectorFor = (identity) => connectors.get(identity)!;
  const loaded = validateConfig({
    listeners: [
      { name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false },
      { name: 't', protocol: 'tcp', listen: '127.0.0.1:0', upstream: 'echo', accessLog: false },
    ],
    upstreams: [
      {
        name: 'h1',
        targets: [{ address: 'h1.invalid:80' }],
        healthCheck: { active: { path: '/healthz', interval: '50ms', timeout: '1s', healthyThreshold: 1, unhealthyThreshold: 1 } },
      },
      { name: 'h2', protocol: 'h2c', targets: [{ address: 'h2.invalid:80' }] },
      { name: 'echo', targets: [{ address: 'echo.invalid:7' }], healthCheck: { active: { type: 'tcp', interval: '50ms', timeout: '1s' } } },
    ],
    routes: [
      { name: 'h2', listener: 'web', match: { pathPrefix: '/h2' }, upstream: 'h2' },
      { name: 'h1', listener: 'web', upstream: 'h1' },
    ],
  });
  assert.ok(loaded.ok);
  assert.equal((await gateway.apply(loaded.config)).ok, true);
  t.after(async () => {
    await gateway.stop(1000);
    wss.close();
    h1.closeAllConnections();
    await new Promise<void>((r) => h1.close(() => r()));
    await new Promise<void>((r) => h2.close(() => r()));
    await tcp.close();
  });
  const web = `http://${formatHostPort(gateway.listenerAddress('web')!)}`;

  // Health checks: both targets stay healthy only because their checks reach them through the connector.
  const before = connectors.get('h1.invalid:80')!.dials;
  await waitFor(() => connectors.get('h1.invalid:80')!.dials >= before + 3 && connectors.get('echo.invalid:7')!.dials >= 3, 'checks dialled through the connector');
  const health = (name: string) => gateway.current.upstreams.get(name)!.health().targets[0]!;
  assert.equal(health('h1').active, 'healthy');
  assert.equal(health('echo').active, 'healthy');

  const one = await send(web, { path: '/one' });
  assert.equal(one.status, 200);
  assert.equal(one.body, 'h1 /one');
  const two = await send(web, { path: '/h2/two' });
  assert.equal(two.status, 200);
  assert.equal(two.body, 'h2 /h2/two');
  assert.ok(connectors.get('h2.invalid:80')!.dials >= 1);

  const ws = new WebSocket(`${web.replace('http', 'ws')}/ws`);
  const reply = await new Promise<string>((resolve, reject) => {
    ws.once('open', () => ws.send('hi'));
    ws.once('message', (m) => resolve(String(m)));
    ws.once('error', reject);
  });
  assert.equal(reply, 'ws hi');
  ws.close();

  const c = await connect(gateway.listenerAddress('t')!.port);
  const got = readAll(c);
  c.end('over tcp');
  assert.equal((await got).toString(), 'over tcp');
});
