import { GatewayError } from '../../errors.js';
import { REJECTED_FULL } from '../../upstream/circuit-breaker.js';
import type { Target } from '../../upstream/target.js';
import type { RequestContext } from '../../snapshot/snapshot.js';
import { toGatewayError, writeDirectResponse, writeError } from '../respond.js';
import type { UpstreamPolicies } from './policies.js';
import { bodyFailureOf, releaseBody } from './request-body.js';

/**
 * The phases of one HTTP exchange, in order. Every listener runs the same
 * ones: plain HTTP/1.x and HTTP/2 requests and gRPC calls (handler.ts),
 * and WebSocket handshakes (upgrade.ts, websocket/dial.ts). Each runs on
 * the snapshot that was current when the request arrived, with one
 * RequestContext (snapshot/snapshot.ts) and one outbound request (outbound.ts).
 *
 * 1. match — when: once the request head is read and valid (a refused head
 *    skips to log). Result: the route, or none (404 ROUTE_NOT_FOUND, then
 *    log). Default: the listener's router.
 * 2. requestFilter — when: after match. The route's request middlewares
 *    (auth, limits, rewrites, header rules), compiled once per route, may
 *    edit the outbound request (`ctx.upstreamPath`, `ctx.upstreamHeaders`)
 *    or stop the request by throwing a GatewayError (answered with its
 *    status, then log). Then the route's own answer, if it has one (a
 *    `respond:` direct response or an endpoint such as the token
 *    endpoint), is written and logged instead of proxying (`answerLocally`).
 *    Default: no middleware, proxy.
 * 3. pickTarget — when: before each try (the first, each retry, each
 *    connect failover), after the breaker admitted it. Result: a target,
 *    set on `ctx.target` and the outbound request with its Host
 *    (`pickTarget`); none is 503 NO_TARGET. A retry or failover picks a
 *    target not tried yet when there is one. Default: the upstream's
 *    balancer.
 * 4. upstreamRequest — when: after pickTarget. The outbound request is
 *    dispatched on the target's keep-alive pool through the route's
 *    policies (exchange/policies.ts; null: none). Result: a response head,
 *    or an error; a retryable error (exchange/retry.ts) goes back to
 *    pickTarget. Default: one try, plus connect failover.
 * 5. responseFilter — when: the response head that goes downstream has
 *    arrived (never a retried one). Hop-by-hop headers are dropped, then
 *    the route's response middlewares may change status and headers
 *    (response-writer.ts `responseFilter`). Default: headers as received.
 * 6. log — when: EXACTLY ONCE per request or WebSocket session, on every
 *    path: refusals, no route, direct responses and endpoints, middleware
 *    rejections, upstream errors, the client going away, the end of a
 *    WebSocket session. It records statistics, writes the access-log
 *    line and ends the request's span (observability/tracing.ts); it never
 *    writes to the client. A second call is ignored.
 */

/** Called exactly once when an exchange (or a WebSocket session) is over, whatever the outcome: the log phase. */
export type Done = (ctx: RequestContext, error?: GatewayError) => void;

/** The log phase (see above). `error`, when given, is the cause the line records. */
export function log(ctx: RequestContext, error?: GatewayError): void {
  if (ctx.logged) return;
  ctx.logged = true;
  if (error !== undefined) ctx.error = error;
  if (ctx.error !== undefined) ctx.error = bodyFailureOf(ctx) ?? ctx.error;
  releaseBody(ctx);
  ctx.listener.stats.record(ctx);
  ctx.listener.accessLog?.write(ctx);
  ctx.listener.tracer?.record(ctx);
}

/** Answers with a gateway error, then the log phase. */
export function fail(ctx: RequestContext, err: GatewayError): void {
  writeError(ctx, err);
  log(ctx);
}

/**
 * Runs the requestFilter phase on a matched request, then `next(ctx)`: at
 * once when every middleware finished synchronously, else when they are
 * done. A middleware that throws or rejects answers the request (`fail`).
 */
export function requestFilter(ctx: RequestContext, next: (ctx: RequestContext) => void): void {
  let pending: void | Promise<void>;
  try {
    pending = ctx.route!.chain.runRequest(ctx);
  } catch (err) {
    return fail(ctx, toGatewayError(err));
  }
  if (pending === undefined) next(ctx);
  else pending.then(() => next(ctx), (err: unknown) => fail(ctx, toGatewayError(err)));
}

/**
 * The route's own answer, when it has one (`respond:` or an endpoint such
 * as the token endpoint), written and logged; false when the request is
 * to be proxied.
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

/**
 * The pickTarget phase: a target of `ctx.upstream` — the balancer's pick
 * for the first try, else (`tried` set) one not in `tried` when there is
 * one — set on the context and the outbound request, whose Host becomes
 * the inbound authority under `preserveHost`, else the target's address.
 * Undefined when the upstream has no target to pick.
 */
export function pickTarget(ctx: RequestContext, tried: readonly Target[] | null): Target | undefined {
  const upstream = ctx.upstream!;
  const target = tried === null ? upstream.pick(ctx) : upstream.pickOther(ctx, tried);
  if (target === undefined) return undefined;
  ctx.target = target;
  ctx.tries++;
  const host = ctx.route!.preserveHost && ctx.hostHeader !== undefined ? ctx.hostHeader : target.address;
  ctx.out.setTarget(target, host, ctx.requestId, upstream.serverNameFor(target));
  return target;
}

const CIRCUIT_OPEN = new GatewayError('CIRCUIT_OPEN');

/**
 * The breaker's admission of one try: a permit (> 0; 0 without a breaker),
 * or -1 after answering the rejection — 503 CIRCUIT_OPEN, or the
 * configured fallback answer while the response can still be written. The
 * caller then ends the exchange (the log phase).
 */
export function admit(ctx: RequestContext, policies: UpstreamPolicies | null): number {
  const breaker = policies === null ? null : policies.breaker;
  if (breaker === null) return 0;
  const permit = breaker.acquire();
  if (permit > 0) return permit;
  const err =
    permit === REJECTED_FULL
      ? new GatewayError('CIRCUIT_OPEN', `upstream has ${breaker.config.maxConcurrent} requests in flight (circuitBreaker.maxConcurrent)`)
      : CIRCUIT_OPEN;
  const fallback = policies!.fallback;
  if (fallback !== null && !ctx.res.headersSent && !ctx.closed) {
    ctx.error = err;
    writeDirectResponse(ctx, fallback);
  } else {
    writeError(ctx, err);
  }
  return -1;
}
