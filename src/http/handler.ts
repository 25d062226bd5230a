import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError } from '../errors.js';
import { type ListenerRuntime, RequestContext } from '../snapshot/snapshot.js';
import { upstreamRequest } from './exchange/exchange.js';
import { answerLocally, fail, log, requestFilter } from './exchange/phases.js';
import { closeAfterAnswer, isClosing, isLean, leanBody, readingBody } from './exchange/request-body.js';
import { readInbound, type InboundView } from './forwarded.js';
import { splitTarget } from './path.js';
import { beginTrace } from '../observability/trace-context.js';
import type { Readable } from 'node:stream';
import type { H2Request } from './h2/request.js';

export { bodyBeingRead, failBody } from './exchange/request-body.js';

/**
 * The entry of an HTTP/1.x or HTTP/2 request (a gRPC call included) into
 * the exchange phases of exchange/phases.ts, on the snapshot that was
 * current when the request arrived:
 *   match → requestFilter → (direct response | pickTarget → upstreamRequest
 *   → responseFilter) → log, exactly once.
 */
export function handleRequest(listener: ListenerRuntime, req: IncomingMessage, res: ServerResponse, h2 = false): void {
  // A request pipelined behind one that was refused: its connection closes after that answer, unread.
  if (!h2 && isClosing(req.socket)) return;
  const inbound = readInbound(req, listener.trustedProxies, listener.tls, h2);
  const ctx = createContext(listener, req, res, inbound, h2);
  const bad = readTarget(ctx, inbound);
  if (bad !== null) return refuse(ctx, bad);
  if (!h2 && !isLean(req)) readingBody(req.socket, inbound.hasBody ? ctx : undefined);
  if (!match(ctx)) return fail(ctx, new GatewayError('ROUTE_NOT_FOUND'));
  requestFilter(ctx, forward);
}

/** A request's context from the one-pass view of its head (forwarded.ts), with its outbound request. Shared with upgrade.ts. */
export function createContext(listener: ListenerRuntime, req: IncomingMessage, res: ServerResponse, inbound: InboundView, h2 = false): RequestContext {
  const ctx = new RequestContext(req, res, listener, inbound.requestId ?? randomUUID(), inbound.clientIp, h2);
  ctx.out.headers = inbound.headers;
  // W3C Trace Context: the upstream sees this request's span as the parent (the incoming trace's, or a new one).
  const trace = beginTrace(inbound.traceparent, inbound.tracestate, listener.tracer?.sample ?? 0);
  ctx.trace = trace;
  inbound.headers.push('traceparent', trace.traceparent);
  if (trace.tracestate !== undefined) inbound.headers.push('tracestate', trace.tracestate);
  // The body: an HTTP/2 request stream's readable side (http/h2/body.ts); a lean HTTP/1.1 request's, read whole,
  // from memory (it goes upstream, and to a retry, as a Buffer); else node:http's request stream.
  if (inbound.hasBody) ctx.out.body = h2 ? ((req as unknown as H2Request).body as unknown as Readable) : (leanBody(req) ?? req);
  ctx.hostHeader = inbound.authority;
  ctx.hasBody = inbound.hasBody;
  ctx.contentLength = inbound.contentLength;
  if (inbound.grpcTimeout !== undefined) {
    ctx.grpc = true;
    ctx.grpcTimeout = inbound.grpcTimeout;
  }
  return ctx;
}

/** The match phase: the route for the request (a configured one, else a claimed host's), set on the context with the outbound path; false when none matches. */
export function match(ctx: RequestContext): boolean {
  // Configured routes first; hosts claimed by tunnel agents only where none matches (claims is null without a tunnel).
  const route = ctx.listener.router.match(ctx.host, ctx.path, ctx.req.method!, ctx.req) ?? ctx.listener.claims?.match(ctx.host);
  if (route === undefined) return false;
  ctx.route = route;
  ctx.out.pathname = ctx.path;
  return true;
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

/** After requestFilter: the route's own answer, or the upstream request; the log phase either way. */
function forward(ctx: RequestContext): void {
  // The client left, or its body broke its framing while the middlewares ran (failBody answered it).
  if (ctx.closed || ctx.res.headersSent) {
    ctx.status ||= 499;
    return log(ctx);
  }
  if (!answerLocally(ctx)) upstreamRequest(ctx, log);
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
