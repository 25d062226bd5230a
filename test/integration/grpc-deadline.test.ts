import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { startGateway } from '../helpers/gateway.js';
import { echoMethods, encodeRequest, grpcFrame, rawGrpcCall, startRawGrpcServer } from '../helpers/grpc.js';
import { parseGrpcTimeout } from '../../src/http/grpc/timeout.js';

test('grpc-timeout goes upstream as the time left after the gateway\'s own delay', async (t) => {
  const seen: string[] = [];
  const server = await startRawGrpcServer((stream, headers) => {
    seen.push(String(headers['grpc-timeout']));
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end();
  });
  const gw = await startGateway({
    listeners: [{ name: 'grpc', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
    upstreams: [{ name: 'raw', protocol: 'h2c', targets: [{ address: server.address }] }],
    routes: [
      {
        name: 'slow',
        listener: 'grpc',
        upstream: 'raw',
        // 300 ms spent in the gateway before the call goes upstream.
        middlewares: [{ 'fault-injection': { delay: { percent: 100, duration: '300ms' } } }],
      },
    ],
  });
  const session = http2.connect(gw.url('grpc'));
  t.after(async () => {
    session.close();
    await gw.close();
    await server.close();
  });
  const call = rawGrpcCall(session, echoMethods().UnaryEcho.path, [grpcFrame(encodeRequest(echoMethods().UnaryEcho, { message: 'x' }))], { 'grpc-timeout': '2S' });
  const result = await call.done;
  assert.equal(result.trailers['grpc-status'], '0');
  assert.equal(seen.length, 1);
  const forwarded = parseGrpcTimeout(seen[0]!);
  assert.ok(forwarded !== undefined && forwarded <= 1750 && forwarded >= 1000, `forwarded grpc-timeout ${seen[0]} should be about 1700ms`);
});
