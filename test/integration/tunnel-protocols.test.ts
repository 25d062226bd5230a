import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { WebSocket, WebSocketServer } from 'ws';
import { formatHostPort } from '../../src/net/address.js';
import type { Agent } from '../../src/tunnel/agent/agent.js';
import type { Pki } from '../helpers/certs.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { bidiCall, callError, clientStreamCall, echoMethods, grpcClient, serverStreamCall, startGrpcServer, unaryCall, type GrpcTestServer } from '../helpers/grpc.js';
import { startAgent, tunnelListener, tunnelPki } from '../helpers/tunnel.js';
import { waitFor } from '../helpers/wait.js';

/**
 * gRPC and WebSocket over tunnel targets: a `{ tunnel: CODE }` upstream
 * with protocol h2c carries every kind of gRPC call to a grpc-js server
 * behind an agent (HTTP/2 inside one CONNECT stream of the agent's
 * HTTP/2 connection), a claimed host of a `type: grpc` service does the
 * same, and a WebSocket upgrade is tunnelled to a ws server behind one.
 */

const echo = echoMethods();
const { status } = grpc;

describe('tunnel: gRPC and WebSocket through tunnel targets', () => {
  let pki: Pki;
  let gw: { cert: string; key: string };
  let gateway: TestGateway;
  let server: GrpcTestServer;
  let wsOrigin: http.Server;
  let agent: Agent;
  const clients: grpc.Client[] = [];
  const client = (authority?: string) => {
    const c = grpcClient(gateway.url('web').replace('http://', ''), authority === undefined ? {} : { authority });
    clients.push(c);
    return c;
  };

  before(async () => {
    ({ pki, gw } = await tunnelPki());
    server = await startGrpcServer({ name: 'behind-agent' });
    wsOrigin = http.createServer((_req, res) => res.end('not a websocket'));
    const wss = new WebSocketServer({ server: wsOrigin });
    wss.on('connection', (ws, req) => ws.on('message', (data, binary) => ws.send(binary ? data : `echo ${String(data)} on ${req.url}`, { binary })));
    await new Promise<void>((r) => wsOrigin.listen(0, '127.0.0.1', r));
    gateway = await startGateway({
      listeners: [
        { name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false },
        tunnelListener(gw, {
          http: { listener: 'web', hosts: ['*.tunnel.test'] },
          agents: [{ id: 'office-1', token: 'office-1-token-0123456789', codes: ['device-*', 'chat'] }],
        }),
      ],
      upstreams: [
        { name: 'device', protocol: 'h2c', targets: [{ tunnel: 'device-42' }] },
        { name: 'nobody', protocol: 'h2c', targets: [{ tunnel: 'device-99' }] },
        { name: 'chat', targets: [{ tunnel: 'chat' }] },
      ],
      routes: [
        { name: 'device', listener: 'web', match: { host: 'device.example.com' }, upstream: 'device' },
        { name: 'nobody', listener: 'web', match: { host: 'nobody.example.com' }, upstream: 'nobody' },
        { name: 'chat', listener: 'web', match: { host: 'chat.example.com' }, upstream: 'chat' },
      ],
    });
    agent = await startAgent(formatHostPort(gateway.gateway.listenerAddress('tunnel')!), pki.caCert, [
      { code: 'device-42', local: server.address, type: 'grpc' },
      { code: 'device-43', local: server.address, type: 'grpc', hosts: ['grpc.tunnel.test'] },
      { code: 'chat', local: `127.0.0.1:${(wsOrigin.address() as AddressInfo).port}`, type: 'http' },
    ]);
    await waitFor(() => ['device-42', 'device-43', 'chat'].every((c) => gateway.gateway.tunnels.registrations(c).length === 1), 'every service registered');
    assert.equal(agent.refused.size, 0);
  });

  after(async () => {
    for (const c of clients) c.close();
    await agent?.stop();
    await gateway?.close();
    await server?.close();
    wsOrigin?.closeAllConnections();
    await new Promise((r) => wsOrigin?.close(r));
    await pki?.cleanup();
  });

  for (const [name, authority] of [
    ['a { tunnel: CODE } upstream with protocol h2c', 'device.example.com'],
    ['a claimed host of a type: grpc service', 'grpc.tunnel.test'],
  ] as const) {
    it(`gRPC through ${name}: unary, server streaming, client streaming, bidi`, async () => {
      const c = client(authority);
      const calls = server.calls.length;
      assert.deepEqual((await unaryCall(c, echo.UnaryEcho, { message: 'hi' })).responses, [{ message: 'hi' }]);
      const ss = await serverStreamCall(c, echo.ServerStreamingEcho, { message: 'tick' }, { metadata: { 'x-stream-count': '5' } });
      assert.deepEqual(ss.responses.map((r) => r.message), ['tick #0', 'tick #1', 'tick #2', 'tick #3', 'tick #4']);
      const cs = await clientStreamCall(c, echo.ClientStreamingEcho, [{ message: 'a' }, { message: 'b' }, { message: 'c' }]);
      assert.deepEqual(cs.responses, [{ message: 'abc' }]);
      const bi = await bidiCall(c, echo.BidirectionalStreamingEcho, [{ message: 'x' }, { message: 'y' }, { message: 'z' }]);
      assert.deepEqual(bi.responses.map((r) => r.message), ['x', 'y', 'z']);
      // The server behind the agent saw the four calls, with the client's :authority.
      const seen = server.calls.slice(calls);
      assert.deepEqual(seen.map((s) => s.path), ['/echo.Echo/UnaryEcho', '/echo.Echo/ServerStreamingEcho', '/echo.Echo/ClientStreamingEcho', '/echo.Echo/BidirectionalStreamingEcho']);
      assert.ok(seen.every((s) => s.host === authority), seen.map((s) => s.host).join());
      // A status from the server passes through unchanged.
      const failed = await callError(unaryCall(c, echo.UnaryEcho, { message: 'x' }, { metadata: { 'x-fail': String(status.NOT_FOUND), 'x-fail-message': 'nope' } }));
      assert.equal(failed.code, status.NOT_FOUND);
      assert.equal(failed.details, 'nope');
    });
  }

  it('gRPC to a code nobody registered: UNAVAILABLE', async () => {
    const err = await callError(unaryCall(client('nobody.example.com'), echo.UnaryEcho, { message: 'x' }));
    assert.equal(err.code, status.UNAVAILABLE, `${err.code} ${err.details}`);
  });

  it('a WebSocket through a { tunnel: CODE } target: text and binary echoed both ways', async () => {
    const url = `${gateway.url('web').replace('http', 'ws')}/room/1`;
    const ws = new WebSocket(url, { headers: { host: 'chat.example.com' } });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const next = () => new Promise<{ data: Buffer; binary: boolean }>((r) => ws.once('message', (data: Buffer, binary: boolean) => r({ data, binary })));
    let got = next();
    ws.send('hello');
    const text = await got;
    assert.equal(text.binary, false);
    assert.equal(text.data.toString(), 'echo hello on /room/1');
    const blob = Buffer.alloc(256 * 1024);
    for (let i = 0; i < blob.length; i++) blob[i] = (i * 7) % 256;
    got = next();
    ws.send(blob);
    const bin = await got;
    assert.equal(bin.binary, true);
    assert.ok(bin.data.equals(blob), 'the binary message came back whole');
    assert.equal(gateway.gateway.websocketSessions('web'), 1);
    const closed = new Promise<number>((r) => ws.once('close', (code: number) => r(code)));
    ws.close(1000);
    assert.equal(await closed, 1000);
    await waitFor(() => gateway.gateway.websocketSessions('web') === 0, 'the session over');
  });
});
