import { GatewayError } from '../../errors.js';
import type { RequestContext } from '../../snapshot/snapshot.js';
import { writeError } from '../respond.js';

/**
 * The inbound side of an HTTP/1.x connection while an exchange runs: which
 * request's body the socket is reading (so that a framing error found by
 * node:http's parser reaches that request), and whether the connection ends
 * after the current answer.
 */

/** Set on an HTTP/1.x socket whose connection ends after the current answer: requests parsed after it are not served. */
const CLOSING = Symbol('portico.closing');
type ClosingSocket = { [CLOSING]?: boolean };

/** Whether `socket`'s connection ends after the answer in progress (requests pipelined behind it are dropped unanswered). */
export function isClosing(socket: object): boolean {
  return (socket as ClosingSocket)[CLOSING] === true;
}

/** Ends `ctx`'s HTTP/1.x connection after its answer (`Connection: close`); requests pipelined behind it are dropped unanswered. */
export function closeAfterAnswer(ctx: RequestContext): void {
  ctx.res.shouldKeepAlive = false;
  // A lean connection (http1/connection.ts) takes no request after a `Connection: close` answer by itself.
  if (!isLean(ctx.req)) (ctx.req.socket as ClosingSocket)[CLOSING] = true;
}

/**
 * A request of the lean HTTP/1.1 engine (http1/request.ts): read whole,
 * head and body, before the lifecycle sees it; its connection keeps its
 * own state, so nothing is noted on its socket.
 */
export function isLean(req: object): boolean {
  return (req as { lean?: unknown }).lean === true;
}

/** The body of a lean request, read whole (a Buffer), or null. */
export function leanBody(req: object): Buffer | null {
  return (req as { body?: Buffer | null }).body ?? null;
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
 * complete one (`releaseBody`), so an idle connection keeps no request alive.
 */
export function readingBody(socket: object, ctx: RequestContext | undefined): void {
  (socket as ReadingSocket)[READING] = ctx;
}

/** The request whose body `socket` is reading now, if any. */
export function bodyBeingRead(socket: object): RequestContext | undefined {
  const ctx = (socket as ReadingSocket)[READING];
  return ctx !== undefined && !ctx.req.complete ? ctx : undefined;
}

/** Lets go of a complete request's body watch (called by the log phase). */
export function releaseBody(ctx: RequestContext): void {
  if (ctx.h2 || !ctx.req.complete) return;
  const socket = ctx.req.socket as ReadingSocket | null;
  if (socket !== null && socket[READING] === ctx) socket[READING] = undefined;
}

/** The error `failBody` recorded for `ctx`, if its body broke off. */
export function bodyFailureOf(ctx: RequestContext): GatewayError | undefined {
  return bodyFailures.get(ctx);
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
