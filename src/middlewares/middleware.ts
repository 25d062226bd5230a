import type { RequestContext, ResponseHead } from '../http/context.js';

/**
 * One policy on a route, built once when a snapshot is compiled.
 *
 * - `onRequest` runs in config order before a target is picked. It may edit
 *   `ctx.upstreamPath` and `ctx.upstreamHeaders`; it stops the request by
 *   throwing (or rejecting with) a GatewayError, and may return a promise to
 *   continue later (e.g. after a Redis round trip). Returning undefined keeps
 *   the whole chain synchronous, with no promise allocated.
 * - `onResponse` runs in reverse order (onion model) when the upstream
 *   response head arrives, before it is written downstream. It must be
 *   synchronous.
 */
export interface Middleware {
  readonly name: string;
  onRequest?(ctx: RequestContext): void | Promise<void>;
  onResponse?(ctx: RequestContext, head: ResponseHead): void;
}
