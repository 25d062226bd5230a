import type { Dispatcher } from 'undici';
import { GatewayError, fromUpstreamError } from '../../errors.js';
import { abortExchange, type H1Connection, type OnConnection } from '../../upstream/h1-connection.js';
import { CONNECT_FAILOVERS } from '../../upstream/retry.js';
import type { ChunkHolder } from '../../upstream/h1/connection.js';
import type { Target } from '../../upstream/target.js';
import type { Upstream } from '../../upstream/upstream.js';
import type { RequestContext, ResponseHead } from '../../snapshot/snapshot.js';
import { writeError } from '../respond.js';
import { deadlineLeft, passDeadline } from './grpc-deadline.js';
import { admit, pickTarget, type Done } from './phases.js';
import type { UpstreamPolicies } from './policies.js';
import { DOWNSTREAM_CLOSED, endResponse, failResponse, forwardChunk, forwardHead, writeHead, type BodySink, type RawFields } from './response-writer.js';
import { contentLength, DRAIN_LIMIT, notSent, readReplayable, replayable, retriesError } from './retry.js';

const DEADLINE = new GatewayError('DEADLINE_EXCEEDED');
/** Aborts a retried try whose response body is not worth reading to the end. */
const RETRIED = new Error('response dropped for a retry');

/** A try whose response head has not arrived yet. */
const PENDING = 0;
/** Its response is going downstream: no retry any more. */
const FORWARDING = 1;
/** A retry took over (or the exchange ended without it); the rest of its response is dropped. */
const DISCARDING = 2;

/**
 * The upstreamRequest phase (exchange/phases.ts) of a proxied request:
 * pickTarget, dispatch the outbound request on the target's keep-alive
 * pool (`dispatch` with undici's handler contract: the gateway's HTTP/1.1
 * client in upstream/h1/, the HTTP/2 pool, undici for upgrades), and stream
 * the response straight into the downstream one with backpressure both
 * ways (the pool pipes the request body; the response pauses the upstream
 * socket while the downstream one is full). `done` (the log phase) runs exactly once when it is over.
 *
 * Retry = pick again while the error is retryable (exchange/retry.ts): up
 * to 1 + `retries.attempts` tries, plus connect failovers, each through
 * the route's policies (exchange/policies.ts) and to a target not tried
 * yet when there is one.
 *
 * - A request body is replayable only when it was buffered: bodies up to
 *   `retryBufferBytes` are read first and sent from memory; a larger one is
 *   streamed and the request is not retried. Requests whose method is not
 *   idempotent are not retried unless `retryNonIdempotent` is set.
 * - A try is retried on a retryable failure before any response byte or a
 *   response status listed in `on`, if a retry is left, the budget allows
 *   one and the client is still there; the retried response's body is
 *   dropped, never sent (read to its end when it is sized and small, so
 *   the connection is reused; otherwise its connection is closed). Once a
 *   response head is forwarded there is no retry.
 * - The breaker rejects at once (503 CIRCUIT_OPEN or the fallback) when it
 *   is open or `maxConcurrent` calls are in flight; each try's outcome is
 *   recorded in it when its response head (or failure) arrives.
 *
 * A route without policies (`policies === null`) allocates the exchange,
 * one UpstreamCall and one bound close listener; each policy hook is one
 * null check.
 */
export function upstreamRequest(ctx: RequestContext, done: Done): void {
  const route = ctx.route!;
  ctx.upstream = route.upstream!;
  new Exchange(ctx, done, route.upstream!, route.policies).start();
}

function onDeadline(x: Exchange): void {
  x.deadlinePassed();
}

function onRetryDue(x: Exchange): void {
  x.retryDue();
}

/** One proxied request, over all its tries. */
class Exchange {
  readonly ctx: RequestContext;
  readonly upstream: Upstream;
  readonly policies: UpstreamPolicies | null;
  private readonly done: Done;
  /** Retries left (never more than the policy's attempts; 0 without retries). */
  private retriesLeft = 0;
  private retries = 0;
  /** The first try's target; then `tried` lists every try's once there is a second. */
  private first: Target | null = null;
  private tried: Target[] | null = null;
  /** Connect failovers taken (retry.ts CONNECT_FAILOVERS). */
  private failovers = 0;
  private call: UpstreamCall | null = null;
  private timer: NodeJS.Timeout | null = null;
  private buffering = false;
  finished = false;
  private deadline: NodeJS.Timeout | null = null;

  constructor(ctx: RequestContext, done: Done, upstream: Upstream, policies: UpstreamPolicies | null) {
    this.ctx = ctx;
    this.done = done;
    this.upstream = upstream;
    this.policies = policies;
  }

  start(): void {
    const ctx = this.ctx;
    // A bound listener, not a property added to the response: a new property on node:http's own objects changes
    // their shape per request and slows node's code that reads them (measured: HTTP/2 requests 30 % slower).
    ctx.res.on('close', this.onDownstreamClose);
    if (ctx.grpcTimeout > 0) this.deadline = setTimeout(onDeadline, deadlineLeft(ctx), this);
    const p = this.policies;
    if (p !== null) {
      ctx.out.headersTimeout = p.headersTimeout;
      const retry = p.retry;
      if (retry !== null) {
        retry.budget.onRequest();
        if (retry.allowsMethod(ctx.req.method!)) this.retriesLeft = retry.attempts;
        // A body already in memory (the lean HTTP/1.1 engine's) is replayable as it is.
        if (ctx.hasBody && !Buffer.isBuffer(ctx.out.body)) {
          if (this.retriesLeft > 0 && ctx.contentLength <= retry.bufferBytes) return this.bufferBody(retry.bufferBytes);
          // Streamed: sent once.
          this.retriesLeft = 0;
        }
      }
    }
    this.startTry();
  }

  /** Reads a body of known small size, or a chunked one up to the limit, so that a retry can send it again. */
  private bufferBody(limit: number): void {
    this.buffering = true;
    readReplayable(this.ctx.req, limit).then(
      (body) => {
        this.buffering = false;
        if (this.finished) return;
        this.ctx.out.body = body;
        if (!Buffer.isBuffer(body)) this.retriesLeft = 0;
        this.startTry();
      },
      () => {
        this.buffering = false;
        this.finishAborted();
      },
    );
  }

  /** One try: the breaker's admission, pickTarget, dispatch. */
  private startTry(): void {
    if (this.finished) return;
    const ctx = this.ctx;
    const permit = admit(ctx, this.policies);
    if (permit < 0) return this.finish();
    if (this.first !== null) this.tried ??= [this.first];
    const target = pickTarget(ctx, this.tried);
    if (target === undefined) {
      if (permit > 0) this.policies!.breaker!.release(permit, false);
      writeError(ctx, new GatewayError('NO_TARGET'));
      return this.finish();
    }
    if (this.first === null) this.first = target;
    else this.tried!.push(target);
    if (ctx.grpcTimeout > 0) passDeadline(ctx);
    const call = new UpstreamCall(this, target, permit);
    this.call = call;
    target.inflight++;
    if (ctx.upstreamStartedAt === 0n) ctx.upstreamStartedAt = call.startedAt;
    this.upstream.poolFor(target).dispatch(ctx.out, call);
  }

  /** A try's response head arrived: forward it, or drop it and retry. Returns undici's keep-reading flag. */
  onHead(call: UpstreamCall, status: number, raw: Buffer[], endStream: boolean): boolean {
    const ctx = this.ctx;
    if (this.finished) {
      // The exchange ended while this try was connecting (a gRPC deadline): nothing of it goes downstream.
      call.mode = DISCARDING;
      call.cancel(DOWNSTREAM_CLOSED);
      return false;
    }
    ctx.upstreamStatus = status;
    const now = process.hrtime.bigint();
    call.target.observeLatency(Number(now - call.startedAt) / 1e6);
    const p = this.policies;
    if (p !== null) {
      const breaker = p.breaker;
      if (breaker !== null) {
        breaker.record(call.permit, !breaker.isFailure(status));
        call.recorded = true;
      }
      if (p.passive !== null) p.passive.observeStatus(call.target, status);
      if (p.retry !== null && p.retry.retriesStatus(status) && this.mayRetry()) {
        call.mode = DISCARDING;
        this.scheduleRetry();
        const length = contentLength(raw);
        if (length >= 0 && length <= DRAIN_LIMIT) return true;
        call.cancel(RETRIED);
        return false;
      }
    }
    call.mode = FORWARDING;
    ctx.upstreamHeadersAt = now;
    const err = forwardHead(ctx, status, raw, call, endStream);
    if (err === null) return true;
    call.cancel(err);
    return false;
  }

  /** A try failed (undici's onError): retry, fail over, or answer the error. */
  onCallError(call: UpstreamCall, err: Error): void {
    const ctx = this.ctx;
    if (call.mode === DISCARDING || this.finished) return call.end();
    if (err === DOWNSTREAM_CLOSED || ctx.closed) {
      call.end();
      return this.finishAborted();
    }
    const e = fromUpstreamError(err, call.mode === FORWARDING && this.upstream.config.protocol === 'http1');
    const p = this.policies;
    // A passed deadline is the client's clock, not the target's fault.
    if (p !== null && p.passive !== null && e !== DEADLINE) p.passive.failure(call.target, e.code);
    if (call.mode === FORWARDING || e === DEADLINE) {
      // After the head was taken for downstream (or could not be written): never retried.
      call.end();
      failResponse(ctx, e);
      return this.finish();
    }
    if (p !== null && p.breaker !== null) {
      p.breaker.record(call.permit, false);
      call.recorded = true;
    }
    call.end();
    if (p !== null && p.retry !== null && retriesError(p.retry, e) && this.mayRetry()) return this.scheduleRetry();
    if (notSent(e, err, call.abort !== null) && this.mayFailover()) {
      this.call = null;
      return this.startTry();
    }
    failResponse(ctx, e);
    this.finish();
  }

  onComplete(call: UpstreamCall, trailers: RawFields | null): void {
    call.end();
    if (call.mode !== FORWARDING) return;
    endResponse(this.ctx, call, trailers);
    this.finish();
  }

  /** A connect failover is possible: one is left, the client is there, the body can be sent again and a target was not tried. */
  private mayFailover(): boolean {
    if (this.failovers >= CONNECT_FAILOVERS || this.ctx.closed || !replayable(this.ctx.out.body)) return false;
    if (!this.upstream.hasUntried(this.tried ?? [this.first!])) return false;
    this.failovers++;
    return true;
  }

  /** Takes a retry if one is left, the budget allows it and the client is still there. */
  private mayRetry(): boolean {
    if (this.retriesLeft <= 0 || this.ctx.closed) return false;
    if (!this.policies!.retry!.budget.tryRetry()) return false;
    this.retriesLeft--;
    return true;
  }

  private scheduleRetry(): void {
    this.call = null;
    this.timer = setTimeout(onRetryDue, this.policies!.retry!.backoffMs(++this.retries), this);
  }

  retryDue(): void {
    this.timer = null;
    this.startTry();
  }

  /** The gRPC call's deadline passed: cancel the try in flight, or end the wait before a try. */
  deadlinePassed(): void {
    this.deadline = null;
    if (this.finished) return;
    const c = this.call;
    if (this.timer === null && !this.buffering && c !== null && !c.ended && c.abort !== null) return c.cancel(DEADLINE);
    writeError(this.ctx, DEADLINE);
    this.finish();
  }

  /** A client that goes away aborts the try in flight, or ends the wait before a try. */
  private readonly onDownstreamClose = (): void => this.downstreamClosed();

  downstreamClosed(): void {
    if (this.finished) return;
    if (this.timer !== null || this.buffering) return this.finishAborted();
    const c = this.call;
    if (c !== null && !c.ended) c.cancel(DOWNSTREAM_CLOSED);
  }

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

/**
 * One try of an exchange: its dispatch handler, in undici's core handler
 * contract, which every pool keeps (raw header buffers, boolean
 * backpressure), plus `holdsChunk` for readers that reuse their buffers.
 */
class UpstreamCall implements Dispatcher.DispatchHandler, BodySink, OnConnection, ChunkHolder {
  readonly exchange: Exchange;
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
  /** The upstream's Content-Length, or -1: lets the last chunk go out with `end`, in one write. */
  remaining = -1;
  head: ResponseHead | null = null;
  private resume: (() => void) | null = null;

  constructor(exchange: Exchange, target: Target, permit: number) {
    this.exchange = exchange;
    this.target = target;
    this.permit = permit;
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abort = abort;
    if (this.exchange.ctx.closed || this.exchange.finished) abortExchange(this, abort, DOWNSTREAM_CLOSED);
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void, _text?: string, endStream?: boolean): boolean {
    if (status < 200) return true; // 1xx interim responses are not forwarded on HTTP/1.1 (Node answers 100-continue itself).
    this.resume = resume;
    return this.exchange.onHead(this, status, raw, endStream === true);
  }

  onData(chunk: Buffer): boolean {
    if (this.mode !== FORWARDING) return true;
    const ctx = this.exchange.ctx;
    if (this.head !== null) {
      const err = writeHead(ctx, this);
      if (err !== null) {
        this.cancel(err);
        return false;
      }
    }
    return forwardChunk(ctx, this, chunk, this.resume!);
  }

  onComplete(trailers: RawFields | null): void {
    this.exchange.onComplete(this, trailers);
  }

  /** Whether the last body chunk is still referenced downstream (not yet handed to the kernel): see upstream/h1/connection.ts ChunkHolder. */
  holdsChunk(): boolean {
    return this.mode === FORWARDING && this.exchange.ctx.res.writableLength > 0;
  }

  onError(err: Error): void {
    this.exchange.onCallError(this, err);
  }

  /** Ends this try once it is on a connection (h1-connection.ts abortExchange). */
  cancel(err: Error): void {
    if (this.abort !== null) abortExchange(this, this.abort, err);
  }

  /** Releases the target and the breaker permit, once. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.target.inflight--;
    if (this.permit > 0) this.exchange.policies!.breaker!.release(this.permit, this.recorded);
  }
}
