import type { RequestContext } from '../../snapshot/snapshot.js';
import { formatGrpcTimeout } from '../grpc/timeout.js';

/**
 * A gRPC call's deadline (`grpc-timeout`, counted from the call's arrival).
 * It goes upstream as the time left, not the time the client first gave
 * (time spent in the gateway, its middlewares and earlier tries is taken
 * off), so the server's deadline is the client's. When it passes, the
 * exchange cancels the try in flight and the client gets
 * DEADLINE_EXCEEDED.
 */

/** Sets the outbound `grpc-timeout` to the time left; called before each try. */
export function passDeadline(ctx: RequestContext): void {
  ctx.out.replaceHeader('grpc-timeout', formatGrpcTimeout(deadlineLeft(ctx)));
}

/** Milliseconds left before a gRPC call's deadline; at least 1. */
export function deadlineLeft(ctx: RequestContext): number {
  return Math.max(1, ctx.grpcTimeout - Number(process.hrtime.bigint() - ctx.startedAt) / 1e6);
}
