import type { OutgoingHttpHeaders } from 'node:http';
import { GatewayError } from '../../errors.js';
import type { RequestContext, ResponseHead } from '../../snapshot/snapshot.js';
import { closeAfterTrailers } from '../grpc/write-error.js';
import { connectionTokens, isHopByHop } from '../hop-by-hop.js';
import { writeError } from '../respond.js';
import type { H2Response } from '../h2/response.js';

/**
 * The downstream response writer: turns the upstream's response (raw head,
 * body chunks, trailers) into the downstream one, with backpressure, for
 * HTTP/1.x, HTTP/2 and gRPC clients. Used by the exchange (exchange.ts)
 * and, for a non-101 handshake answer and the 101 head, by the WebSocket
 * dial (websocket/dial.ts).
 */

export const DOWNSTREAM_CLOSED = new GatewayError('DOWNSTREAM_ABORTED');

/**
 * What `forwardHead` leaves for the body: the upstream's Content-Length
 * (-1 when absent), and the response head until it is written.
 */
export interface BodySink {
  remaining: number;
  /** The response head, not written yet (see `forwardHead`); null once written or when there is none. */
  head: ResponseHead | null;
}

/** Raw header or trailer names and values: Buffers from undici's HTTP/1.1 client, strings from some paths (its types say strings). */
export type RawFields = readonly (Buffer | string)[];

const latin1 = (v: Buffer | string): string => (typeof v === 'string' ? v : v.toString('latin1'));

/**
 * The responseFilter phase: the downstream response head built from the
 * upstream's raw head — hop-by-hop headers (RFC 9110 §7.6.1) and every
 * header named in Connection dropped, X-Request-Id ensured — then the
 * route's response middlewares, which may change status and headers.
 * `sink`, when given, gets the upstream's Content-Length. Throws what a
 * response middleware throws.
 */
export function responseFilter(ctx: RequestContext, status: number, raw: RawFields, sink: BodySink | null): ResponseHead {
  let headers: string[] = [];
  let connection: string | undefined;
  let hasRequestId = false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = latin1(raw[i]!);
    const c = name.charCodeAt(0) | 0x20;
    // Only names starting with c, k, p, t, u or x need a closer look.
    if (c === 0x63 || c === 0x6b || c === 0x70 || c === 0x74 || c === 0x75 || c === 0x78) {
      const lower = name.toLowerCase();
      if (lower === 'connection') {
        const value = latin1(raw[i + 1]!);
        connection = connection === undefined ? value : `${connection}, ${value}`;
        continue;
      }
      if (isHopByHop(lower)) continue;
      if (lower === 'x-request-id') hasRequestId = true;
      else if (sink !== null && lower === 'content-length') sink.remaining = Number(latin1(raw[i + 1]!));
    }
    headers.push(name, latin1(raw[i + 1]!));
  }
  if (connection !== undefined) {
    const drop = connectionTokens(connection);
    if (drop !== null) headers = headers.filter((_, i, a) => !drop.has(a[i - (i % 2)]!.toLowerCase()));
  }
  if (!hasRequestId) headers.push('x-request-id', ctx.requestId);
  const head: ResponseHead = { status, headers };
  ctx.route!.chain.runResponse(ctx, head);
  return head;
}

/**
 * Runs the responseFilter phase on an upstream response head and prepares
 * it for downstream. Returns null, or the error to abort the upstream
 * request with (the client left, or a header Node refuses).
 *
 * For an HTTP/1.x client the head is held in `sink.head` and written with
 * the first body bytes or at the end of the response (`writeHead`), not
 * when it arrives: until then nothing has reached the client, so an
 * upstream whose body framing turns out broken (a bad chunk size, a body
 * shorter than its Content-Length) is still answered 502
 * UPSTREAM_PROTOCOL_ERROR. node:http buffers a written head until the
 * first body write anyway, so those clients see no difference in timing.
 * HTTP/2 sends HEADERS as soon as they are written, so there the head goes
 * at once (an event stream that is quiet after its head must not wait for
 * its first byte), as it does for gRPC; a framing error after it resets
 * the stream. Once the head is written an error aborts the downstream
 * response instead.
 */
export function forwardHead(ctx: RequestContext, status: number, raw: RawFields, sink: BodySink, endStream = false): GatewayError | null {
  const head = responseFilter(ctx, status, raw, sink);
  ctx.status = head.status;
  if (ctx.closed) return DOWNSTREAM_CLOSED;
  if (endStream && ctx.h2) return respondHeadOnly(ctx, head);
  sink.head = head;
  return ctx.grpc || ctx.h2 ? writeHead(ctx, sink) : null;
}

/** Writes the held response head downstream; returns null, or the error when Node refuses a header. */
export function writeHead(ctx: RequestContext, sink: BodySink): GatewayError | null {
  const head = sink.head!;
  sink.head = null;
  try {
    ctx.res.writeHead(head.status, head.headers);
  } catch (err) {
    // An upstream header Node refuses to forward (e.g. invalid characters).
    return new GatewayError('UPSTREAM_PROTOCOL_ERROR', `invalid response header: ${(err as Error).message}`);
  }
  return null;
}

/**
 * An HTTP/2 upstream answered with a HEADERS frame that ended its stream
 * (gRPC's Trailers-Only response carries grpc-status there): the client
 * gets the same single frame. `writeHead` + `end` would add an empty DATA
 * frame (http/h2/response.ts), which gRPC clients do not read as
 * Trailers-Only.
 */
function respondHeadOnly(ctx: RequestContext, head: ResponseHead): GatewayError | null {
  const out: OutgoingHttpHeaders = { ':status': head.status };
  const h = head.headers;
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i]!.toLowerCase();
    if (name === 'grpc-status') ctx.grpcStatus = Number(h[i + 1]);
    const prior = out[name];
    out[name] = prior === undefined ? h[i + 1]! : Array.isArray(prior) ? [...prior, h[i + 1]!] : [String(prior), h[i + 1]!];
  }
  try {
    (ctx.res as unknown as H2Response).stream.respond(out, { endStream: true });
  } catch (err) {
    return new GatewayError('UPSTREAM_PROTOCOL_ERROR', `invalid response header: ${(err as Error).message}`);
  }
  // Marks the response ended: its stream is done.
  ctx.res.end();
  return null;
}

/**
 * Writes one upstream body chunk downstream. Returns false when the
 * downstream socket is full: the upstream is then paused until `resume` runs
 * on 'drain'. When the chunk is the rest of a Content-Length body, the
 * response ends with it, so a buffered head and the data leave in one write.
 */
export function forwardChunk(ctx: RequestContext, sink: BodySink, chunk: Buffer, resume: () => void): boolean {
  const res = ctx.res;
  ctx.bytesSent += chunk.length;
  if (sink.remaining === chunk.length && !ctx.grpc) {
    sink.remaining = 0;
    res.end(chunk);
    return true;
  }
  if (sink.remaining > 0) sink.remaining -= chunk.length;
  let more: boolean;
  if (ctx.h2) more = res.write(chunk);
  else {
    // node:http would hold the chunk corked until the next tick; it leaves now instead, so that the
    // upstream client can read into the same buffer again (upstream/h1/connection.ts `onRead`).
    res.cork();
    more = res.write(chunk);
    res.uncork();
  }
  if (more) return true;
  res.once('drain', resume);
  return false;
}

/**
 * Ends the downstream response after the upstream's body, with the
 * upstream's trailers (gRPC's grpc-status and friends). HTTP/2 sends them
 * as a trailing HEADERS frame; node:http sends them only on a chunked
 * response (RFC 9112 §7.1.2) and drops them otherwise.
 */
export function endResponse(ctx: RequestContext, sink: BodySink, trailers: RawFields | null): void {
  const res = ctx.res;
  if (res.writableEnded) return;
  if (sink.head !== null) {
    const err = writeHead(ctx, sink);
    if (err !== null) return writeError(ctx, err);
  }
  if (trailers !== null && trailers.length > 0) {
    const out: Record<string, string> = {};
    for (let i = 0; i < trailers.length; i += 2) {
      const name = latin1(trailers[i]!).toLowerCase();
      if (isHopByHop(name)) continue;
      const value = latin1(trailers[i + 1]!);
      if (name === 'grpc-status') ctx.grpcStatus = Number(value);
      out[name] = out[name] === undefined ? value : `${out[name]}, ${value}`;
    }
    try {
      res.addTrailers(out);
    } catch (err) {
      // A trailer Node refuses (invalid characters): the response is cut, not ended as if complete.
      res.destroy(err as Error);
      return;
    }
  }
  // A client still sending (a bidi call that never half-closed) is told to stop once the trailers are out.
  if (ctx.h2 && !ctx.req.complete) closeAfterTrailers((res as unknown as H2Response).stream);
  res.end();
}

/**
 * Answers an upstream failure: an error response while nothing was written,
 * else the downstream response is aborted. Either way the log records the
 * error's status, not the status of a head that was cut off.
 */
export function failResponse(ctx: RequestContext, e: GatewayError): void {
  const cut = ctx.res.headersSent && !ctx.grpc;
  writeError(ctx, e);
  if (cut) ctx.status = e.status;
}
