import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError } from '../errors.js';
import type { ListenerRuntime } from '../listeners/listener-runtime.js';
import { RequestContext } from './context.js';
import { readInbound, type InboundView } from './forwarded.js';
import { normalizeHost } from './host.js';
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
  const ctx = createContext(listener, req, res, readInbound(req, listener.trustedProxies, listener.tls, h2), h2);
  if (!readTarget(ctx)) return fail(ctx, new GatewayError('BAD_REQUEST', 'invalid request target'));

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
  ctx.hostHeader = inbound.host;
  ctx.hasBody = inbound.hasBody;
  ctx.contentLength = inbound.contentLength;
  if (inbound.grpcTimeout !== undefined) {
    ctx.grpc = true;
    ctx.grpcTimeout = inbound.grpcTimeout;
  }
  return ctx;
}

/** Sets the context's path, query and normalized host from the request target; false when the target is invalid. */
export function readTarget(ctx: RequestContext): boolean {
  const target = splitTarget(ctx.req.url ?? '');
  if (target === undefined) return false;
  ctx.path = target.path;
  ctx.query = target.query;
  ctx.host = normalizeHost(ctx.hostHeader);
  return true;
}

function forward(ctx: RequestContext): void {
  if (ctx.closed) {
    ctx.status = 499;
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

/** The log phase: statistics and the access log, once per request (or WebSocket session). */
export function log(ctx: RequestContext): void {
  ctx.listener.stats.record(ctx);
  ctx.listener.accessLog?.write(ctx);
}
