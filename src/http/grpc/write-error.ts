import type { ServerHttp2Stream } from 'node:http2';
import type { H2Response } from '../h2/response.js';
import type { GatewayError } from '../../errors.js';
import type { RequestContext } from '../../snapshot/snapshot.js';
import { encodeGrpcMessage, grpcStatusFor } from './status.js';

// How a gateway error reaches a gRPC client (the codes and their mapping are in status.ts).

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
 *   `retry-after` or `www-authenticate`). `writeHead` +
 *   `end` (http/h2/response.ts) would send the head without END_STREAM and end the
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
  const stream = ctx.h2 ? (res as unknown as H2Response).stream : null;
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
    (res as unknown as H2Response).addTrailers(trailers);
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
    respondTrailersOnly(res as unknown as H2Response, stream, headers);
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
 * left half-open. `res.end()` then only marks the response
 * ended (its stream is done), so later `writableEnded` checks see it.
 */
function respondTrailersOnly(res: H2Response, stream: ServerHttp2Stream, headers: Record<string, string>): void {
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
 * Node does not close it then. So once the response has
 * sent the trailers (its 'wantTrailers' listener runs first), a stream
 * still open is closed with RST_STREAM(NO_ERROR) (RFC 9113 §8.1), which
 * tells the client to stop sending without an error. Call it before the
 * response's `end()`; it is harmless when the client has
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
