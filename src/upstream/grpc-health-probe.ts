import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { decodeGrpcMessage, GRPC_STATUS_NAMES } from '../http/grpc/status.js';
import { formatGrpcTimeout } from '../http/grpc/timeout.js';

/**
 * One active gRPC health check: a unary call to `grpc.health.v1.Health/Check`
 * (the gRPC Health Checking Protocol,
 * https://github.com/grpc/grpc/blob/master/doc/health-checking.md) on its
 * own short-lived HTTP/2 connection (h2c, or TLS with ALPN h2 when `tls`
 * is given), never a data-plane connection.
 *
 * The messages are encoded by hand (the protobuf wire format,
 * https://protobuf.dev/programming-guides/encoding/):
 *   message HealthCheckRequest  { string service = 1; }
 *   message HealthCheckResponse { ServingStatus status = 1; }  // UNKNOWN 0, SERVING 1, NOT_SERVING 2, SERVICE_UNKNOWN 3
 * each sent as one length-prefixed gRPC message (a compressed-flag byte,
 * then a 4-byte big-endian length).
 *
 * Healthy iff the response is HTTP 200 `application/grpc`, grpc-status 0
 * and the status is SERVING. The caller's own timer bounds the check
 * (`timeoutMs` is also sent as `grpc-timeout`, so the server can give up
 * too); `destroy()` aborts it, and `done` is called at most once.
 */
export interface GrpcProbeOptions {
  /** An open byte stream to the target (from its connector); the probe owns it from here. Absent: a TCP connection to host:port. */
  stream?: net.Socket;
  /** The target's host name or IP (the TLS certificate check, and SNI for a name). */
  host: string;
  port?: number;
  /** The service asked about; '' is the server as a whole. */
  service: string;
  timeoutMs: number;
  /** `:authority`; default host:port. */
  authority?: string;
  /** Connect over TLS (the upstream's client options: ca, servername, cert/key…); absent = h2c. */
  tls?: tls.ConnectionOptions;
}

export type ProbeDone = (ok: boolean, reason: string) => void;

/** Serving statuses by number (grpc.health.v1.HealthCheckResponse.ServingStatus). */
const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];
/** The largest response accepted: a HealthCheckResponse is a few bytes. */
const MAX_RESPONSE = 64 * 1024;

export function probeGrpcHealth(options: GrpcProbeOptions, done: ProbeDone): { destroy(): void } {
  const { host } = options;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  const authority = options.authority ?? `${hostPart}:${options.port ?? 0}`;
  const stream = options.stream ?? net.connect({ host, port: options.port ?? 0 });
  const scheme = options.tls === undefined ? 'http' : 'https';
  let settled = false;
  let session: http2.ClientHttp2Session | null = null;
  const finish = (ok: boolean, reason: string): void => {
    if (settled) return;
    settled = true;
    session?.destroy();
    stream.destroy();
    done(ok, reason);
  };
  try {
    const socket =
      options.tls === undefined
        ? stream
        : tls.connect({ servername: net.isIP(host) === 0 ? host : undefined, ...options.tls, host, socket: stream, ALPNProtocols: ['h2'] });
    socket.on('error', () => undefined);
    session = http2.connect(`${scheme}://${hostPart}`, { createConnection: () => socket });
  } catch (err) {
    finish(false, (err as Error).message);
    return { destroy: () => finish(false, 'aborted') };
  }
  session.on('error', (err: Error) => finish(false, reasonOf(err)));
  // A session that ends before an answer (GOAWAY, the socket closed).
  session.on('close', () => finish(false, 'connection closed before an answer'));

  const req = session.request({
    ':method': 'POST',
    ':scheme': scheme,
    ':path': '/grpc.health.v1.Health/Check',
    ':authority': authority,
    'content-type': 'application/grpc',
    te: 'trailers',
    'grpc-timeout': formatGrpcTimeout(options.timeoutMs),
    'user-agent': 'portico-health-check',
  });
  req.on('error', (err: Error) => finish(false, reasonOf(err)));

  let head: http2.IncomingHttpHeaders | null = null;
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('response', (headers) => {
    head = headers;
    const status = headers[':status'];
    if (status !== 200) return finish(false, `HTTP status ${status} (expected 200)`);
    const type = headers['content-type'];
    if (typeof type !== 'string' || !type.startsWith('application/grpc')) return finish(false, `content-type ${type ?? 'missing'} (expected application/grpc)`);
  });
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_RESPONSE) return finish(false, `response larger than ${MAX_RESPONSE} bytes`);
    chunks.push(chunk);
  });
  let trailers: http2.IncomingHttpHeaders | null = null;
  req.on('trailers', (t) => {
    trailers = t;
  });
  req.on('end', () => {
    if (head === null) return finish(false, 'no response');
    // Trailers-Only responses carry grpc-status in the head.
    const fields = trailers ?? head;
    const grpcStatus = Number(fields['grpc-status'] ?? NaN);
    if (!Number.isInteger(grpcStatus)) return finish(false, 'no grpc-status in the response');
    if (grpcStatus !== 0) {
      const msg = fields['grpc-message'];
      const name = GRPC_STATUS_NAMES[grpcStatus] ?? 'UNKNOWN';
      return finish(false, `grpc-status ${grpcStatus} ${name}${typeof msg === 'string' && msg !== '' ? `: ${decodeGrpcMessage(msg)}` : ''}`);
    }
    const status = decodeHealthResponse(Buffer.concat(chunks, size));
    if (typeof status === 'string') return finish(false, status);
    const name = SERVING_STATUS[status] ?? `status ${status}`;
    finish(status === 1, name);
  });
  req.end(encodeHealthRequest(options.service));
  return { destroy: () => finish(false, 'aborted') };
}

/**
 * A short reason for a failed connection or stream: the error code. A stream
 * cancelled because its session failed (ERR_HTTP2_STREAM_CANCEL) reports the
 * session's error (ECONNREFUSED, a TLS verification code, …) instead.
 */
function reasonOf(err: Error & { code?: string }): string {
  const cause = err.cause as (Error & { code?: string }) | undefined;
  if (err.code === 'ERR_HTTP2_STREAM_CANCEL' && cause instanceof Error) return cause.code ?? cause.message;
  return err.code ?? err.message;
}

/** A gRPC message: flag 0 (not compressed), 4-byte big-endian length, the HealthCheckRequest. */
export function encodeHealthRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  // Field 1, wire type 2 (length-delimited): tag 0x0a, varint length, bytes. Omitted when empty (proto3 default).
  const body = name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a]), varint(name.length), name]);
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  return frame;
}

/**
 * Decodes the one length-prefixed HealthCheckResponse of a response body:
 * its `status` (0 when absent, the proto3 default), or why it is invalid.
 * Unknown fields are skipped, as protobuf requires.
 */
export function decodeHealthResponse(body: Buffer): number | string {
  if (body.length < 5) return 'no response message';
  if (body[0] !== 0) return 'compressed response message (none was accepted)';
  const len = body.readUInt32BE(1);
  if (body.length !== 5 + len) return 'malformed response message';
  const msg = body.subarray(5);
  let status = 0;
  let i = 0;
  while (i < msg.length) {
    const tag = readVarint(msg, i);
    if (tag === null) return 'malformed response message';
    i = tag.next;
    const field = Math.floor(tag.value / 8);
    const wire = tag.value & 7;
    if (wire === 0) {
      const v = readVarint(msg, i);
      if (v === null) return 'malformed response message';
      i = v.next;
      if (field === 1) status = v.value;
    } else if (wire === 2) {
      const l = readVarint(msg, i);
      if (l === null || l.next + l.value > msg.length) return 'malformed response message';
      i = l.next + l.value;
    } else if (wire === 1) {
      i += 8;
    } else if (wire === 5) {
      i += 4;
    } else {
      return 'malformed response message';
    }
    if (i > msg.length) return 'malformed response message';
  }
  return status;
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

/** A varint of up to 53 bits (enough for enum values and lengths); null when truncated or too long. */
function readVarint(buf: Buffer, at: number): { value: number; next: number } | null {
  let value = 0;
  let mul = 1;
  for (let i = at; i < buf.length && i < at + 10; i++) {
    const b = buf[i]!;
    value += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) return { value, next: i + 1 };
    mul *= 128;
  }
  return null;
}
