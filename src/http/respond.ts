import type { RequestContext } from '../snapshot/snapshot.js';
import { GatewayError, statusFor } from '../errors.js';
import type { DirectResponse } from './direct-response.js';
import { writeGrpcError } from './grpc/write-error.js';

export function writeDirectResponse(ctx: RequestContext, r: DirectResponse): void {
  ctx.status = r.status;
  ctx.bytesSent = ctx.req.method === 'HEAD' ? 0 : r.body.length;
  ctx.res.setHeader('x-request-id', ctx.requestId);
  ctx.res.writeHead(r.status, r.headers);
  ctx.res.end(ctx.req.method === 'HEAD' ? undefined : r.body);
}

/**
 * Answers a request with a gateway error: the mapped status and a JSON body
 * `{ error, code, requestId }`. If the response head is already out, the
 * downstream connection is aborted instead, so a truncated body is never
 * mistaken for a complete one.
 */
export function writeError(ctx: RequestContext, err: GatewayError): void {
  ctx.error = err;
  const res = ctx.res;
  if (ctx.grpc) return writeGrpcError(ctx, err);
  if (res.headersSent || ctx.closed) {
    if (!res.writableEnded) res.destroy(err);
    return;
  }
  const status = statusFor(err);
  ctx.status = status;
  if (status === 499) {
    res.destroy();
    return;
  }
  const body = Buffer.from(JSON.stringify({ error: err.message, code: err.code, requestId: ctx.requestId }));
  ctx.bytesSent = body.length;
  if (err.headers) for (const k in err.headers) res.setHeader(k, err.headers[k]!);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': body.length,
    'x-request-id': ctx.requestId,
    'cache-control': 'no-store',
  });
  res.end(body);
}

export function toGatewayError(err: unknown): GatewayError {
  return err instanceof GatewayError ? err : new GatewayError('INTERNAL', undefined, { cause: err });
}
