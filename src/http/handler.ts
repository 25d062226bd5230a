import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError } from '../errors.js';
import { type ListenerRuntime, RequestContext } from '../snapshot/snapshot.js';
import { readInbound, type InboundView } from './forwarded.js';
import { splitTarget } from './path.js';
import { proxy } from './proxy.js';
import { toGatewayError, writeDirectResponse, writeError } from './respond.js';

/**
 * The request lifecycle of an HTTP listener, on the snapshot that was
 * current when the request arrived:
 *   match → request middlewares → (direct response | proxy) → log.
 * The log phase always runs, after errors too.
 */
export function handleRequest(listener: ListenerRuntime, req: IncomingMessage, res: ServerResponse, h2 = false): void {
  // A request pipelined behind one that was refused: its connection closes after that answer, unread.
  if (!h2 && (req.socket as ClosingSocket)[CLOSING] === true) return;
  const inbound = readInbound(req, listener.trustedProxies, listener.tls, h2);
  const ctx = createContext(listener, req, res, inbound, h2);
  const bad = readTarget(ctx, inbound);
  if (bad !== null) return refuse(ctx, bad);
  if (!h2) readingBody(req.socket, inbound.hasBody ? ctx : undefined);

  const route = listener.router.match(ctx.host, ctx.path, req.method!, req);
  if (route === undefined) return fail(ctx, new GatewayError('ROUTE_NOT_FOUND'));
  ctx.route = route;
  ctx.upstreamPath = ctx.path;

  let pending: void | Promise<void>;
  try {
    pending = route.chain.runRequest(ctx);
  } catch (err) {
    return fail(ctx, toGatewayError(err));
  }
  if (pending === undefined) forward(ctx);
  else pending.then(() => forward(ctx), (err: unknown) => fail(ctx, toGatewayError(err)));
}

/** A request's context from the one-pass view of its head (forwarded.ts). Shared with the upgrade lifecycle. */
export function createContext(listener: ListenerRuntime, req: IncomingMessage, res: ServerResponse, inbound: InboundView, h2 = false): RequestContext {
  const ctx = new RequestContext(req, res, listener, inbound.requestId ?? randomUUID(), inbound.clientIp, h2);
  ctx.upstreamHeaders = inbound.headers;
  ctx.hostHeader = inbound.authority;
  ctx.hasBody = inbound.hasBody;
  ctx.contentLength = inbound.contentLength;
  if (inbound.grpcTimeout !== undefined) {
    ctx.grpc = true;
    ctx.grpcTimeout = inbound.grpcTimeout;
  }
  return ctx;
}

const BAD_TARGET = 'invalid request target';

/**
 * Sets the context's path, query and host (the authority's, see
 * forwarded.ts) from the request head; returns why the request must be
 * refused, or null. Besides the head's own refusal (Host, authority,
 * Transfer-Encoding): a target that is not origin-form, absolute-form
 * http(s) or `*` (RFC 9112 §3.2); `*` on any method but OPTIONS (RFC 9112
 * §3.2.4); on HTTP/2 a `:path` that is not a path or `*` (RFC 9113 §8.3.1).
 */
export function readTarget(ctx: RequestContext, inbound: InboundView): GatewayError | null {
  const url = ctx.req.url ?? '';
  const target = splitTarget(url);
  if (target !== undefined) {
    // Set before any refusal, so that the log line of a refused request has its path.
    ctx.path = target.path;
    ctx.query = target.query;
  }
  if (inbound.refusal !== undefined) return inbound.refusal;
  if (target === undefined || (url === '*' ? ctx.req.method !== 'OPTIONS' : ctx.h2 && url.charCodeAt(0) !== 47 /* / */)) {
    return new GatewayError('BAD_REQUEST', BAD_TARGET);
  }
  ctx.host = inbound.hostname;
  return null;
}

function forward(ctx: RequestContext): void {
  // The client left, or its body broke its framing while the middlewares ran (failBody answered it).
  if (ctx.closed || ctx.res.headersSent) {
    ctx.status ||= 499;
    return log(ctx);
  }
  if (!answerLocally(ctx)) proxy(ctx, log);
}

/**
 * The route's own answer, when it has one (`respond:` or an endpoint such
 * as the token endpoint), written and logged; false when the request is
 * to be proxied. Shared with the upgrade lifecycle (upgrade.ts).
 */
export function answerLocally(ctx: RequestContext): boolean {
  const route = ctx.route!;
  if (route.respond !== undefined) {
    writeDirectResponse(ctx, route.respond);
    log(ctx);
    return true;
  }
  if (route.endpoint === undefined) return false;
  let pending: void | Promise<void>;
  try {
    pending = route.endpoint(ctx);
  } catch (err) {
    fail(ctx, toGatewayError(err));
    return true;
  }
  if (pending === undefined) log(ctx);
  else pending.then(() => log(ctx), (err: unknown) => fail(ctx, toGatewayError(err)));
  return true;
}

/** Answers with a gateway error and logs the request. */
export function fail(ctx: RequestContext, err: GatewayError): void {
  writeError(ctx, err);
  log(ctx);
}

/**
 * Refuses a request whose head is invalid (readTarget), and closes its
 * HTTP/1.x connection after the answer: the framing of what follows on
 * it cannot be trusted (RFC 9112 §3.2, §6.3).
 */
export function refuse(ctx: RequestContext, err: GatewayError): void {
  if (!ctx.h2) closeAfterAnswer(ctx);
  fail(ctx, err);
}

/** Set on an HTTP/1.x socket whose connection ends after the current answer: requests parsed after it are not served. */
const CLOSING = Symbol('portico.closing');
type ClosingSocket = { [CLOSING]?: boolean };

/** Ends `ctx`'s HTTP/1.x connection after its answer (`Connection: close`); requests pipelined behind it are dropped unanswered. */
function closeAfterAnswer(ctx: RequestContext): void {
  ctx.res.shouldKeepAlive = false;
  (ctx.req.socket as ClosingSocket)[CLOSING] = true;
}

/** The cause a request failed with when its body broke off (failBody); it outranks what the phases record after it. */
const bodyFailures = new WeakMap<RequestContext, GatewayError>();
/** The HTTP/1.x request whose body a socket is reading (one at a time: node:http parses requests in order). */
const READING = Symbol('portico.readingBody');
type ReadingSocket = { [READING]?: RequestContext };

/**
 * Notes the request whose body `socket` reads now (undefined: none), so
 * that a framing error on that socket finds it (bodyBeingRead). Each
 * request replaces the previous one, and the log phase lets go of a
 * complete one, so an idle connection keeps no request alive.
 */
function readingBody(socket: object, ctx: RequestContext | undefined): void {
  (socket as ReadingSocket)[READING] = ctx;
}

/** The request whose body `socket` is reading now, if any. */
export function bodyBeingRead(socket: object): RequestContext | undefined {
  const ctx = (socket as ReadingSocket)[READING];
  return ctx !== undefined && !ctx.req.complete ? ctx : undefined;
}

/**
 * A request's body broke off on the gateway's side: its framing was
 * invalid (a bad chunk, an unknown coding) or `timeouts.request` expired.
 * The client gets the error's status (400/501/408, with `Connection:
 * close`) if no response byte was sent, else its connection is cut. The
 * response closing aborts the upstream request, if one was started, so
 * the upstream never takes the partial body for a whole one. Whatever the
 * phases record afterwards (a 499 from that abort), the log says `err`.
 * A request already answered in full keeps its answer.
 */
export function failBody(ctx: RequestContext, err: GatewayError): void {
  const res = ctx.res;
  if (res.writableEnded) return;
  bodyFailures.set(ctx, err);
  closeAfterAnswer(ctx);
  if (!res.headersSent && !ctx.closed) {
    writeError(ctx, err);
  } else {
    ctx.error = err;
    res.destroy();
  }
}

/** The log phase: statistics and the access log, once per request (or WebSocket session). */
export function log(ctx: RequestContext): void {
  if (ctx.error !== undefined) ctx.error = bodyFailures.get(ctx) ?? ctx.error;
  if (!ctx.h2 && ctx.req.complete) {
    const socket = ctx.req.socket as ReadingSocket | null;
    if (socket !== null && socket[READING] === ctx) socket[READING] = undefined;
  }
  ctx.listener.stats.record(ctx);
  ctx.listener.accessLog?.write(ctx);
}
