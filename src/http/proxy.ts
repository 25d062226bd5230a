import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { GatewayError, fromUpstreamError } from '../errors.js';
import type { RequestContext, ResponseHead } from './context.js';
import { connectionTokens, isHopByHop } from './hop-by-hop.js';
import { writeError } from './respond.js';

type Controller = Dispatcher.DispatchController;

/** Called exactly once when a proxied exchange is over, whatever the outcome. */
export type Done = (ctx: RequestContext) => void;

const DOWNSTREAM_CLOSED = new GatewayError('DOWNSTREAM_ABORTED');

/**
 * The upstream request phase: pick a target, send the request through the
 * target's keep-alive pool with undici's `dispatch`, and stream the
 * response straight into the downstream response, with backpressure both
 * ways (the request body is piped by undici; the response pauses the
 * upstream socket while the downstream one is full).
 */
export function proxy(ctx: RequestContext, done: Done): void {
  const route = ctx.route!;
  const upstream = route.upstream!;
  ctx.upstream = upstream;
  const target = upstream.pick(ctx);
  if (target === undefined) {
    writeError(ctx, new GatewayError('NO_TARGET'));
    done(ctx);
    return;
  }
  ctx.target = target;
  const req = ctx.req;
  const headers = ctx.upstreamHeaders;
  headers.push('host', route.preserveHost && req.headers.host !== undefined ? req.headers.host : target.address);
  if (req.headers['x-request-id'] !== ctx.requestId) headers.push('x-request-id', ctx.requestId);

  const handler = new ProxyHandler(ctx, done);
  target.inflight++;
  ctx.upstreamStartedAt = process.hrtime.bigint();
  upstream.poolFor(target).dispatch(
    {
      path: ctx.upstreamPath + ctx.query,
      method: req.method as Dispatcher.HttpMethod,
      headers,
      body: hasBody(req.headers) ? req : null,
    },
    handler,
  );
  ctx.res.once('close', handler.onDownstreamClose);
}

/** RFC 9112 §6.3: a request has a body iff it has Content-Length > 0 or Transfer-Encoding. */
function hasBody(h: IncomingHttpHeaders): boolean {
  if (h['transfer-encoding'] !== undefined) return true;
  const cl = h['content-length'];
  return cl !== undefined && cl !== '0';
}

class ProxyHandler implements Dispatcher.DispatchHandler {
  private readonly ctx: RequestContext;
  private readonly done: Done;
  private controller: Controller | null = null;
  private finished = false;

  constructor(ctx: RequestContext, done: Done) {
    this.ctx = ctx;
    this.done = done;
  }

  onRequestStart(controller: Controller): void {
    this.controller = controller;
    if (this.ctx.res.destroyed) controller.abort(DOWNSTREAM_CLOSED);
  }

  onResponseStart(controller: Controller, status: number, headers: IncomingHttpHeaders): void {
    if (status < 200) return; // 1xx interim responses are not forwarded on HTTP/1.1 (Node answers 100-continue itself).
    const ctx = this.ctx;
    ctx.upstreamHeadersAt = process.hrtime.bigint();
    ctx.target!.observeLatency(Number(ctx.upstreamHeadersAt - ctx.upstreamStartedAt) / 1e6);
    const h = headers as ResponseHead['headers'];
    const drop = connectionTokens(h.connection);
    for (const name in h) {
      if (isHopByHop(name) || (drop !== null && drop.has(name))) delete h[name];
    }
    const head: ResponseHead = { status, headers: h };
    ctx.route!.chain.runResponse(ctx, head);
    if (h['x-request-id'] === undefined) h['x-request-id'] = ctx.requestId;
    ctx.status = head.status;
    const res = ctx.res;
    if (res.destroyed) {
      controller.abort(DOWNSTREAM_CLOSED);
      return;
    }
    try {
      res.writeHead(head.status, h as Record<string, string | string[]>);
    } catch (err) {
      // An upstream header Node refuses to forward (e.g. invalid characters).
      controller.abort(new GatewayError('UPSTREAM_PROTOCOL_ERROR', `invalid response header: ${(err as Error).message}`));
    }
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    this.ctx.bytesSent += chunk.length;
    if (!this.ctx.res.write(chunk)) {
      controller.pause();
      this.ctx.res.once('drain', this.onDrain);
    }
  }

  onResponseEnd(): void {
    this.ctx.res.end();
    this.finish();
  }

  onResponseError(_controller: Controller, err: Error): void {
    const ctx = this.ctx;
    if (err === DOWNSTREAM_CLOSED || ctx.res.destroyed) {
      ctx.error = DOWNSTREAM_CLOSED;
      ctx.status ||= 499;
      if (!ctx.res.destroyed) ctx.res.destroy();
    } else {
      writeError(ctx, fromUpstreamError(err));
    }
    this.finish();
  }

  /** A downstream client that goes away aborts the upstream request. */
  readonly onDownstreamClose = (): void => {
    if (!this.finished && this.controller !== null && !this.controller.aborted) this.controller.abort(DOWNSTREAM_CLOSED);
  };

  private readonly onDrain = (): void => {
    this.controller?.resume();
  };

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.ctx.target!.inflight--;
    this.done(this.ctx);
  }
}
