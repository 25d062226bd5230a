import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway } from '../helpers/gateway.js';
import { callError, echoMethods, grpcClient, startGrpcServer, unaryCall } from '../helpers/grpc.js';
import { waitFor } from '../helpers/wait.js';

test('the access log carries each call\'s gRPC status: the upstream\'s, or the gateway\'s own', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'portico-grpc-log-')), 'access.log');
  const server = await startGrpcServer({ name: 'logged' });
  const gw = await startGateway({
    listeners: [{ name: 'grpc', protocol: 'http', listen: '127.0.0.1:0', accessLog: { path: file } }],
    upstreams: [{ name: 'echo', protocol: 'h2c', targets: [{ address: server.address }] }],
    routes: [{ name: 'echo', listener: 'grpc', match: { pathPrefix: '/echo.Echo/' }, upstream: 'echo' }],
  });
  const client = grpcClient(gw.url('grpc').replace('http://', ''));
  t.after(async () => {
    client.close();
    await gw.close();
    await server.close();
  });
  const echo = echoMethods();
  await unaryCall(client, echo.UnaryEcho, { message: 'ok' });
  const failed = await callError(unaryCall(client, echo.UnaryEcho, { message: 'x' }, { metadata: { 'x-fail': '5' } }));
  assert.equal(failed.code, 5);
  const unrouted = await callError(unaryCall(client, { ...echo.UnaryEcho, path: '/other.Service/Call' }, { message: 'x' }));
  assert.equal(unrouted.code, 12);
  const lines = await waitFor(() => {
    const l = existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : [];
    return l.length === 3 ? l.map((x) => JSON.parse(x) as Record<string, unknown>) : undefined;
  }, 'three access-log lines', 5000);
  assert.deepEqual(lines.map((l) => l.grpcStatus), [0, 5, 12]);
  assert.deepEqual(lines.map((l) => l.status), [200, 200, 200]);
  assert.equal(lines[2]!.error, 'ROUTE_NOT_FOUND');
});
