import type { Http2ServerResponse, ServerHttp2Stream } from 'node:http2';
import type { ErrorCode, GatewayError } from '../../errors.js';
import type { RequestContext } from '../context.js';

/**
 * gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html)
 * and how the gateway's own errors reach a gRPC client: as a `grpc-status`
 * and `grpc-message`, never as an HTTP error status with a JSON body, which
 * a gRPC client could only report as UNKNOWN/INTERNAL.
 */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

/** The status names by code (`GRPC_STATUS_NAMES[14] === 'UNAVAILABLE'`), for logs and docs. */
export const GRPC_STATUS_NAMES: readonly string[] = Object.keys(GrpcStatus);

/**
 * The gRPC status of each gateway error. Choices where the spec leaves room:
 * - BAD_REQUEST → INTERNAL: the gateway raises it for a malformed request
 *   (a protocol error, not an argument the application rejected), and
 *   INTERNAL is what gRPC's HTTP→gRPC mapping gives HTTP 400
 *   (https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md).
 * - UPSTREAM_CONNECT_TIMEOUT → UNAVAILABLE: the call never reached a server,
 *   so it is safe to retry, which is what UNAVAILABLE tells a client (gRPC
 *   clients report their own connect failures this way). A response timeout
 *   or an expired deadline is DEADLINE_EXCEEDED: the server may have acted.
 * - UPSTREAM_TLS_ERROR → UNAVAILABLE: no server was reached (gRPC clients
 *   report their own failed handshakes this way).
 * - HEADERS_TOO_LARGE → RESOURCE_EXHAUSTED, as gRPC reports metadata over
 *   its size limit.
 * - FAULT_INJECTED follows the injected HTTP status (see `fromHttpStatus`).
 *
 * Every ErrorCode must be listed (the type checks it), so a new code gets a
 * deliberate gRPC status.
 */
const BY_CODE: { readonly [K in ErrorCode]: GrpcStatusCode } = {
  BAD_REQUEST: GrpcStatus.INTERNAL,
  BAD_FRAMING: GrpcStatus.INTERNAL,
  HTTP_VERSION_NOT_SUPPORTED: GrpcStatus.INTERNAL,
  METHOD_NOT_ALLOWED: GrpcStatus.INTERNAL,
  UNSUPPORTED_TRANSFER_CODING: GrpcStatus.INTERNAL,
  REQUEST_TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
  HEADERS_TOO_LARGE: GrpcStatus.RESOURCE_EXHAUSTED,
  UNAUTHORIZED: GrpcStatus.UNAUTHENTICATED,
  FORBIDDEN: GrpcStatus.PERMISSION_DENIED,
  RATE_LIMITED: GrpcStatus.RESOURCE_EXHAUSTED,
  QUOTA_EXCEEDED: GrpcStatus.RESOURCE_EXHAUSTED,
  CIRCUIT_OPEN: GrpcStatus.UNAVAILABLE,
  FAULT_INJECTED: GrpcStatus.UNKNOWN,
  ROUTE_NOT_FOUND: GrpcStatus.UNIMPLEMENTED,
  PAYLOAD_TOO_LARGE: GrpcStatus.RESOURCE_EXHAUSTED,
  NO_TARGET: GrpcStatus.UNAVAILABLE,
  UPSTREAM_CONNECT_REFUSED: GrpcStatus.UNAVAILABLE,
  UPSTREAM_RESET: GrpcStatus.UNAVAILABLE,
  UPSTREAM_PROTOCOL_ERROR: GrpcStatus.INTERNAL,
  UPSTREAM_TLS_ERROR: GrpcStatus.UNAVAILABLE,
  UPSTREAM_CONNECT_TIMEOUT: GrpcStatus.UNAVAILABLE,
  UPSTREAM_RESPONSE_TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
  DEADLINE_EXCEEDED: GrpcStatus.DEADLINE_EXCEEDED,
  DOWNSTREAM_ABORTED: GrpcStatus.CANCELLED,
  INTERNAL: GrpcStatus.INTERNAL,
  // Connection-level (L4) codes: never answered to a gRPC call; listed with their nearest meaning.
  CONNECTION_LIMIT: GrpcStatus.RESOURCE_EXHAUSTED,
  CONNECTION_LIMIT_PER_IP: GrpcStatus.RESOURCE_EXHAUSTED,
  SESSION_LIMIT: GrpcStatus.RESOURCE_EXHAUSTED,
  PROXY_PROTOCOL_ERROR: GrpcStatus.INTERNAL,
  DOWNSTREAM_TLS_ERROR: GrpcStatus.UNAUTHENTICATED,
  BAD_CLIENT_HELLO: GrpcStatus.INTERNAL,
  HANDSHAKE_TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
  BAD_SEALED_LINE: GrpcStatus.INTERNAL,
  SEALED_ADDRESS_INVALID: GrpcStatus.UNAUTHENTICATED,
  SEALED_ADDRESS_EXPIRED: GrpcStatus.UNAUTHENTICATED,
  DESTINATION_DENIED: GrpcStatus.PERMISSION_DENIED,
  UPSTREAM_NOT_FOUND: GrpcStatus.UNAVAILABLE,
  GATEWAY_CLOSING: GrpcStatus.UNAVAILABLE,
  PROXY_AUTH_REQUIRED: GrpcStatus.UNAUTHENTICATED,
  DESTINATION_UNRESOLVED: GrpcStatus.UNAVAILABLE,
  DESTINATION_RESOLVE_TIMEOUT: GrpcStatus.UNAVAILABLE,
};

/** The gRPC status a gateway error is reported with. */
export function grpcStatusFor(err: GatewayError): GrpcStatusCode {
  if (err.code === 'FAULT_INJECTED') return fromHttpStatus(err.status);
  return BY_CODE[err.code];
}

/**
 * gRPC's mapping of an HTTP status received instead of a gRPC response
 * (http-grpc-status-mapping.md): 400 INTERNAL, 401 UNAUTHENTICATED,
 * 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE,
 * anything else UNKNOWN.
 */
export function fromHttpStatus(status: number): GrpcStatusCode {
  switch (status) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

/**
 * `grpc-message` is percent-encoded UTF-8 (gRPC over HTTP/2, "Responses"):
 * bytes 0x20-0x7E other than `%` are sent as they are, every other byte as
 * `%XX` (upper-case hex).
 */
export function encodeGrpcMessage(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = '';
  for (const b of Buffer.from(message, 'utf8')) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b < 16 ? '0' : ''}${b.toString(16).toUpperCase()}`;
  }
  return out;
}

/**
 * Decodes a `grpc-message`. Per the spec a malformed escape is kept as it
 * is rather than failing the call; invalid UTF-8 becomes U+FFFD.
 */
export function decodeGrpcMessage(value: string): string {
  if (!value.includes('%')) return value;
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x25 && i + 2 < value.length && /^[0-9A-Fa-f]{2}$/.test(value.slice(i + 1, i + 3))) {
      bytes.push(parseInt(value.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(c & 0xff);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Metadata keys a gateway error may carry to a gRPC client: explanation headers are valid, lower-case metadata. */
function errorMetadata(err: GatewayError, into: Record<string, string>): void {
  if (err.headers === undefined) return;
  for (const k in err.headers) {
    const key = k.toLowerCase();
    if (/^[0-9a-z_.-]+$/.test(key) && !key.startsWith('grpc-')) into[key] = err.headers[k]!;
  }
}

/**
 * Answers a gRPC call with a gateway error.
 *
 * - Head not sent: a Trailers-Only response (gRPC over HTTP/2, "Responses"):
 *   on HTTP/2 one HEADERS frame with END_STREAM carrying `:status 200`,
 *   `content-type: application/grpc`, `grpc-status`, `grpc-message` and
 *   `x-request-id` (plus the error's explanation headers such as
 *   `retry-after` or `www-authenticate`). node:http2's compatibility
 *   `writeHead` + `end` would send the head without END_STREAM and end the
 *   stream with an empty DATA frame, which is not Trailers-Only, so the
 *   stream is answered directly. On HTTP/1.1 the same fields go out as
 *   headers of an empty 200 response.
 * - Head already sent (the upstream's response is being relayed): on
 *   HTTP/2, the status goes out as trailers; but an upstream stream reset
 *   (`err.cause.rstCode`) resets the downstream stream with the same code,
 *   so a cancellation propagates as one. On HTTP/1.1 the connection is
 *   closed (a truncated body must never look complete).
 * - A client that is gone (DOWNSTREAM_ABORTED, or the stream closed) gets
 *   nothing; its stream is closed with CANCEL if still open.
 *
 * ctx.status is 200 for any response written (499 when the client left);
 * ctx.grpcStatus is `grpcStatusFor(err)`.
 */
export function writeGrpcError(ctx: RequestContext, err: GatewayError): void {
  ctx.error = err;
  const res = ctx.res;
  const stream = ctx.h2 ? (res as unknown as Http2ServerResponse).stream : null;
  const gone = stream !== null ? stream.destroyed || stream.closed : res.destroyed;
  if (gone || err.code === 'DOWNSTREAM_ABORTED') {
    ctx.status ||= 499;
    if (stream !== null) {
      if (!stream.destroyed && !stream.closed) stream.close(CANCEL);
    } else if (!res.destroyed) res.destroy();
    return;
  }
  const code = grpcStatusFor(err);
  ctx.grpcStatus = code;
  if (res.headersSent) {
    if (stream === null) {
      if (!res.writableEnded) res.destroy(err);
      return;
    }
    const rstCode = resetCodeOf(err);
    if (rstCode !== undefined) {
      stream.close(rstCode);
      return;
    }
    const trailers: Record<string, string> = { 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(err.message) };
    // Already ended: the status went out with it.
    if (res.writableEnded) return;
    closeAfterTrailers(stream);
    (res as unknown as Http2ServerResponse).addTrailers(trailers);
    res.end();
    return;
  }
  ctx.status = 200;
  ctx.bytesSent = 0;
  const headers: Record<string, string> = {};
  errorMetadata(err, headers);
  headers['content-type'] = 'application/grpc';
  headers['grpc-status'] = String(code);
  headers['grpc-message'] = encodeGrpcMessage(err.message);
  headers['x-request-id'] = ctx.requestId;
  if (stream !== null) {
    headers[':status'] = '200';
    respondTrailersOnly(res as unknown as Http2ServerResponse, stream, headers);
    return;
  }
  headers['content-length'] = '0';
  headers['cache-control'] = 'no-store';
  res.writeHead(200, headers);
  res.end();
}

/** NGHTTP2_NO_ERROR and NGHTTP2_CANCEL (RFC 9113 §7). */
const NO_ERROR = 0x0;
const CANCEL = 0x8;

/**
 * One HEADERS frame with END_STREAM. A request body still arriving is cut
 * short by Node with RST_STREAM(NO_ERROR) (RFC 9113 §8.1), so no stream is
 * left half-open. `res.end()` then only marks the compatibility response
 * ended (its stream is done), so later `writableEnded` checks see it.
 */
function respondTrailersOnly(res: Http2ServerResponse, stream: ServerHttp2Stream, headers: Record<string, string>): void {
  try {
    stream.respond(headers, { endStream: true });
    res.end();
  } catch {
    // The stream closed between the check and the answer: nothing to tell.
    if (!stream.destroyed) stream.close(CANCEL);
  }
}

/**
 * The call is over once its trailers are out, but a client still sending
 * (a bidi call that never half-closed) would keep the stream open, and
 * Node does not close it then. So once the compatibility response has
 * sent the trailers (its 'wantTrailers' listener runs first), a stream
 * still open is closed with RST_STREAM(NO_ERROR) (RFC 9113 §8.1), which
 * tells the client to stop sending without an error. Call it before the
 * compatibility response's `end()`; it is harmless when the client has
 * already half-closed (the stream is then closed by the END_STREAM).
 */
export function closeAfterTrailers(stream: ServerHttp2Stream): void {
  stream.once('wantTrailers', () =>
    setImmediate(() => {
      if (!stream.closed && !stream.destroyed) stream.close(NO_ERROR);
    }),
  );
}

/** The HTTP/2 error code of an upstream stream reset carried by `err` (its cause's `rstCode`), if any. */
function resetCodeOf(err: GatewayError): number | undefined {
  const cause = err.cause as { rstCode?: unknown } | undefined;
  const code = cause?.rstCode;
  return typeof code === 'number' && Number.isInteger(code) && code > 0 ? code : undefined;
}
