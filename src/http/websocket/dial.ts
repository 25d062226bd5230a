import type { Socket } from 'node:net';
import type { Dispatcher } from 'undici';
import { GatewayError, fromUpstreamError } from '../../errors.js';
import { abortExchange, type H1Connection, type OnConnection } from '../../upstream/h1-connection.js';
import { CONNECT_FAILOVERS } from '../../upstream/retry.js';
import type { Target } from '../../upstream/target.js';
import type { RequestContext, ResponseHead } from '../../snapshot/snapshot.js';
import { admit, pickTarget, type Done } from '../exchange/phases.js';
import { DOWNSTREAM_CLOSED, responseFilter, type RawFields } from '../exchange/response-writer.js';
import { notSent } from '../exchange/retry.js';
import { toGatewayError, writeError } from '../respond.js';
import { unwatchHandshake } from './handshake-watch.js';
import type { WebSocketSessions } from './sessions.js';
import { Tunnel } from './tunnel.js';

/** Waiting for the upstream's answer. */
const WAITING = 0;
/** A non-101 answer is going to the client as a plain response. */
const ANSWERING = 1;
/** The handshake is over (101 or not). */
const OVER = 2;

/**
 * The upstreamRequest phase of a WebSocket upgrade (RFC 6455 §4), through
 * the same pickTarget, breaker admission (exchange/phases.ts), outbound
 * request (exchange/outbound.ts) and responseFilter
 * (exchange/response-writer.ts) as every exchange: the client's handshake
 * is sent through the target's connection pool as an undici upgrade
 * request, with the headers the requestFilter phase built (the client's
 * Sec-WebSocket-Key, -Version, -Protocol, -Extensions, Origin, cookies and
 * credentials end to end, plus X-Forwarded-* and X-Request-Id; undici adds
 * `Connection: upgrade` and `Upgrade: websocket`).
 *
 * - 101: the upstream's head goes to the client (its Sec-WebSocket-Accept,
 *   -Protocol, -Extensions and other headers verbatim, hop-by-hop ones
 *   replaced by `Upgrade: websocket` and `Connection: Upgrade`, after the
 *   route's response middlewares) and a Tunnel joins the two sockets.
 * - Any other answer goes to the client as a plain response, body
 *   included, and the connection closes.
 * - Failures before an answer are gateway errors, as for plain requests:
 *   502 refused/reset, 504 connect or response-head timeout (the pool's),
 *   503 no target or circuit open.
 *
 * Upstream policies: the circuit breaker covers the handshake (a permit is
 * taken before the dial and released when the answer is in; a 101 is a
 * success, other statuses count by `circuitBreaker.statuses`), not the
 * session. Passive health sees connect failures and answer statuses. No
 * retries: a handshake is sent once; a connect failure (nothing was
 * sent) goes to another target, as for plain requests (retry.ts
 * CONNECT_FAILOVERS). The target's `inflight` counts the
 * session until it ends, so least-connections balances live sessions.
 * HTTP/2 upstreams (`protocol: h2 | h2c`) are refused with 502: WebSocket
 * over HTTP/2 (RFC 8441) is not supported. `done` (the log phase) runs
 * once: after a non-101 answer, or when the session ends.
 */
export function dialUpstream(ctx: RequestContext, client: Socket, head: Buffer, sessions: WebSocketSessions, ticket: number, done: Done): void {
  const route = ctx.route!;
  const upstream = route.upstream!;
  ctx.upstream = upstream;
  if (upstream.config.protocol !== 'http1') {
    writeError(
      ctx,
      new GatewayError(
        'UPSTREAM_PROTOCOL_ERROR',
        `upstream "${upstream.name}" uses protocol ${upstream.config.protocol}: WebSocket over HTTP/2 (RFC 8441) is not supported, use an http1 upstream`,
      ),
    );
    return done(ctx);
  }
  const out = ctx.out;
  out.upgrade = 'websocket';
  // The breaker's timeout when it is shorter than the pool's response timeout (no retries for a handshake).
  out.headersTimeout = upstream.headersTimeout;
  dialTarget(ctx, client, head, sessions, ticket, done, null);
}

/**
 * One handshake try: the breaker's admission, then pickTarget — the
 * balancer's pick, or (`tried` set: a connect failover) one not tried yet.
 */
function dialTarget(ctx: RequestContext, client: Socket, head: Buffer, sessions: WebSocketSessions, ticket: number, done: Done, tried: Target[] | null): void {
  const policies = ctx.route!.policies;
  const permit = admit(ctx, policies);
  if (permit < 0) return done(ctx);
  const target = pickTarget(ctx, tried);
  if (target === undefined) {
    if (permit > 0) policies!.breaker!.release(permit, false);
    writeError(ctx, new GatewayError('NO_TARGET'));
    return done(ctx);
  }
  const handshake = new UpstreamHandshake(ctx, client, head, target, permit, sessions, ticket, done, tried);
  target.inflight++;
  if (ctx.upstreamStartedAt === 0n) ctx.upstreamStartedAt = process.hrtime.bigint();
  client.on('close', handshake.onClientClose);
  ctx.upstream!.poolFor(target).dispatch(ctx.out, handshake);
}

/** undici's core handler for the upgrade request (see exchange/exchange.ts UpstreamCall for why the core interface). */
class UpstreamHandshake implements Dispatcher.DispatchHandler, OnConnection {
  private readonly ctx: RequestContext;
  private readonly client: Socket;
  private readonly head: Buffer;
  private readonly target: Target;
  private readonly permit: number;
  private readonly sessions: WebSocketSessions;
  private readonly ticket: number;
  private readonly done: Done;
  private abort: ((err?: Error) => void) | null = null;
  upstreamConnection: H1Connection | null = null;
  private resume: (() => void) | null = null;
  private state = WAITING;
  private recorded = false;
  /** Targets whose connect failed before this try (null: the first try). */
  private readonly tried: Target[] | null;

  constructor(
    ctx: RequestContext,
    client: Socket,
    head: Buffer,
    target: Target,
    permit: number,
    sessions: WebSocketSessions,
    ticket: number,
    done: Done,
    tried: Target[] | null,
  ) {
    this.tried = tried;
    this.ctx = ctx;
    this.client = client;
    this.head = head;
    this.target = target;
    this.permit = permit;
    this.sessions = sessions;
    this.ticket = ticket;
    this.done = done;
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abort = abort;
    if (this.client.destroyed) abortExchange(this, abort, DOWNSTREAM_CLOSED);
  }

  /** Ends the upstream request once it is on a connection (h1-connection.ts abortExchange). */
  private cancel(err: Error): void {
    if (this.abort !== null) abortExchange(this, this.abort, err);
  }

  /** 101: answer the client with the upstream's head and start the session. */
  onUpgrade(status: number, raw: Buffer[] | string[] | null, socket: unknown): void {
    const upstreamSocket = socket as Socket;
    const ctx = this.ctx;
    this.arrived(status);
    this.endHandshake();
    const client = this.client;
    if (client.destroyed || !client.writable) {
      upstreamSocket.destroy();
      ctx.status = 499;
      ctx.error = DOWNSTREAM_CLOSED;
      this.target.inflight--;
      return this.over();
    }
    let text: string;
    try {
      text = switchingProtocolsHead(ctx, raw ?? []);
    } catch (err) {
      // A response middleware failed: the upstream session is dropped, the client gets the error.
      upstreamSocket.destroy();
      writeError(ctx, toGatewayError(err));
      this.target.inflight--;
      return this.over();
    }
    ctx.status = 101;
    ctx.res.detachSocket(client);
    unwatchHandshake(client);
    client.write(text, 'latin1');
    const ws = ctx.route!.config.websocket;
    const target = this.target;
    const sessions = this.sessions;
    const done = this.done;
    const tunnel = new Tunnel(ctx, client, upstreamSocket, { idleTimeout: ws.idleTimeout, maxFrameSize: ws.maxFrameSize }, (t) => {
      sessions.delete(t);
      target.inflight--;
      done(t.ctx);
    });
    tunnel.start(this.head);
    if (!sessions.open(tunnel, this.ticket)) tunnel.goAway();
  }

  /** Any other answer: forwarded as a plain response (no upgrade). */
  onHeaders(status: number, raw: Buffer[], resume: () => void): boolean {
    if (status < 200) return true;
    const ctx = this.ctx;
    this.resume = resume;
    this.arrived(status);
    this.state = ANSWERING;
    let head: ResponseHead;
    try {
      head = responseFilter(ctx, status, raw, null);
    } catch (err) {
      this.cancel(toGatewayError(err));
      return false;
    }
    ctx.status = head.status;
    const res = ctx.res;
    if (res.destroyed) {
      this.cancel(DOWNSTREAM_CLOSED);
      return false;
    }
    try {
      res.writeHead(head.status, head.headers);
    } catch (err) {
      this.cancel(new GatewayError('UPSTREAM_PROTOCOL_ERROR', `invalid response header: ${(err as Error).message}`));
      return false;
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    const res = this.ctx.res;
    this.ctx.bytesSent += chunk.length;
    if (res.write(chunk)) return true;
    res.once('drain', this.resume!);
    return false;
  }

  onComplete(): void {
    const res = this.ctx.res;
    if (!res.writableEnded) res.end();
    this.endHandshake();
    this.target.inflight--;
    this.over();
  }

  onError(err: Error): void {
    if (this.state === OVER) return;
    const ctx = this.ctx;
    if (err === DOWNSTREAM_CLOSED || this.client.destroyed) {
      ctx.error = DOWNSTREAM_CLOSED;
      ctx.status ||= 499;
      this.client.destroy();
    } else {
      const e = fromUpstreamError(err, this.state === ANSWERING);
      const passive = ctx.route!.policies?.passive;
      if (passive != null) passive.failure(this.target, e.code);
      if (this.state === WAITING) {
        this.record(false);
        // A connect failure before the handshake was written reached nothing: another target (exchange/exchange.ts does the same).
        if (notSent(e, err, this.abort !== null) && this.failover()) return;
      }
      // A non-101 answer cut after its head went out: the client connection is closed, and the log says why.
      const cut = ctx.res.headersSent;
      writeError(ctx, e);
      if (cut) ctx.status = e.status;
    }
    this.endHandshake();
    this.target.inflight--;
    this.over();
  }

  /** Sends the handshake to a target not tried yet (retry.ts CONNECT_FAILOVERS); false when none is left. */
  private failover(): boolean {
    const tried = this.tried ?? [];
    if (tried.length >= CONNECT_FAILOVERS || this.client.destroyed) return false;
    tried.push(this.target);
    if (!this.ctx.upstream!.hasUntried(tried)) return false;
    this.endHandshake();
    this.target.inflight--;
    dialTarget(this.ctx, this.client, this.head, this.sessions, this.ticket, this.done, tried);
    return true;
  }

  /** A client that goes away during the handshake (or the non-101 answer) aborts the upstream request. */
  readonly onClientClose = (): void => {
    if (this.state !== OVER) this.cancel(DOWNSTREAM_CLOSED);
  };

  /** The upstream's answer head is in. */
  private arrived(status: number): void {
    const ctx = this.ctx;
    ctx.upstreamStatus = status;
    ctx.upstreamHeadersAt = process.hrtime.bigint();
    this.target.observeLatency(Number(ctx.upstreamHeadersAt - ctx.upstreamStartedAt) / 1e6);
    const p = ctx.route!.policies;
    if (p === null) return;
    if (p.passive !== null) p.passive.observeStatus(this.target, status);
    if (p.breaker !== null) this.record(status === 101 || !p.breaker.isFailure(status));
  }

  private record(ok: boolean): void {
    const breaker = this.ctx.route!.policies?.breaker;
    if (breaker == null || this.recorded) return;
    breaker.record(this.permit, ok);
    this.recorded = true;
  }

  /** The handshake no longer needs the breaker permit nor the client-close watch. */
  private endHandshake(): void {
    if (this.state === OVER) return;
    this.state = OVER;
    if (this.permit > 0) this.ctx.route!.policies!.breaker!.release(this.permit, this.recorded);
    this.client.off('close', this.onClientClose);
  }

  private over(): void {
    this.done(this.ctx);
  }
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * The 101 head for the client (RFC 6455 §4.2.2): the upstream's headers
 * as the responseFilter phase leaves them (a middleware cannot change the status of
 * a 101), with `Upgrade: websocket` and `Connection: Upgrade`. A header a
 * middleware made invalid is left out rather than written raw.
 */
function switchingProtocolsHead(ctx: RequestContext, raw: RawFields): string {
  const { headers } = responseFilter(ctx, 101, raw, null);
  let out = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n';
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) continue;
    // A 1xx response has no content (RFC 9110 §8.6).
    if (name.length === 14 && name.toLowerCase() === 'content-length') continue;
    out += `${name}: ${value}\r\n`;
  }
  return out + '\r\n';
}
