import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { GatewayError, fromUpstreamError, isConnectFailure } from '../errors.js';
import { REJECTED_FULL } from '../upstream/circuit-breaker.js';
import { abortExchange, type H1Connection, type OnConnection } from '../upstream/h1-connection.js';
import { wasNotSent } from '../upstream/h2-pool.js';
import { CONNECT_FAILOVERS, type RetryPolicy } from '../upstream/retry.js';
import type { Target } from '../upstream/target.js';
import type { Upstream } from '../upstream/upstream.js';
import type { RequestContext, ResponseHead } from '../snapshot/snapshot.js';
import { connectionTokens, isHopByHop } from './hop-by-hop.js';
import { writeDirectResponse, writeError } from './respond.js';
import { closeAfterTrailers } from './grpc/write-error.js';
import { formatGrpcTimeout } from './grpc/timeout.js';

/** Called exactly once when a proxied exchange is over, whatever the outcome. */
export type Done = (ctx: RequestContext) => void;

const DOWNSTREAM_CLOSED = new GatewayError('DOWNSTREAM_ABORTED');
const DEADLINE = new GatewayError('DEADLINE_EXCEEDED');
const CIRCUIT_OPEN = new GatewayError('CIRCUIT_OPEN');
/** Aborts a retried try whose response body is not worth reading to the end. */
const RETRIED = new Error('response dropped for a retry');
/** A retried response body up to this size is read and dropped, keeping the connection; a larger or unsized one closes it. */
const DRAIN_LIMIT = 64 * 1024;

/**
 * The upstream request phase: pick a target, send the request through the
 * target's keep-alive pool with undici's `dispatch`, and stream the
 * response straight into the downstream response, with backpressure both
 * ways (undici pipes the request body; the response pauses the upstream
 * socket while the downstream one is full).
 *
 * An upstream with a circuit breaker or retries (or a route with retries)
 * takes the guarded path (`GuardedExchange`); the plain path below does no
 * more work per request than that check, so an upstream without policies
 * costs what it did before they existed. Health checks need neither: they
 * swap the upstream's picker, and passive checks read each outcome here.
 */
export function proxy(ctx: RequestContext, done: Done): void {
  const route = ctx.route!;
  const upstream = route.upstream!;
  ctx.upstream = upstream;
  if (upstream.guarded || route.config.retries !== undefined) {
    new GuardedExchange(ctx, done, upstream, upstream.retryPolicyFor(route.config)).start();
    return;
  }
  const target = upstream.pick(ctx);
  if (target === undefined) {
    writeError(ctx, new GatewayError('NO_TARGET'));
    done(ctx);
    return;
  }
  ctx.target = target;
  const headers = ctx.upstreamHeaders;
  headers.push('host', route.preserveHost && ctx.hostHeader !== undefined ? ctx.hostHeader : target.address);
  headers.push('x-request-id', ctx.requestId);
  if (ctx.grpcTimeout > 0) passDeadline(ctx);

  const handler = new ProxyHandler(ctx, done);
  target.inflight++;
  ctx.upstreamStartedAt = process.hrtime.bigint();
  ctx.res.on('close', handler.onDownstreamClose);
  send(ctx, upstream, target, handler);
}

function send(ctx: RequestContext, upstream: Upstream, target: Target, handler: ProxyHandler): void {
  upstream.poolFor(target).dispatch(
    {
      path: ctx.upstreamPath + ctx.query,
      method: ctx.req.method as Dispatcher.HttpMethod,
      headers: ctx.upstreamHeaders,
      body: ctx.hasBody ? ctx.req : null,
      servername: upstream.serverNameFor(target),
    },
    handler,
  );
}

/**
 * Whether a failed try reached nothing: a connect failure (errors.ts
 * isConnectFailure) before the request was written. undici's HTTP/1.1
 * client calls onConnect only once the request is on a connected socket
 * (`connected` false until then); the HTTP/2 pool marks the requests a
 * failed session connect fails (h2-pool.ts wasNotSent).
 */
function notSent(e: GatewayError, err: Error, connected: boolean): boolean {
  return isConnectFailure(e) && (!connected || wasNotSent(err));
}

/** A request body can be sent again: none, in memory, or a stream nothing was read from yet. */
function replayable(body: Buffer | Readable | IncomingMessage | null): boolean {
  return body === null || Buffer.isBuffer(body) || !body.readableDidRead;
}

/**
 * What `forwardHead` leaves for the body: the upstream's Content-Length
 * (-1 when absent), and the response head until it is written.
 */
interface BodySink {
  remaining: number;
  /** The response head, not written yet (see `forwardHead`); null once written or when there is none. */
  head: ResponseHead | null;
}

/**
 * Builds the downstream response head from the upstream's raw head
 * (hop-by-hop headers dropped, X-Request-Id ensured) and runs the response
 * middlewares. Returns null, or the error to abort the upstream request
 * with (the client left, or a header Node refuses).
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
function forwardHead(ctx: RequestContext, status: number, raw: Buffer[], sink: BodySink, endStream = false): GatewayError | null {
  let headers: string[] = [];
  let connection: string | undefined;
  let hasRequestId = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    const c = name.charCodeAt(0) | 0x20;
    // Only names starting with c, k, p, t, u or x need a closer look.
    if (c === 0x63 || c === 0x6b || c === 0x70 || c === 0x74 || c === 0x75 || c === 0x78) {
      const lower = name.toLowerCase();
      if (lower === 'connection') {
        connection = raw[i + 1]!.toString('latin1');
        continue;
      }
      if (isHopByHop(lower)) continue;
      if (lower === 'x-request-id') hasRequestId = true;
      else if (lower === 'content-length') sink.remaining = Number(raw[i + 1]!.toString('latin1'));
    }
    headers.push(name, raw[i + 1]!.toString('latin1'));
  }
  if (connection !== undefined) {
    const drop = connectionTokens(connection);
    if (drop !== null) headers = headers.filter((_, i, a) => !drop.has(a[i - (i % 2)]!.toLowerCase()));
  }
  if (!hasRequestId) headers.push('x-request-id', ctx.requestId);
  const head: ResponseHead = { status, headers };
  ctx.route!.chain.runResponse(ctx, head);
  ctx.status = head.status;
  if (ctx.closed) return DOWNSTREAM_CLOSED;
  if (endStream && ctx.h2) return respondHeadOnly(ctx, head);
  sink.head = head;
  // HTTP/2 sends HEADERS when written (a stream that goes quiet after its head, such as SSE, must not wait for its first
  // byte), and so do gRPC responses; node:http holds an HTTP/1.1 head until the first body write anyway.
  return ctx.grpc || ctx.h2 ? writeHead(ctx, sink) : null;
}

/** Writes the held response head downstream; returns null, or the error when Node refuses a header. */
function writeHead(ctx: RequestContext, sink: BodySink): GatewayError | null {
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
 * gets the same single frame. node:http2's compatibility writeHead + end
 * would add an empty DATA frame, which gRPC clients do not read as
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
    (ctx.res as unknown as Http2ServerResponse).stream.respond(out, { endStream: true });
  } catch (err) {
    return new GatewayError('UPSTREAM_PROTOCOL_ERROR', `invalid response header: ${(err as Error).message}`);
  }
  // Marks the compatibility response ended: its stream is done.
  ctx.res.end();
  return null;
}

/**
 * Writes one upstream body chunk downstream. Returns false when the
 * downstream socket is full: the upstream is then paused until `resume` runs
 * on 'drain'. When the chunk is the rest of a Content-Length body, the
 * response ends with it, so a buffered head and the data leave in one write.
 */
function forwardChunk(ctx: RequestContext, sink: BodySink, chunk: Buffer, resume: () => void): boolean {
  const res = ctx.res;
  ctx.bytesSent += chunk.length;
  if (sink.remaining === chunk.length && !ctx.grpc) {
    sink.remaining = 0;
    res.end(chunk);
    return true;
  }
  if (sink.remaining > 0) sink.remaining -= chunk.length;
  if (res.write(chunk)) return true;
  res.once('drain', resume);
  return false;
}

/** Raw trailer names and values: Buffers at run time (undici's types say strings). */
type RawTrailers = (Buffer | string)[] | null;

const latin1 = (v: Buffer | string): string => (typeof v === 'string' ? v : v.toString('latin1'));

/**
 * Ends the downstream response after the upstream's body, with the
 * upstream's trailers (gRPC's grpc-status and friends). HTTP/2 sends them
 * as a trailing HEADERS frame; node:http sends them only on a chunked
 * response (RFC 9112 §7.1.2) and drops them otherwise.
 */
function endResponse(ctx: RequestContext, sink: BodySink, trailers: RawTrailers): void {
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
  if (ctx.h2 && !ctx.req.complete) closeAfterTrailers((res as unknown as Http2ServerResponse).stream);
  res.end();
}

/**
 * Answers an upstream failure: an error response while nothing was written,
 * else the downstream response is aborted. Either way the log records the
 * error's status, not the status of a head that was cut off.
 */
function failResponse(ctx: RequestContext, e: GatewayError): void {
  const cut = ctx.res.headersSent && !ctx.grpc;
  writeError(ctx, e);
  if (cut) ctx.status = e.status;
}

/**
 * undici's core handler interface (the one its HTTP/1.1 client calls
 * directly: raw header buffers, boolean backpressure). The newer
 * controller-style interface is a wrapper around it that parses every
 * response head into an object; skipping it saves that work per request.
 */
class ProxyHandler implements Dispatcher.DispatchHandler, BodySink, OnConnection {
  private readonly ctx: RequestContext;
  private readonly done: Done;
  private abort: ((err?: Error) => void) | null = null;
  upstreamConnection: H1Connection | null = null;
  private resume: (() => void) | null = null;
  private finished = false;
  private deadline: NodeJS.Timeout | null = null;
  /** The upstream's Content-Length, or -1: lets the last chunk go out with `end`, in one write. */
  remaining = -1;
  head: ResponseHead | null = null;
  /** The response head arrived: a lost connection now cuts a body short. */
  private inBody = false;
  /** Targets whose connect failed (connect failover; null until one did). */
  private tried: Target[] | null = null;

  constructor(ctx: RequestContext, done: Done) {
    this.ctx = ctx;
    this.done = done;
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abort = abort;
    if (this.ctx.closed) abortExchange(this, abort, DOWNSTREAM_CLOSED);
    else if (this.ctx.grpcTimeout > 0 && this.deadline === null) this.deadline = setTimeout(this.onDeadline, deadlineLeft(this.ctx));
  }

  /** The gRPC call's deadline passed: cancel the upstream stream; the client gets DEADLINE_EXCEEDED. */
  private readonly onDeadline = (): void => {
    this.deadline = null;
    if (!this.finished) this.cancel(DEADLINE);
  };

  onHeaders(status: number, raw: Buffer[], resume: () => void, _text?: string, endStream?: boolean): boolean {
    if (status < 200) return true; // 1xx interim responses are not forwarded on HTTP/1.1 (Node answers 100-continue itself).
    const ctx = this.ctx;
    ctx.upstreamStatus = status;
    this.resume = resume;
    this.inBody = true;
    ctx.upstreamHeadersAt = process.hrtime.bigint();
    ctx.target!.observeLatency(Number(ctx.upstreamHeadersAt - ctx.upstreamStartedAt) / 1e6);
    const passive = ctx.upstream!.passive;
    if (passive !== null) passive.observeStatus(ctx.target!, status);
    const err = forwardHead(ctx, status, raw, this, endStream);
    if (err === null) return true;
    this.cancel(err);
    return false;
  }

  onData(chunk: Buffer): boolean {
    if (this.head !== null) {
      const err = writeHead(this.ctx, this);
      if (err !== null) {
        this.cancel(err);
        return false;
      }
    }
    return forwardChunk(this.ctx, this, chunk, this.resume!);
  }

  /** Ends the upstream request once it is on a connection (h1-connection.ts abortExchange). */
  private cancel(err: Error): void {
    if (this.abort !== null) abortExchange(this, this.abort, err);
  }

  onComplete(trailers: RawTrailers): void {
    endResponse(this.ctx, this, trailers);
    this.finish();
  }

  onError(err: Error): void {
    const ctx = this.ctx;
    if (err === DOWNSTREAM_CLOSED || ctx.closed) {
      ctx.error = DOWNSTREAM_CLOSED;
      ctx.status ||= 499;
      if (!ctx.closed) ctx.res.destroy();
    } else {
      const e = fromUpstreamError(err, this.inBody && ctx.upstream!.config.protocol === 'http1');
      if (e !== DEADLINE) ctx.upstream!.passive?.failure(ctx.target!, e.code);
      if (notSent(e, err, this.abort !== null) && this.failover()) return;
      failResponse(ctx, e);
    }
    this.finish();
  }

  /**
   * The target's connect failed and nothing was sent: the request goes to
   * a target not tried yet (retry.ts CONNECT_FAILOVERS). False when none is
   * left, the client left or the body was read already.
   */
  private failover(): boolean {
    const ctx = this.ctx;
    const tried = this.tried ?? (this.tried = []);
    if (ctx.closed || tried.length >= CONNECT_FAILOVERS || !replayable(ctx.hasBody ? ctx.req : null)) return false;
    const upstream = ctx.upstream!;
    const failed = ctx.target!;
    tried.push(failed);
    const target = upstream.pickUntried(ctx, tried);
    if (target === undefined) return false;
    failed.inflight--;
    target.inflight++;
    ctx.target = target;
    this.abort = null;
    // proxy() pushed host, its value, x-request-id and its value last.
    const headers = ctx.upstreamHeaders;
    if (!(ctx.route!.preserveHost && ctx.hostHeader !== undefined)) headers[headers.length - 3] = target.address;
    if (ctx.grpcTimeout > 0) passDeadline(ctx);
    send(ctx, upstream, target, this);
    return true;
  }

  /** A downstream client that goes away aborts the upstream request. */
  readonly onDownstreamClose = (): void => {
    if (!this.finished) this.cancel(DOWNSTREAM_CLOSED);
  };

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.deadline !== null) clearTimeout(this.deadline);
    this.ctx.target!.inflight--;
    this.done(this.ctx);
  }
}

/**
 * A gRPC call's `grpc-timeout` goes upstream as the time left, not the
 * time the client first gave (time spent in the gateway, its middlewares
 * and earlier tries is taken off), so the server's deadline is the client's.
 */
function passDeadline(ctx: RequestContext): void {
  const h = ctx.upstreamHeaders;
  for (let i = 0; i < h.length; i += 2) {
    if (h[i]!.length === 12 && h[i]!.toLowerCase() === 'grpc-timeout') {
      h[i + 1] = formatGrpcTimeout(deadlineLeft(ctx));
      return;
    }
  }
}

/** Milliseconds left before a gRPC call's deadline (`grpc-timeout`, counted from its arrival); at least 1. */
function deadlineLeft(ctx: RequestContext): number {
  return Math.max(1, ctx.grpcTimeout - Number(process.hrtime.bigint() - ctx.startedAt) / 1e6);
}

// ---------------------------------------------------------------------------
// The guarded path: circuit breaker and retries.

/** An attempt whose response head has not arrived yet. */
const PENDING = 0;
/** Its response is going downstream: no retry any more. */
const FORWARDING = 1;
/** A retry took over; the rest of its response is dropped (read to the end when small and sized, else the connection is closed). */
const DISCARDING = 2;

/**
 * One proxied request on an upstream with a circuit breaker and/or retries:
 * up to 1 + `attempts` tries, each through the breaker and to a target not
 * tried yet when there is one.
 *
 * - A request body is replayable only when it was buffered: bodies up to
 *   `retryBufferBytes` are read first and sent from memory; a larger one is
 *   streamed and the request is not retried. Requests whose method is not
 *   idempotent are not retried unless `retryNonIdempotent` is set.
 * - A try is retried on a failure before any response byte (connect
 *   failure, reset, response-head timeout) or a response status listed in
 *   `on`, if a retry is left, the budget allows one and the client is still
 *   there; the retried response's body is dropped, never sent (read to
 *   its end when it is sized and small, so the connection is reused;
 *   otherwise its connection is closed). Once a response head is
 *   forwarded there is no retry.
 * - The breaker rejects at once (503 CIRCUIT_OPEN or the fallback) when it
 *   is open or `maxConcurrent` calls are in flight; each try's outcome is
 *   recorded in it when its response head (or failure) arrives.
 */
class GuardedExchange {
  readonly ctx: RequestContext;
  readonly upstream: Upstream;
  private readonly done: Done;
  private readonly policy: RetryPolicy | null;
  private readonly headersTimeout: number | undefined;
  private body: Buffer | Readable | null = null;
  private retriesLeft = 0;
  private retries = 0;
  /** Targets of the earlier tries: the first alone, then a list once there is a retry. */
  private first: Target | null = null;
  private tried: Target[] | null = null;
  private attempt: Attempt | null = null;
  private timer: NodeJS.Timeout | null = null;
  private buffering = false;
  private finished = false;
  private deadline: NodeJS.Timeout | null = null;
  /** Index of the Host value in ctx.upstreamHeaders, once added. */
  private hostIndex = -1;
  /** Connect failovers taken (retry.ts CONNECT_FAILOVERS). */
  private failovers = 0;

  constructor(ctx: RequestContext, done: Done, upstream: Upstream, policy: RetryPolicy | null) {
    this.ctx = ctx;
    this.done = done;
    this.upstream = upstream;
    this.policy = policy;
    this.headersTimeout = policy !== null ? policy.headersTimeout : upstream.headersTimeout;
  }

  start(): void {
    const ctx = this.ctx;
    ctx.res.on('close', this.onDownstreamClose);
    if (ctx.grpcTimeout > 0) this.deadline = setTimeout(this.onDeadline, deadlineLeft(ctx));
    const policy = this.policy;
    if (policy !== null) {
      policy.budget.onRequest();
      if (policy.allowsMethod(ctx.req.method!)) this.retriesLeft = policy.attempts;
    }
    if (ctx.hasBody) {
      if (this.retriesLeft > 0 && ctx.contentLength <= policy!.bufferBytes) {
        // Known small, or chunked (read up to the limit to find out).
        this.buffering = true;
        readReplayable(ctx.req, policy!.bufferBytes).then(
          (body) => {
            this.buffering = false;
            if (this.finished) return;
            this.body = body;
            if (!Buffer.isBuffer(body)) this.retriesLeft = 0;
            this.startAttempt();
          },
          () => {
            this.buffering = false;
            this.finishAborted();
          },
        );
        return;
      }
      this.body = ctx.req;
      this.retriesLeft = 0;
    }
    this.startAttempt();
  }

  private startAttempt(): void {
    if (this.finished) return;
    const ctx = this.ctx;
    const upstream = this.upstream;
    const breaker = upstream.breaker;
    let permit = 0;
    if (breaker !== null) {
      permit = breaker.acquire();
      if (permit < 0) return this.reject(permit);
    }
    let target: Target | undefined;
    if (this.first === null) {
      target = upstream.pick(ctx);
    } else {
      this.tried ??= [this.first];
      target = upstream.pickOther(ctx, this.tried);
    }
    if (target === undefined) {
      breaker?.release(permit, false);
      writeError(ctx, new GatewayError('NO_TARGET'));
      return this.finish();
    }
    if (this.first === null) this.first = target;
    else this.tried!.push(target);
    ctx.target = target;
    const headers = ctx.upstreamHeaders;
    const host = this.ctx.route!.preserveHost && ctx.hostHeader !== undefined ? ctx.hostHeader : target.address;
    if (this.hostIndex < 0) {
      this.hostIndex = headers.length + 1;
      headers.push('host', host, 'x-request-id', ctx.requestId);
    } else {
      headers[this.hostIndex] = host;
    }
    if (ctx.grpcTimeout > 0) passDeadline(ctx);
    const attempt = new Attempt(this, target, permit);
    this.attempt = attempt;
    target.inflight++;
    if (ctx.upstreamStartedAt === 0n) ctx.upstreamStartedAt = attempt.startedAt;
    upstream.poolFor(target).dispatch(
      {
        path: ctx.upstreamPath + ctx.query,
        method: ctx.req.method as Dispatcher.HttpMethod,
        headers,
        body: this.body,
        headersTimeout: this.headersTimeout,
        servername: upstream.serverNameFor(target),
      },
      attempt,
    );
  }

  /** A try's response head arrived: forward it, or drop it and retry. Returns undici's keep-reading flag. */
  onHead(a: Attempt, status: number, raw: Buffer[], endStream: boolean): boolean {
    const ctx = this.ctx;
    ctx.upstreamStatus = status;
    const now = process.hrtime.bigint();
    a.target.observeLatency(Number(now - a.startedAt) / 1e6);
    const breaker = this.upstream.breaker;
    if (breaker !== null) {
      breaker.record(a.permit, !breaker.isFailure(status));
      a.recorded = true;
    }
    this.upstream.passive?.observeStatus(a.target, status);
    if (this.policy !== null && this.policy.retriesStatus(status) && this.mayRetry()) {
      a.mode = DISCARDING;
      this.scheduleRetry();
      const length = contentLength(raw);
      if (length >= 0 && length <= DRAIN_LIMIT) return true;
      a.cancel(RETRIED);
      return false;
    }
    a.mode = FORWARDING;
    ctx.upstreamHeadersAt = now;
    const err = forwardHead(ctx, status, raw, a, endStream);
    if (err === null) return true;
    a.cancel(err);
    return false;
  }

  /** A try failed (undici's onError). */
  onAttemptError(a: Attempt, err: Error): void {
    const ctx = this.ctx;
    if (a.mode === DISCARDING) return a.end();
    if (err === DOWNSTREAM_CLOSED || ctx.closed) {
      a.end();
      return this.finishAborted();
    }
    const e = fromUpstreamError(err, a.mode === FORWARDING && this.upstream.config.protocol === 'http1');
    if (e !== DEADLINE) this.upstream.passive?.failure(a.target, e.code);
    if (a.mode === FORWARDING || e === DEADLINE) {
      // After the head was taken for downstream (or could not be written): never retried.
      a.end();
      failResponse(ctx, e);
      return this.finish();
    }
    const breaker = this.upstream.breaker;
    if (breaker !== null) {
      breaker.record(a.permit, false);
      a.recorded = true;
    }
    a.end();
    if (this.policy !== null && this.policy.retriesError(e.code) && this.mayRetry()) return this.scheduleRetry();
    if (notSent(e, err, a.abort !== null) && this.mayFailover()) {
      this.attempt = null;
      return this.startAttempt();
    }
    writeError(ctx, e);
    this.finish();
  }

  /** A connect failover is possible: one is left, the client is there, the body can be sent again and a target was not tried. */
  private mayFailover(): boolean {
    if (this.failovers >= CONNECT_FAILOVERS || this.ctx.closed || !replayable(this.body)) return false;
    if (!this.upstream.hasUntried(this.tried ?? [this.first!])) return false;
    this.failovers++;
    return true;
  }

  onComplete(a: Attempt, trailers: RawTrailers): void {
    a.end();
    if (a.mode !== FORWARDING) return;
    endResponse(this.ctx, a, trailers);
    this.finish();
  }

  /** Takes a retry if one is left, the budget allows it and the client is still there. */
  private mayRetry(): boolean {
    if (this.retriesLeft <= 0 || this.ctx.closed) return false;
    if (!this.policy!.budget.tryRetry()) return false;
    this.retriesLeft--;
    return true;
  }

  private scheduleRetry(): void {
    this.attempt = null;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.startAttempt();
    }, this.policy!.backoffMs(++this.retries));
  }

  /** The breaker said no: 503 CIRCUIT_OPEN, or the configured fallback answer. */
  private reject(permit: number): void {
    const ctx = this.ctx;
    const err =
      permit === REJECTED_FULL
        ? new GatewayError('CIRCUIT_OPEN', `upstream has ${this.upstream.breaker!.config.maxConcurrent} requests in flight (circuitBreaker.maxConcurrent)`)
        : CIRCUIT_OPEN;
    const fallback = this.upstream.breakerFallback;
    if (fallback !== null && !ctx.res.headersSent && !ctx.closed) {
      ctx.error = err;
      writeDirectResponse(ctx, fallback);
    } else {
      writeError(ctx, err);
    }
    this.finish();
  }

  /** The gRPC call's deadline passed: cancel the try in flight, or end the wait between tries. */
  private readonly onDeadline = (): void => {
    this.deadline = null;
    if (this.finished) return;
    const a = this.attempt;
    if (this.timer === null && !this.buffering && a !== null && !a.ended && a.abort !== null) return a.cancel(DEADLINE);
    writeError(this.ctx, DEADLINE);
    this.finish();
  };

  /** A client that goes away aborts the try in flight, or ends the wait between tries. */
  private readonly onDownstreamClose = (): void => {
    if (this.finished) return;
    if (this.timer !== null || this.buffering) return this.finishAborted();
    const a = this.attempt;
    if (a !== null && !a.ended) a.cancel(DOWNSTREAM_CLOSED);
  };

  private finishAborted(): void {
    const ctx = this.ctx;
    ctx.error = DOWNSTREAM_CLOSED;
    ctx.status ||= 499;
    if (!ctx.closed) ctx.res.destroy();
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.deadline !== null) clearTimeout(this.deadline);
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.done(this.ctx);
  }
}

/** One try of a guarded exchange: undici's handler for it. */
class Attempt implements Dispatcher.DispatchHandler, BodySink, OnConnection {
  readonly exchange: GuardedExchange;
  readonly target: Target;
  /** The breaker permit (0 without a breaker). */
  readonly permit: number;
  readonly startedAt = process.hrtime.bigint();
  mode = PENDING;
  /** The breaker has this try's outcome. */
  recorded = false;
  ended = false;
  abort: ((err?: Error) => void) | null = null;
  upstreamConnection: H1Connection | null = null;
  remaining = -1;
  head: ResponseHead | null = null;
  private resume: (() => void) | null = null;

  constructor(exchange: GuardedExchange, target: Target, permit: number) {
    this.exchange = exchange;
    this.target = target;
    this.permit = permit;
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abort = abort;
    if (this.exchange.ctx.closed) abortExchange(this, abort, DOWNSTREAM_CLOSED);
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void, _text?: string, endStream?: boolean): boolean {
    if (status < 200) return true;
    this.resume = resume;
    return this.exchange.onHead(this, status, raw, endStream === true);
  }

  onData(chunk: Buffer): boolean {
    if (this.mode !== FORWARDING) return true;
    if (this.head !== null) {
      const err = writeHead(this.exchange.ctx, this);
      if (err !== null) {
        this.cancel(err);
        return false;
      }
    }
    return forwardChunk(this.exchange.ctx, this, chunk, this.resume!);
  }

  onComplete(trailers: RawTrailers): void {
    this.exchange.onComplete(this, trailers);
  }

  /** Ends this try once it is on a connection (h1-connection.ts abortExchange). */
  cancel(err: Error): void {
    if (this.abort !== null) abortExchange(this, this.abort, err);
  }

  onError(err: Error): void {
    this.exchange.onAttemptError(this, err);
  }

  /** Releases the target and the breaker permit, once. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.target.inflight--;
    const breaker = this.exchange.upstream.breaker;
    if (breaker !== null) breaker.release(this.permit, this.recorded);
  }
}

/** The Content-Length of a raw response head, or -1 when absent or invalid. */
function contentLength(raw: Buffer[]): number {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 14 && raw[i]!.toString('latin1').toLowerCase() === 'content-length') {
      const v = raw[i + 1]!.toString('latin1').trim();
      return /^\d+$/.test(v) ? Number(v) : -1;
    }
  }
  return -1;
}

/**
 * Reads a request body for replay: the whole body as one Buffer when it
 * ends within `limit` bytes; otherwise a stream of what was read followed
 * by the rest (sent once, not replayable). Rejects if the client goes away.
 */
async function readReplayable(req: IncomingMessage, limit: number): Promise<Buffer | Readable> {
  const it = req[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const r = await it.next();
    if (r.done) return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
    chunks.push(r.value);
    size += r.value.length;
    if (size > limit) return Readable.from(rest(chunks, it), { objectMode: false });
  }
}

async function* rest(read: Buffer[], it: AsyncIterator<Buffer>): AsyncIterable<Buffer> {
  yield* read;
  for (;;) {
    const r = await it.next();
    if (r.done) return;
    yield r.value;
  }
}
