import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { ERROR_CODES, GatewayError, type ErrorCode } from '../../src/errors.js';
import { grpcMetadata } from '../../src/http/grpc/metadata.js';
import {
  decodeGrpcMessage,
  encodeGrpcMessage,
  fromHttpStatus,
  GRPC_STATUS_NAMES,
  GrpcStatus,
  grpcStatusFor,
} from '../../src/http/grpc/status.js';
import { writeGrpcError } from '../../src/http/grpc/write-error.js';
import { formatGrpcTimeout, MAX_GRPC_TIMEOUT_MS, parseGrpcTimeout } from '../../src/http/grpc/timeout.js';
import { RequestContext, type ListenerRuntime } from '../../src/snapshot/snapshot.js';
import { decodeHealthResponse, encodeHealthRequest } from '../../src/upstream/grpc-health-probe.js';

describe('grpc-timeout', () => {
  it('parses every unit into milliseconds', () => {
    assert.equal(parseGrpcTimeout('1H'), 3_600_000);
    assert.equal(parseGrpcTimeout('2M'), 120_000);
    assert.equal(parseGrpcTimeout('3S'), 3000);
    assert.equal(parseGrpcTimeout('300m'), 300);
    assert.equal(parseGrpcTimeout('1500u'), 2, 'rounded up to a whole ms');
    assert.equal(parseGrpcTimeout('1000u'), 1);
    assert.equal(parseGrpcTimeout('2000000n'), 2);
    assert.equal(parseGrpcTimeout('99999999m'), 99_999_999);
    assert.equal(parseGrpcTimeout('00000005S'), 5000, 'leading zeros count toward the 8 digits');
  });

  it('a zero or sub-millisecond timeout is 1 ms (0 would read as "no deadline")', () => {
    assert.equal(parseGrpcTimeout('0S'), 1);
    assert.equal(parseGrpcTimeout('0n'), 1);
    assert.equal(parseGrpcTimeout('1n'), 1);
    assert.equal(parseGrpcTimeout('999u'), 1);
  });

  it('clamps to the longest timer Node can set', () => {
    assert.equal(parseGrpcTimeout('99999999H'), MAX_GRPC_TIMEOUT_MS);
    assert.equal(parseGrpcTimeout('596H'), 596 * 3_600_000);
    assert.equal(parseGrpcTimeout('597H'), MAX_GRPC_TIMEOUT_MS);
  });

  it('rejects what the grammar does not allow', () => {
    for (const v of ['', 'S', '10', '123456789m', '1s', '1h', '1 S', ' 1S', '1S ', '-1S', '+1S', '1.5S', '0x10m', '1SS', '１S', '10ms']) {
      assert.equal(parseGrpcTimeout(v), undefined, JSON.stringify(v));
    }
  });

  it('formats with the finest unit that fits in 8 digits, rounding up', () => {
    assert.equal(formatGrpcTimeout(0), '0n');
    assert.equal(formatGrpcTimeout(-5), '0n');
    assert.equal(formatGrpcTimeout(Number.NaN), '0n');
    assert.equal(formatGrpcTimeout(0.5), '500000n');
    assert.equal(formatGrpcTimeout(2), '2000000n');
    assert.equal(formatGrpcTimeout(1.1), '1100000n', 'no floating-point noise');
    assert.equal(formatGrpcTimeout(300), '300000u');
    assert.equal(formatGrpcTimeout(99_999), '99999000u');
    assert.equal(formatGrpcTimeout(100_000), '100000m');
    assert.equal(formatGrpcTimeout(99_999_999), '99999999m');
    assert.equal(formatGrpcTimeout(100_000_000), '100000S');
    assert.equal(formatGrpcTimeout(100_000_500), '100001S', 'rounded up, never shorter');
    assert.equal(formatGrpcTimeout(MAX_GRPC_TIMEOUT_MS), '2147484S');
    assert.equal(formatGrpcTimeout(1e20), '99999999H');
  });

  it('format then parse gives back at least the same time', () => {
    for (const ms of [1, 7, 250, 1000, 59_999, 3_600_000, 123_456_789, MAX_GRPC_TIMEOUT_MS]) {
      const back = parseGrpcTimeout(formatGrpcTimeout(ms))!;
      assert.ok(back >= ms && back - ms < Math.max(1, ms / 1e7) + 1000, `${ms} → ${formatGrpcTimeout(ms)} → ${back}`);
    }
  });
});

describe('gRPC statuses', () => {
  it('names and numbers follow the gRPC status code table', () => {
    assert.equal(GrpcStatus.OK, 0);
    assert.equal(GrpcStatus.DEADLINE_EXCEEDED, 4);
    assert.equal(GrpcStatus.UNAVAILABLE, 14);
    assert.equal(GrpcStatus.UNAUTHENTICATED, 16);
    assert.equal(GRPC_STATUS_NAMES.length, 17);
    for (const [name, code] of Object.entries(GrpcStatus)) assert.equal(GRPC_STATUS_NAMES[code], name);
  });

  it('maps every gateway error code', () => {
    const expected: Record<string, number> = {
      BAD_REQUEST: 13,
      BAD_FRAMING: 13,
      HTTP_VERSION_NOT_SUPPORTED: 13,
      METHOD_NOT_ALLOWED: 13,
      UNSUPPORTED_TRANSFER_CODING: 13,
      REQUEST_TIMEOUT: 4,
      HEADERS_TOO_LARGE: 8,
      UNAUTHORIZED: 16,
      FORBIDDEN: 7,
      RATE_LIMITED: 8,
      QUOTA_EXCEEDED: 8,
      CIRCUIT_OPEN: 14,
      FAULT_INJECTED: 2, // by its status: 500 → UNKNOWN
      ROUTE_NOT_FOUND: 12,
      PAYLOAD_TOO_LARGE: 8,
      NO_TARGET: 14,
      UPSTREAM_CONNECT_REFUSED: 14,
      UPSTREAM_RESET: 14,
      UPSTREAM_PROTOCOL_ERROR: 13,
      UPSTREAM_TLS_ERROR: 14,
      UPSTREAM_CONNECT_TIMEOUT: 14,
      UPSTREAM_RESPONSE_TIMEOUT: 4,
      DEADLINE_EXCEEDED: 4,
      DOWNSTREAM_ABORTED: 1,
      INTERNAL: 13,
      // Connection-level (L4) codes: never sent to a gRPC client, mapped to their nearest meaning.
      CONNECTION_LIMIT: 8,
      CONNECTION_LIMIT_PER_IP: 8,
      SESSION_LIMIT: 8,
      PROXY_PROTOCOL_ERROR: 13,
      DOWNSTREAM_TLS_ERROR: 16,
      BAD_CLIENT_HELLO: 13,
      HANDSHAKE_TIMEOUT: 4,
      BAD_SEALED_LINE: 13,
      SEALED_ADDRESS_INVALID: 16,
      SEALED_ADDRESS_EXPIRED: 16,
      DESTINATION_DENIED: 7,
      UPSTREAM_NOT_FOUND: 14,
      GATEWAY_CLOSING: 14,
      PROXY_AUTH_REQUIRED: 16,
      DESTINATION_UNRESOLVED: 14,
      DESTINATION_RESOLVE_TIMEOUT: 14,
    };
    for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) {
      assert.ok(code in expected, `${code} has an expected gRPC status in this test`);
      assert.equal(grpcStatusFor(new GatewayError(code)), expected[code], code);
    }
  });

  it('an injected fault maps by its HTTP status (http-grpc-status-mapping.md)', () => {
    const fault = (status: number) => grpcStatusFor(new GatewayError('FAULT_INJECTED', undefined, { status }));
    assert.equal(fault(400), GrpcStatus.INTERNAL);
    assert.equal(fault(401), GrpcStatus.UNAUTHENTICATED);
    assert.equal(fault(403), GrpcStatus.PERMISSION_DENIED);
    assert.equal(fault(404), GrpcStatus.UNIMPLEMENTED);
    for (const s of [429, 502, 503, 504]) assert.equal(fault(s), GrpcStatus.UNAVAILABLE, String(s));
    for (const s of [409, 500, 501]) assert.equal(fault(s), GrpcStatus.UNKNOWN, String(s));
    assert.equal(fromHttpStatus(200), GrpcStatus.UNKNOWN);
  });

  it('grpc-message is percent-encoded UTF-8 and decodes back', () => {
    assert.equal(encodeGrpcMessage('no route matches this request'), 'no route matches this request');
    assert.equal(encodeGrpcMessage('100% sure'), '100%25 sure');
    assert.equal(encodeGrpcMessage('line\nbreak\t'), 'line%0Abreak%09');
    assert.equal(encodeGrpcMessage('café ☕'), 'caf%C3%A9 %E2%98%95');
    assert.equal(encodeGrpcMessage('~'), '~');
    for (const m of ['', 'plain', '100% sure', 'naïve résumé — 日本語 🚀', '%%%41', '\u0000\u007f']) {
      assert.equal(decodeGrpcMessage(encodeGrpcMessage(m)), m, JSON.stringify(m));
    }
    assert.equal(decodeGrpcMessage('bad %zz and %4'), 'bad %zz and %4', 'malformed escapes are kept');
    assert.equal(decodeGrpcMessage('%E2%98'), '\ufffd', 'invalid UTF-8 becomes U+FFFD');
  });
});

describe('grpcMetadata rules', () => {
  const ctxWith = (headers: string[]) => ({ upstreamHeaders: headers }) as unknown as RequestContext;

  it('is null without rules', () => {
    assert.equal(grpcMetadata(undefined), null);
    assert.equal(grpcMetadata({}), null);
    assert.equal(grpcMetadata({ set: {}, add: {}, remove: [] }), null);
  });

  it('removes, then sets (replacing every value), then adds; names compare case-insensitively', () => {
    const mw = grpcMetadata({ set: { 'x-gateway': 'portico', 'trace-bin': 'AAEC' }, add: { 'x-tag': 'b' }, remove: ['x-secret'] })!;
    assert.equal(mw.name, 'grpc-metadata');
    const ctx = ctxWith(['X-Gateway', 'client', 'x-tag', 'a', 'X-Secret', 's', 'x-gateway', 'again', 'x-keep', 'k', 'trace-bin', 'Zm9v']);
    mw.onRequest!(ctx);
    assert.deepEqual(ctx.upstreamHeaders, ['x-tag', 'a', 'x-keep', 'k', 'x-gateway', 'portico', 'trace-bin', 'AAEC', 'x-tag', 'b']);
  });

  it('add keeps existing values (a repeated key is a list in gRPC)', () => {
    const mw = grpcMetadata({ add: { 'x-list': 'two' } })!;
    const ctx = ctxWith(['x-list', 'one']);
    mw.onRequest!(ctx);
    assert.deepEqual(ctx.upstreamHeaders, ['x-list', 'one', 'x-list', 'two']);
  });

  it('the schema accepts metadata keys and rejects reserved keys and bad values', () => {
    const doc = (grpcMetadataBlock: unknown) => ({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:8080' }],
      upstreams: [{ name: 'u', protocol: 'h2c', targets: [{ address: '127.0.0.1:2003' }] }],
      routes: [{ name: 'r', listener: 'web', upstream: 'u', grpcMetadata: grpcMetadataBlock }],
    });
    const errors = (block: unknown) => {
      const r = validateConfig(doc(block), {});
      return r.ok ? [] : r.errors.map((e) => `${e.path}: ${e.message}`);
    };
    assert.deepEqual(errors({ set: { 'x-gateway': 'portico', 'trace-bin': 'AAEC/+==' }, add: { 'x.a_b-c': '1' }, remove: ['x-secret'] }), []);
    assert.match(errors({ set: { 'X-Upper': 'v' } })[0]!, /routes\[0\]\.grpcMetadata\.set\.X-Upper: must be a gRPC metadata key/);
    assert.match(errors({ set: { 'grpc-timeout': '1S' } })[0]!, /grpc-\* keys are reserved/);
    assert.match(errors({ remove: ['grpc-status'] })[0]!, /grpc\.metadata|grpc-\* keys are reserved/);
    for (const k of ['te', 'content-type', 'host', 'x-request-id', 'connection', 'transfer-encoding']) {
      assert.match(errors({ set: { [k]: 'v' } })[0] ?? 'accepted', /is managed by gRPC, HTTP or the gateway/, k);
    }
    assert.match(errors({ set: { ':path': '/x' } })[0]!, /must be a gRPC metadata key/);
    assert.match(errors({ set: { 'x-bin': 'not base64!' } })[0]!, /grpcMetadata\.set\.x-bin: must be base64/);
    assert.match(errors({ add: { 'x-text': 'caf\u00e9' } })[0]!, /grpcMetadata\.add\.x-text: must be printable ASCII/);
    assert.match(errors({ sett: {} })[0]!, /grpcMetadata/);
  });
});

describe('gRPC active health check config', () => {
  const doc = (active: unknown) => ({
    listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0' }],
    upstreams: [{ name: 'u', protocol: 'h2c', targets: [{ address: '127.0.0.1:2003' }], healthCheck: { active } }],
  });

  it('type grpc takes a service (default "" = the whole server) and an authority (host)', () => {
    const r = validateConfig(doc({ type: 'grpc' }), {});
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    assert.equal(r.config.upstreams[0]!.healthCheck!.active!.type, 'grpc');
    assert.equal(r.config.upstreams[0]!.healthCheck!.active!.service, '');
    const r2 = validateConfig(doc({ type: 'grpc', service: 'echo.Echo', host: 'echo.internal' }), {});
    assert.ok(r2.ok);
    assert.equal(r2.config.upstreams[0]!.healthCheck!.active!.service, 'echo.Echo');
  });

  it('refuses options of another type', () => {
    const errs = (active: unknown) => {
      const r = validateConfig(doc(active), {});
      return r.ok ? [] : r.errors.map((e) => `${e.path}: ${e.message}`);
    };
    assert.deepEqual(errs({ type: 'grpc', path: '/healthz' }), ['upstreams[0].healthCheck.active.path: applies only to type: http']);
    assert.deepEqual(errs({ type: 'grpc', expectStatus: 200 }), ['upstreams[0].healthCheck.active.expectStatus: applies only to type: http']);
    assert.deepEqual(errs({ type: 'http', service: 'x' }), ['upstreams[0].healthCheck.active.service: applies only to type: grpc']);
    assert.deepEqual(errs({ type: 'tcp', service: 'x' }), ['upstreams[0].healthCheck.active.service: applies only to type: grpc']);
    assert.deepEqual(errs({ type: 'grpc', service: 'has space' }), ['upstreams[0].healthCheck.active.service: must be a service name such as echo.Echo (no spaces)']);
    assert.deepEqual(errs({ type: 'udp' }), ['upstreams[0].healthCheck.active.type: must be http, tcp or grpc']);
  });
});

describe('gRPC health messages (hand-encoded protobuf)', () => {
  it('encodes HealthCheckRequest { service = 1 } in one length-prefixed message', () => {
    assert.deepEqual([...encodeHealthRequest('')], [0, 0, 0, 0, 0]);
    assert.deepEqual([...encodeHealthRequest('a.B')], [0, 0, 0, 0, 5, 0x0a, 3, 0x61, 0x2e, 0x42]);
    const long = encodeHealthRequest('s'.repeat(200));
    assert.equal(long.readUInt32BE(1), 203);
    assert.deepEqual([...long.subarray(5, 8)], [0x0a, 0xc8, 0x01], 'a two-byte varint length');
  });

  it('decodes HealthCheckResponse { status = 1 }, skipping unknown fields', () => {
    const frame = (bytes: number[]) => Buffer.concat([Buffer.from([0, 0, 0, 0, bytes.length]), Buffer.from(bytes)]);
    assert.equal(decodeHealthResponse(frame([0x08, 0x01])), 1);
    assert.equal(decodeHealthResponse(frame([0x08, 0x02])), 2);
    assert.equal(decodeHealthResponse(frame([])), 0, 'an empty message is UNKNOWN (the proto3 default)');
    // field 2 string "hi", field 3 fixed64, field 4 fixed32, then status.
    assert.equal(decodeHealthResponse(frame([0x12, 2, 0x68, 0x69, 0x19, 1, 2, 3, 4, 5, 6, 7, 8, 0x25, 1, 2, 3, 4, 0x08, 0x01])), 1);
    assert.equal(decodeHealthResponse(frame([0x08, 0x01, 0x08, 0x02])), 2, 'the last value of a field wins');
    assert.equal(decodeHealthResponse(Buffer.alloc(0)), 'no response message');
    assert.equal(decodeHealthResponse(Buffer.from([1, 0, 0, 0, 0])), 'compressed response message (none was accepted)');
    assert.equal(decodeHealthResponse(Buffer.from([0, 0, 0, 0, 9, 0x08])), 'malformed response message');
    assert.equal(decodeHealthResponse(frame([0x08])), 'malformed response message');
    assert.equal(decodeHealthResponse(frame([0x12, 5, 1])), 'malformed response message');
    assert.equal(decodeHealthResponse(frame([0x0b])), 'malformed response message', 'wire type 3 (groups) is refused');
  });
});

/**
 * writeGrpcError on real node:http2 (compatibility API) and node:http
 * servers: what goes on the wire, frame flags included.
 */
describe('writeGrpcError', () => {
  type Mode = (ctx: RequestContext, res: http2.Http2ServerResponse) => void;
  let mode: Mode = () => undefined;
  let h2: http2.Http2Server;
  let h1: http.Server;
  let h2port = 0;
  let h1port = 0;
  const listener = {} as ListenerRuntime;

  before(async () => {
    h2 = http2.createServer((req, res) => {
      const ctx = new RequestContext(req as never, res as never, listener, 'req-1', '127.0.0.1', true);
      ctx.grpc = true;
      mode(ctx, res);
    });
    h1 = http.createServer((req, res) => {
      const ctx = new RequestContext(req, res, listener, 'req-2', '127.0.0.1', false);
      ctx.grpc = true;
      mode(ctx, res as never);
    });
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => h1.listen(0, '127.0.0.1', r));
    h2port = (h2.address() as AddressInfo).port;
    h1port = (h1.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise<void>((r) => h2.close(() => r()));
    await new Promise<void>((r) => h1.close(() => r()));
  });

  interface Seen {
    headers: http2.IncomingHttpHeaders;
    headFlags: number;
    trailers: http2.IncomingHttpHeaders | null;
    data: number;
    rstCode: number;
  }

  async function call(fn: Mode, endRequest = true): Promise<Seen> {
    mode = fn;
    const session = http2.connect(`http://127.0.0.1:${h2port}`);
    try {
      return await new Promise<Seen>((resolve) => {
        const q = session.request({ ':method': 'POST', ':path': '/echo.Echo/UnaryEcho', 'content-type': 'application/grpc', te: 'trailers' });
        const seen: Seen = { headers: {}, headFlags: 0, trailers: null, data: 0, rstCode: 0 };
        q.on('response', (h, flags) => {
          seen.headers = h;
          seen.headFlags = flags;
        });
        q.on('trailers', (t) => (seen.trailers = t));
        q.on('data', (d: Buffer) => (seen.data += d.length));
        q.on('error', () => undefined);
        q.on('close', () => {
          seen.rstCode = q.rstCode ?? 0;
          resolve(seen);
        });
        if (endRequest) q.end();
        else q.write(Buffer.from([0, 0, 0, 0, 0]));
      });
    } finally {
      session.close();
    }
  }

  it('before the head: a Trailers-Only response, one HEADERS frame with END_STREAM', async () => {
    let ctxSeen: RequestContext | undefined;
    const seen = await call((ctx) => {
      ctxSeen = ctx;
      writeGrpcError(ctx, new GatewayError('NO_TARGET'));
    });
    assert.equal(seen.headFlags & http2.constants.NGHTTP2_FLAG_END_STREAM, http2.constants.NGHTTP2_FLAG_END_STREAM);
    assert.equal(seen.headers[':status'], 200);
    assert.equal(seen.headers['content-type'], 'application/grpc');
    assert.equal(seen.headers['grpc-status'], '14');
    assert.equal(seen.headers['grpc-message'], 'no upstream target available');
    assert.equal(seen.headers['x-request-id'], 'req-1');
    assert.equal(seen.trailers, null);
    assert.equal(seen.data, 0);
    assert.equal(ctxSeen!.status, 200);
    assert.equal(ctxSeen!.error!.code, 'NO_TARGET');
  });

  it('carries the error explanation headers as metadata and a percent-encoded UTF-8 message', async () => {
    const seen = await call((ctx) =>
      writeGrpcError(ctx, new GatewayError('RATE_LIMITED', 'limite dépassée: 100%', { headers: { 'Retry-After': '3', RateLimit: '"r";r=0;t=3' } })),
    );
    assert.equal(seen.headers['grpc-status'], '8');
    assert.equal(seen.headers['grpc-message'], 'limite d%C3%A9pass%C3%A9e: 100%25');
    assert.equal(seen.headers['retry-after'], '3');
    assert.equal(seen.headers.ratelimit, '"r";r=0;t=3');
  });

  it('answers while the request body is still arriving, and leaves no half-open stream', async () => {
    let closed = false;
    const seen = await call((ctx, res) => {
      res.on('close', () => (closed = true));
      writeGrpcError(ctx, new GatewayError('UNAUTHORIZED'));
    }, false);
    assert.equal(seen.headers['grpc-status'], '16');
    assert.ok(seen.headFlags & http2.constants.NGHTTP2_FLAG_END_STREAM);
    assert.equal(seen.rstCode, http2.constants.NGHTTP2_NO_ERROR, 'the request side is closed with RST_STREAM(NO_ERROR)');
    assert.equal(closed, true);
  });

  it('after the head: the status goes out as trailers', async () => {
    const seen = await call((ctx, res) => {
      res.writeHead(200, { 'content-type': 'application/grpc' });
      res.write(Buffer.from([0, 0, 0, 0, 0]));
      writeGrpcError(ctx, new GatewayError('UPSTREAM_RESPONSE_TIMEOUT'));
    });
    assert.equal(seen.headFlags & http2.constants.NGHTTP2_FLAG_END_STREAM, 0);
    assert.equal(seen.data, 5);
    assert.equal(seen.trailers!['grpc-status'], '4');
    assert.equal(seen.trailers!['grpc-message'], 'upstream response timed out');
    assert.equal(seen.rstCode, 0);
  });

  it('after the head, while the client is still sending: trailers, then RST_STREAM(NO_ERROR) closes the stream', async () => {
    let closed = false;
    const seen = await call((ctx, res) => {
      res.on('close', () => (closed = true));
      res.writeHead(200, { 'content-type': 'application/grpc' });
      res.write(Buffer.from([0, 0, 0, 0, 0]));
      setTimeout(() => writeGrpcError(ctx, new GatewayError('DEADLINE_EXCEEDED')), 20);
    }, false);
    assert.equal(seen.trailers!['grpc-status'], '4');
    assert.equal(seen.trailers!['grpc-message'], encodeGrpcMessage(new GatewayError('DEADLINE_EXCEEDED').message));
    assert.equal(seen.rstCode, http2.constants.NGHTTP2_NO_ERROR);
    assert.equal(closed, true);
  });

  it('after the head: an upstream stream reset resets the downstream stream with the same code', async () => {
    const seen = await call((ctx, res) => {
      res.writeHead(200, { 'content-type': 'application/grpc' });
      res.write(Buffer.from([0, 0, 0, 0, 0]));
      const reset = Object.assign(new Error('stream reset'), { rstCode: http2.constants.NGHTTP2_CANCEL });
      writeGrpcError(ctx, new GatewayError('UPSTREAM_RESET', undefined, { cause: reset }));
    });
    assert.equal(seen.trailers, null);
    assert.equal(seen.rstCode, http2.constants.NGHTTP2_CANCEL);
  });

  it('a client that left gets nothing; its stream is cancelled', async () => {
    let status = -1;
    const seen = await call((ctx) => {
      writeGrpcError(ctx, new GatewayError('DOWNSTREAM_ABORTED'));
      status = ctx.status;
    });
    assert.equal(seen.rstCode, http2.constants.NGHTTP2_CANCEL);
    assert.equal(status, 499);
  });

  it('on HTTP/1.1: the same fields as headers of an empty 200', async () => {
    mode = (ctx) => writeGrpcError(ctx, new GatewayError('ROUTE_NOT_FOUND'));
    const res = await fetch(`http://127.0.0.1:${h1port}/x.Y/Z`, { method: 'POST', headers: { 'content-type': 'application/grpc' }, body: '' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/grpc');
    assert.equal(res.headers.get('grpc-status'), '12');
    assert.equal(res.headers.get('grpc-message'), 'no route matches this request');
    assert.equal(res.headers.get('content-length'), '0');
    assert.equal(res.headers.get('x-request-id'), 'req-2');
    assert.equal(await res.text(), '');
  });
});
