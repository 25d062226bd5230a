import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { createPki, type Pki } from '../helpers/certs.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import {
  bidiCall,
  callError,
  clientStreamCall,
  collect,
  decodeResponse,
  echoMethods,
  encodeRequest,
  grpcClient,
  grpcFrame,
  helloMethods,
  rawGrpcCall,
  serverStreamCall,
  startGrpcServer,
  startRawGrpcServer,
  toMetadata,
  unaryCall,
  type GrpcTestServer,
  type RawServer,
} from '../helpers/grpc.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The transparent gRPC proxy end to end: grpc-js clients → a Portico
 * listener (h2c on `protocol: http`, h2 on `protocol: https`) → h2c/h2
 * upstreams running real grpc-js servers (test/helpers/grpc.ts).
 */

const echo = echoMethods();
const hello = helloMethods();
const { status } = grpc;

/** host:port of a gateway listener (grpc-js takes no scheme). */
function hostPort(gw: TestGateway, listener = 'grpc'): string {
  return gw.url(listener).replace(/^https?:\/\//, '');
}

function inflight(gw: TestGateway): number {
  const s = gw.gateway.status() as { upstreams: { targets: { inflight: number }[] }[] };
  return s.upstreams.reduce((n, u) => n + u.targets.reduce((m, t) => m + t.inflight, 0), 0);
}

describe('gRPC through the gateway (h2c listener, h2c upstreams)', () => {
  let a: GrpcTestServer; // echo + hello
  let b: GrpcTestServer; // pair
  let c: GrpcTestServer; // pair
  let blue: GrpcTestServer; // by metadata
  let raw: RawServer;
  let gw: TestGateway;
  let client: grpc.Client;
  const clients: grpc.Client[] = [];
  const open = (authority?: string) => {
    const cl = grpcClient(hostPort(gw), authority === undefined ? {} : { authority });
    clients.push(cl);
    return cl;
  };

  before(async () => {
    a = await startGrpcServer({ name: 'a' });
    b = await startGrpcServer({ name: 'b' });
    c = await startGrpcServer({ name: 'c' });
    blue = await startGrpcServer({ name: 'blue' });
    raw = await startRawGrpcServer((stream, headers) => {
      // /raw.Raw/Reset: one message, then RST_STREAM with the code in x-rst-code.
      const code = Number(headers['x-rst-code'] ?? http2.constants.NGHTTP2_CANCEL);
      // waitForTrailers: close(code) then sends only RST_STREAM (else Node ends the stream with END_STREAM first).
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.write(grpcFrame(encodeRequest(echo.UnaryEcho, { message: 'before the reset' })));
      // /raw.Raw/Die: the whole connection goes away instead (no RST_STREAM, no GOAWAY).
      if (headers[':path'] === '/raw.Raw/Die') setTimeout(() => stream.session?.destroy(), 50);
      else setTimeout(() => stream.close(code), 50);
    });
    gw = await startGateway({
      listeners: [{ name: 'grpc', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [
        { name: 'echo-grpc', protocol: 'h2c', targets: [{ address: a.address }] },
        { name: 'pair', protocol: 'h2c', balancer: 'round-robin', targets: [{ address: b.address }, { address: c.address }] },
        { name: 'blue', protocol: 'h2c', targets: [{ address: blue.address }] },
        { name: 'drained', protocol: 'h2c', targets: [{ address: a.address, weight: 0 }] },
        { name: 'raw', protocol: 'h2c', targets: [{ address: raw.address }] },
      ],
      routes: [
        {
          name: 'echo',
          listener: 'grpc',
          match: { pathPrefix: '/echo.Echo/' },
          upstream: 'echo-grpc',
          grpcMetadata: { set: { 'x-gateway': 'portico' }, add: { 'x-added': 'one' }, remove: ['x-secret'] },
        },
        { name: 'hello', listener: 'grpc', match: { pathPrefix: '/helloworld.HelloWorld/' }, upstream: 'echo-grpc' },
        { name: 'by-authority', listener: 'grpc', priority: 10, match: { host: 'pair.example.com', pathPrefix: '/echo.Echo/' }, upstream: 'pair' },
        { name: 'by-metadata', listener: 'grpc', priority: 10, match: { pathPrefix: '/echo.Echo/', headers: { 'x-tenant': 'blue' } }, upstream: 'blue' },
        { name: 'no-target', listener: 'grpc', priority: 10, match: { host: 'drained.example.com' }, upstream: 'drained' },
        { name: 'keyed', listener: 'grpc', priority: 10, match: { host: 'keyed.example.com' }, upstream: 'echo-grpc', middlewares: [{ 'key-auth': {} }] },
        { name: 'limited', listener: 'grpc', priority: 10, match: { host: 'limited.example.com' }, upstream: 'echo-grpc', middlewares: [{ 'rate-limit': { rate: 0.001, burst: 1 } }] },
        { name: 'raw', listener: 'grpc', match: { pathPrefix: '/raw.Raw/' }, upstream: 'raw' },
      ],
      consumers: [{ id: 'app', keys: ['the-right-key-0123456789'] }],
    });
    client = open();
  });

  after(async () => {
    for (const cl of clients) cl.close();
    await gw.close();
    await Promise.all([a.close(), b.close(), c.close(), blue.close(), raw.close()]);
  });

  test('Echo: all four kinds of call', async () => {
    const u = await unaryCall(client, echo.UnaryEcho, { message: 'hi' });
    assert.deepEqual(u.responses, [{ message: 'hi' }]);
    const ss = await serverStreamCall(client, echo.ServerStreamingEcho, { message: 'tick' });
    assert.deepEqual(ss.responses.map((r) => r.message), ['tick #0', 'tick #1', 'tick #2']);
    const cs = await clientStreamCall(client, echo.ClientStreamingEcho, [{ message: 'a' }, { message: 'b' }, { message: 'c' }]);
    assert.deepEqual(cs.responses, [{ message: 'abc' }]);
    const bi = await bidiCall(client, echo.BidirectionalStreamingEcho, [{ message: 'x' }, { message: 'y' }]);
    assert.deepEqual(bi.responses.map((r) => r.message), ['x', 'y']);
    for (const path of ['UnaryEcho', 'ServerStreamingEcho', 'ClientStreamingEcho', 'BidirectionalStreamingEcho']) {
      assert.equal(a.callsTo(`/echo.Echo/${path}`).length >= 1, true, path);
    }
  });

  test('HelloWorld: all four kinds of call', async () => {
    assert.deepEqual((await unaryCall(client, hello.SayHelloWorld, { name: 'Ada' })).responses, [{ message: 'Hello Ada' }]);
    const list = await serverStreamCall(client, hello.ListHello, { name: 'Bob' }, { metadata: { 'x-stream-count': '5' } });
    assert.deepEqual(list.responses.map((r) => r.message), [0, 1, 2, 3, 4].map((i) => `Hello Bob #${i}`));
    const more = await clientStreamCall(client, hello.SayMoreHello, [{ name: 'a' }, { name: 'b' }]);
    assert.deepEqual(more.responses, [{ message: 'Hello a, b' }]);
    const chat = await bidiCall(client, hello.SayHelloChat, [{ name: 'x' }, { name: 'y' }, { name: 'z' }]);
    assert.deepEqual(chat.responses.map((r) => r.message), ['Hello x', 'Hello y', 'Hello z']);
  });

  test('metadata both ways, repeated keys and -bin keys included', async () => {
    const bin = Buffer.from([0, 1, 2, 0xfe, 0xff]);
    const bin2 = Buffer.from('second ✓');
    const r = await unaryCall(client, hello.SayHelloWorld, { name: 'md' }, { metadata: { 'x-custom': 'value', 'x-list': ['1', '2'], 'x-data-bin': [bin, bin2] } });
    const seen = a.calls.at(-1)!;
    assert.equal(seen.path, '/helloworld.HelloWorld/SayHelloWorld');
    assert.deepEqual(seen.metadata.get('x-custom'), ['value']);
    // Both fields arrive; grpc-js (Node's header object) joins repeated text values with ", ", as it does without a gateway.
    assert.deepEqual(seen.metadata.get('x-list'), ['1, 2']);
    assert.deepEqual(seen.metadata.get('x-data-bin'), [bin, bin2]);
    assert.ok(seen.metadata.get('x-request-id')[0], 'the gateway tags the call with x-request-id');
    for (const md of [r.headers, r.trailers]) {
      assert.deepEqual(md.get('x-custom'), ['value']);
      assert.deepEqual(md.get('x-list'), ['1, 2']);
      assert.deepEqual(md.get('x-data-bin'), [bin, bin2]);
      assert.deepEqual(md.get('x-server'), ['a']);
    }
    assert.ok(r.headers.get('x-request-id')[0], 'x-request-id in the response headers');
  });

  test('a failing call: status, UTF-8 message and trailers are forwarded exactly', async () => {
    const message = 'introuvable: ünïcödé ☃ 100% — 見つかりません';
    const err = await callError(
      unaryCall(client, echo.UnaryEcho, { message: 'x' }, { metadata: { 'x-fail': String(status.NOT_FOUND), 'x-fail-message-bin': Buffer.from(message), 'x-extra': 'e' } }),
    );
    assert.equal(err.code, status.NOT_FOUND);
    assert.equal(err.details, message);
    assert.deepEqual(err.metadata.get('x-extra'), ['e']);
    assert.deepEqual(err.metadata.get('x-server'), ['a']);

    // A stream that fails after two messages: both arrive, then the status.
    const s = await callError(
      serverStreamCall(client, echo.ServerStreamingEcho, { message: 'm' }, { metadata: { 'x-fail': String(status.FAILED_PRECONDITION), 'x-fail-after': '2', 'x-fail-message': 'not now' } }),
    );
    assert.equal(s.code, status.FAILED_PRECONDITION);
    assert.equal(s.details, 'not now');
    assert.deepEqual((s.responses as { message: string }[]).map((m) => m.message), ['m #0', 'm #1']);
  });

  test('grpcMetadata: set, add and remove are applied on the way upstream', async () => {
    await unaryCall(client, echo.UnaryEcho, { message: 'md' }, { metadata: { 'x-gateway': 'client-value', 'x-added': 'zero', 'x-secret': 's3cret' } });
    const md = a.calls.at(-1)!.metadata;
    assert.deepEqual(md.get('x-gateway'), ['portico'], 'set replaces');
    assert.deepEqual(md.get('x-added'), ['zero, one'], 'add appends (grpc-js joins repeated text values)');
    assert.deepEqual(md.get('x-secret'), [], 'remove deletes');
    // Routes without the rule leave metadata alone.
    await unaryCall(client, hello.SayHelloWorld, { name: 'n' }, { metadata: { 'x-secret': 's3cret' } });
    assert.deepEqual(a.calls.at(-1)!.metadata.get('x-secret'), ['s3cret']);
    assert.deepEqual(a.calls.at(-1)!.metadata.get('x-gateway'), []);
  });

  test('routing by path prefix, by :authority (match.host) and by metadata (match.headers)', async () => {
    const r1 = await unaryCall(client, echo.UnaryEcho, { message: 'p' });
    assert.deepEqual(r1.headers.get('x-server'), ['a']);
    const pairClient = open('pair.example.com');
    const r2 = await unaryCall(pairClient, echo.UnaryEcho, { message: 'p' });
    assert.match(String(r2.headers.get('x-server')[0]), /^[bc]$/);
    assert.equal([...b.calls, ...c.calls].at(-1)!.host, 'pair.example.com', ':authority is preserved');
    const r3 = await unaryCall(client, echo.UnaryEcho, { message: 'p' }, { metadata: { 'x-tenant': 'blue' } });
    assert.deepEqual(r3.headers.get('x-server'), ['blue']);
    const r4 = await unaryCall(client, echo.UnaryEcho, { message: 'p' }, { metadata: { 'x-tenant': 'green' } });
    assert.deepEqual(r4.headers.get('x-server'), ['a']);
  });

  test('per-call balancing: many calls on ONE client channel reach both targets', async () => {
    const pairClient = open('pair.example.com');
    const before = { b: b.calls.length, c: c.calls.length };
    for (let i = 0; i < 20; i++) await unaryCall(pairClient, echo.UnaryEcho, { message: `n${i}` });
    const got = { b: b.calls.length - before.b, c: c.calls.length - before.c };
    assert.equal(got.b + got.c, 20);
    assert.deepEqual(got, { b: 10, c: 10 }, 'round-robin per call, not per connection');
  });

  test('grpc-timeout: a hanging server, a 300ms client deadline → DEADLINE_EXCEEDED, and the upstream call is cancelled', async () => {
    const started = Date.now();
    const err = await callError(unaryCall(client, echo.UnaryEcho, { message: 'slow' }, { metadata: { 'x-hang': '1' }, deadlineMs: 300 }));
    assert.equal(err.code, status.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - started < 3000);
    const call = a.calls.at(-1)!;
    assert.ok(Number.isFinite(call.deadline) && call.deadline <= started + 400, 'the deadline went upstream as grpc-timeout');
    await waitFor(() => call.cancelled, 'the upstream call to be cancelled');
  });

  test('grpc-timeout is enforced by the gateway itself (a client that does not enforce it)', async () => {
    const session = http2.connect(gw.url('grpc'));
    try {
      const before = a.calls.length;
      const call = rawGrpcCall(session, '/echo.Echo/UnaryEcho', [encodeRequest(echo.UnaryEcho, { message: 'x' })], { 'grpc-timeout': '300m', 'x-hang': '1' });
      const r = await call.done;
      assert.equal(r.headers[':status'], 200);
      assert.equal(r.trailers['grpc-status'], String(status.DEADLINE_EXCEEDED), JSON.stringify(r));
      assert.ok(r.elapsedMs >= 250 && r.elapsedMs < 3000, `answered after ${r.elapsedMs}ms`);
      const up = a.calls[before]!;
      await waitFor(() => up.cancelled, 'the upstream call to be cancelled');
      await waitFor(() => inflight(gw) === 0, 'no call left in flight');
    } finally {
      session.close();
    }
  });

  test('a client cancel reaches the server', async () => {
    const before = a.calls.length;
    const call = client.makeServerStreamRequest(echo.ServerStreamingEcho.path, echo.ServerStreamingEcho.requestSerialize, echo.ServerStreamingEcho.responseDeserialize, { message: 'c' }, toMetadata({ 'x-hang': '1' }));
    const done = collect(call).catch((e: grpc.ServiceError) => e);
    await waitFor(() => a.calls.length > before, 'the call to reach the server');
    call.cancel();
    const err = (await done) as grpc.ServiceError;
    assert.equal(err.code, status.CANCELLED);
    await waitFor(() => a.calls[before]!.cancelled, 'the server call to be cancelled');
    await waitFor(() => inflight(gw) === 0, 'no call left in flight');
  });

  test('a server reset (RST_STREAM) reaches the client with the same code', async () => {
    const m = { ...echo.ServerStreamingEcho, path: '/raw.Raw/Reset' };
    const err = await callError(serverStreamCall(client, m, { message: 'r' }));
    assert.equal(err.code, status.CANCELLED, err.details);
    assert.deepEqual((err.responses as { message: string }[]).map((x) => x.message), ['before the reset']);

    const session = http2.connect(gw.url('grpc'));
    try {
      for (const code of [http2.constants.NGHTTP2_CANCEL, http2.constants.NGHTTP2_REFUSED_STREAM]) {
        const r = await rawGrpcCall(session, '/raw.Raw/Reset', [encodeRequest(m, { message: 'r' })], { 'x-rst-code': String(code) }).done;
        assert.equal(r.rstCode, code, `RST_STREAM code ${code} forwarded`);
        assert.equal(r.messages.length, 1);
        assert.equal(decodeResponse(m, r.messages[0]!).message, 'before the reset');
      }
    } finally {
      session.close();
    }
  });

  test('an upstream connection lost mid-stream: UNAVAILABLE after what was forwarded (not a reset the client did not ask for)', async () => {
    const m = { ...echo.ServerStreamingEcho, path: '/raw.Raw/Die' };
    const err = await callError(serverStreamCall(client, m, { message: 'd' }));
    assert.deepEqual((err.responses as { message: string }[]).map((x) => x.message), ['before the reset']);
    assert.equal(err.code, status.UNAVAILABLE, `${err.code} ${err.details}`);
  });

  test('a bidi call that never half-closes, with a deadline: DEADLINE_EXCEEDED and no stream left behind', async () => {
    // grpc-js client: its own deadline.
    const before = a.calls.length;
    const call = client.makeBidiStreamRequest(echo.BidirectionalStreamingEcho.path, echo.BidirectionalStreamingEcho.requestSerialize, echo.BidirectionalStreamingEcho.responseDeserialize, new grpc.Metadata(), { deadline: Date.now() + 300 });
    const done = collect(call).catch((e: grpc.ServiceError) => e);
    call.write({ message: 'one' });
    const err = (await done) as grpc.ServiceError;
    assert.equal(err.code, status.DEADLINE_EXCEEDED);
    await waitFor(() => a.calls[before]?.cancelled, 'the upstream bidi call to be cancelled');

    // A raw client that never ends its side and does not enforce the deadline: the gateway does.
    const session = http2.connect(gw.url('grpc'));
    try {
      const n = a.calls.length;
      const raw = rawGrpcCall(session, '/echo.Echo/BidirectionalStreamingEcho', [encodeRequest(echo.BidirectionalStreamingEcho, { message: 'one' })], { 'grpc-timeout': '300m' }, false);
      const r = await raw.done;
      assert.equal(r.messages.length, 1, 'the echo of the first message arrived');
      assert.equal(r.trailers['grpc-status'], String(status.DEADLINE_EXCEEDED));
      assert.ok(r.elapsedMs >= 250 && r.elapsedMs < 3000, `closed after ${r.elapsedMs}ms`);
      await waitFor(() => a.calls[n]?.cancelled, 'the upstream call to be cancelled');
      await waitFor(() => inflight(gw) === 0, 'no call left in flight');
    } finally {
      session.close();
    }
  });

  test('gateway errors as gRPC statuses: no target, auth, rate limit, no route', async () => {
    const drained = open('drained.example.com');
    let err = await callError(unaryCall(drained, echo.UnaryEcho, { message: 'x' }));
    assert.equal(err.code, status.UNAVAILABLE);
    assert.equal(err.details, 'no upstream target available');
    assert.ok(err.metadata.get('x-request-id')[0]);

    const keyed = open('keyed.example.com');
    err = await callError(unaryCall(keyed, echo.UnaryEcho, { message: 'x' }));
    assert.equal(err.code, status.UNAUTHENTICATED);
    err = await callError(unaryCall(keyed, echo.UnaryEcho, { message: 'x' }, { metadata: { 'x-api-key': 'wrong-key-wrong-key-0000' } }));
    assert.equal(err.code, status.UNAUTHENTICATED);
    const ok = await unaryCall(keyed, echo.UnaryEcho, { message: 'in' }, { metadata: { 'x-api-key': 'the-right-key-0123456789' } });
    assert.deepEqual(ok.responses, [{ message: 'in' }]);

    const limited = open('limited.example.com');
    await unaryCall(limited, echo.UnaryEcho, { message: 'first' });
    err = await callError(unaryCall(limited, echo.UnaryEcho, { message: 'second' }));
    assert.equal(err.code, status.RESOURCE_EXHAUSTED);
    assert.ok(err.metadata.get('retry-after')[0], 'Retry-After travels as metadata');

    err = await callError(unaryCall(client, { ...echo.UnaryEcho, path: '/nowhere.Service/Method' }, { message: 'x' }));
    assert.equal(err.code, status.UNIMPLEMENTED);
    assert.equal(err.details, 'no route matches this request');

    // A client-streaming call refused before its body is read: answered at once, no stream left.
    const n = a.calls.length;
    err = await callError(clientStreamCall(keyed, echo.ClientStreamingEcho, [{ message: 'a' }, { message: 'b' }]));
    assert.equal(err.code, status.UNAUTHENTICATED);
    assert.equal(a.calls.length, n, 'never reached the server');
  });
});

describe('gRPC flow control', () => {
  const MiB = 1024 * 1024;

  test('200 MiB streamed to a slow reader: backpressure end to end, gateway memory bounded', async (t) => {
    // Raw HTTP/2 on both sides: the upstream writes 1 MiB gRPC messages as fast as flow control lets it
    // (one preallocated Buffer, so the process's own allocations stay flat), the client reads slowly.
    const COUNT = 200;
    const payload = Buffer.alloc(MiB, 0x61);
    const frameHead = Buffer.from([0, 0, 0x10, 0, 0]); // uncompressed, length 1 MiB
    let sent = 0;
    const upstream = await startRawGrpcServer((stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      let i = 0;
      const pump = (): void => {
        while (i < COUNT && !stream.destroyed) {
          i++;
          stream.write(frameHead);
          sent += MiB + 5;
          if (!stream.write(payload)) return void stream.once('drain', pump);
        }
        if (!stream.destroyed) stream.end();
      };
      pump();
    });
    const gw = await startGateway({
      listeners: [{ name: 'grpc', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [{ name: 'big', protocol: 'h2c', targets: [{ address: upstream.address }] }],
      routes: [{ name: 'big', listener: 'grpc', upstream: 'big' }],
    });
    const session = http2.connect(gw.url('grpc'));
    t.after(async () => {
      session.close();
      await gw.close();
      await upstream.close();
    });
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    let maxAhead = 0;
    let received = 0;
    const stream = session.request({ ':method': 'POST', ':path': '/big.Big/Stream', 'content-type': 'application/grpc', te: 'trailers' });
    stream.end(grpcFrame(Buffer.alloc(0)));
    const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      let nextPause = MiB;
      let pauses = 0;
      stream.on('data', (chunk: Buffer) => {
        received += chunk.length;
        maxAhead = Math.max(maxAhead, sent - received);
        if (received < nextPause) return;
        nextPause += MiB;
        peak = Math.max(peak, process.memoryUsage().rss);
        // A slow reader: a pause per MiB (≈ 200 MiB/s), and a long one early on.
        stream.pause();
        setTimeout(() => stream.resume(), ++pauses === 10 ? 500 : 5);
      });
      // 'trailers' may come while the paused reader still holds data: done at 'end'.
      let trailers: http2.IncomingHttpHeaders = {};
      stream.on('trailers', (t) => (trailers = t));
      stream.on('end', () => resolve(trailers));
      stream.on('error', reject);
    });
    assert.equal(trailers['grpc-status'], '0');
    assert.equal(received, COUNT * (MiB + 5));
    const ahead = maxAhead / MiB;
    const growth = (peak - baseline) / MiB;
    t.diagnostic(`upstream ahead of the reader by at most ${ahead.toFixed(1)} MiB; RSS +${growth.toFixed(0)} MiB`);
    // What the upstream got ahead of the reader sits in HTTP/2 windows and socket buffers between them.
    assert.ok(ahead < 40, `the upstream ran ${ahead.toFixed(1)} MiB ahead of the reader`);
    assert.ok(growth < 100, `RSS grew by ${growth.toFixed(0)} MiB while 200 MiB went through`);
  });

  test('grpc-js: a server stream of 64 × 1 MiB to a slow grpc-js reader stays flow-controlled', async (t) => {
    const server = await startGrpcServer({ name: 'big' });
    const gw = await startGateway({
      listeners: [{ name: 'grpc', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [{ name: 'big', protocol: 'h2c', targets: [{ address: server.address }] }],
      routes: [{ name: 'big', listener: 'grpc', match: { pathPrefix: '/echo.Echo/' }, upstream: 'big' }],
    });
    const client = grpcClient(hostPort(gw), { channelOptions: { 'grpc.max_receive_message_length': 2 * MiB } });
    t.after(async () => {
      client.close();
      await gw.close();
      await server.close();
    });
    const COUNT = 64;
    let maxAhead = 0;
    const call = client.makeServerStreamRequest(
      echo.ServerStreamingEcho.path,
      echo.ServerStreamingEcho.requestSerialize,
      echo.ServerStreamingEcho.responseDeserialize,
      { message: 'big' },
      toMetadata({ 'x-stream-count': String(COUNT), 'x-stream-size': String(MiB) }),
    );
    let read = 0;
    await new Promise<void>((resolve, reject) => {
      call.on('data', (m: { message: string }) => {
        read++;
        assert.equal(m.message.length, MiB);
        maxAhead = Math.max(maxAhead, server.calls.at(-1)!.sent - read);
        call.pause();
        setTimeout(() => call.resume(), read === 10 ? 300 : 5);
      });
      call.on('error', reject);
      // The status may come before the paused reader took the last messages: wait for both.
      let pending = 2;
      call.on('end', () => --pending === 0 && resolve());
      call.on('status', (s: grpc.StatusObject) => (s.code === status.OK ? --pending === 0 && resolve() : reject(new Error(s.details))));
    });
    assert.equal(read, COUNT);
    t.diagnostic(`the server ran at most ${maxAhead} messages ahead of the reader`);
    assert.ok(maxAhead < 40, `the server ran ${maxAhead} MiB ahead of the reader`);
  });
});

describe('gRPC over TLS', () => {
  let pki: Pki;
  before(async () => {
    pki = await createPki();
  });
  after(async () => {
    await pki?.cleanup();
  });

  test('an mTLS upstream (protocol: h2, tls { ca, serverName, cert, key }): HelloWorld reachable through the gateway', async (t) => {
    const serverCert = await pki.issue('server.example.com');
    const clientCert = await pki.issue('portico-client', { client: true });
    const server = await startGrpcServer({ name: 'mtls', tls: { certPem: serverCert.certPem, keyPem: serverCert.keyPem, clientCaPem: pki.caPem } });
    const gw = await startGateway({
      listeners: [{ name: 'grpc', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [
        {
          name: 'hello-mtls',
          protocol: 'h2',
          tls: { ca: pki.caCert, serverName: 'server.example.com', cert: clientCert.cert, key: clientCert.key },
          targets: [{ address: server.address }],
        },
      ],
      routes: [{ name: 'hello', listener: 'grpc', match: { pathPrefix: '/helloworld.HelloWorld/' }, upstream: 'hello-mtls' }],
    });
    const client = grpcClient(hostPort(gw));
    t.after(async () => {
      client.close();
      await gw.close();
      await server.close();
    });
    assert.deepEqual((await unaryCall(client, hello.SayHelloWorld, { name: 'mTLS' })).responses, [{ message: 'Hello mTLS' }]);
    const list = await serverStreamCall(client, hello.ListHello, { name: 'L' });
    assert.deepEqual(list.responses.map((r) => r.message), ['Hello L #0', 'Hello L #1', 'Hello L #2']);
    const more = await clientStreamCall(client, hello.SayMoreHello, [{ name: 'a' }, { name: 'b' }]);
    assert.deepEqual(more.responses, [{ message: 'Hello a, b' }]);
    const chat = await bidiCall(client, hello.SayHelloChat, [{ name: 'c' }, { name: 'd' }]);
    assert.deepEqual(chat.responses.map((r) => r.message), ['Hello c', 'Hello d']);
    // The server really requires the client certificate: a direct call without one fails.
    const direct = grpcClient(server.address, { tls: { caPem: pki.caPem, serverName: 'server.example.com' } });
    t.after(() => direct.close());
    const refused = await callError(unaryCall(direct, hello.SayHelloWorld, { name: 'x' }, { deadlineMs: 5000 }));
    assert.equal(refused.code, status.UNAVAILABLE);
  });

  test('an https listener speaks h2 (ALPN) to gRPC clients', async (t) => {
    const gwCert = await pki.issue('gateway.example.com');
    const server = await startGrpcServer({ name: 'plain' });
    const gw = await startGateway({
      listeners: [{ name: 'grpcs', protocol: 'https', listen: '127.0.0.1:0', accessLog: false, tls: { certificates: [{ cert: gwCert.cert, key: gwCert.key }] } }],
      upstreams: [{ name: 'plain', protocol: 'h2c', targets: [{ address: server.address }] }],
      routes: [{ name: 'echo', listener: 'grpcs', match: { pathPrefix: '/echo.Echo/' }, upstream: 'plain' }],
    });
    const client = grpcClient(hostPort(gw, 'grpcs'), { tls: { caPem: pki.caPem, serverName: 'gateway.example.com' } });
    t.after(async () => {
      client.close();
      await gw.close();
      await server.close();
    });
    assert.deepEqual((await unaryCall(client, echo.UnaryEcho, { message: 'tls' })).responses, [{ message: 'tls' }]);
    const bi = await bidiCall(client, echo.BidirectionalStreamingEcho, [{ message: '1' }, { message: '2' }]);
    assert.deepEqual(bi.responses.map((r) => r.message), ['1', '2']);
    const err = await callError(unaryCall(client, echo.UnaryEcho, { message: 'x' }, { metadata: { 'x-fail': String(status.ALREADY_EXISTS), 'x-fail-message': 'dup' } }));
    assert.equal(err.code, status.ALREADY_EXISTS);
    assert.equal(err.details, 'dup');
  });

  // Last: until the h2 pool notices a TLS session refused after its handshake, this one can hang.
  test('an mTLS upstream that refuses the gateway (no client certificate): UNAVAILABLE, at once', async (t) => {
    const serverCert = await pki.issue('server.example.com');
    const server = await startGrpcServer({ name: 'mtls', tls: { certPem: serverCert.certPem, keyPem: serverCert.keyPem, clientCaPem: pki.caPem } });
    const gw = await startGateway({
      listeners: [{ name: 'grpc', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [{ name: 'no-cert', protocol: 'h2', tls: { ca: pki.caCert, serverName: 'server.example.com' }, targets: [{ address: server.address }] }],
      routes: [{ name: 'hello', listener: 'grpc', upstream: 'no-cert' }],
    });
    const client = grpcClient(hostPort(gw));
    t.after(async () => {
      client.close();
      await gw.close();
      await server.close();
    });
    const started = Date.now();
    // TLS 1.3: the server refuses the missing certificate after the client's handshake is done (an alert).
    const err = await callError(unaryCall(client, hello.SayHelloWorld, { name: 'x' }, { deadlineMs: 4000 }));
    assert.equal(err.code, status.UNAVAILABLE, `${err.code} ${err.details}`);
    assert.ok(Date.now() - started < 3000);
  });
});
