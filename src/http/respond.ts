import type { RequestContext } from './context.js';
import { GatewayError, statusFor } from '../errors.js';
import { writeGrpcError } from './grpc/status.js';

/** A route's `respond:` answer, serialized once at compile time. */
export interface DirectResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export function compileDirectResponse(cfg: { status: number; headers: Record<string, string>; body: unknown }): DirectResponse {
  const isText = typeof cfg.body === 'string';
  const body = Buffer.from(isText ? (cfg.body as string) : JSON.stringify(cfg.body));
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(cfg.headers)) headers[k.toLowerCase()] = v;
  if (cfg.status === 204 || cfg.status === 304) return { status: cfg.status, headers, body: Buffer.alloc(0) };
  headers['content-type'] ??= isText ? 'text/plain; charset=utf-8' : 'application/json';
  headers['content-length'] = String(body.length);
  return { status: cfg.status, headers, body };
}

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
