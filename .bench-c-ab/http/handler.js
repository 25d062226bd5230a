import { randomUUID } from 'node:crypto';
import { GatewayError } from '../errors.js';
import { RequestContext } from './context.js';
import { readInbound } from './forwarded.js';
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
export function handleRequest(listener, req, res) {
    const inbound = readInbound(req, listener.trustedProxies, listener.tls);
    const ctx = new RequestContext(req, res, listener, inbound.requestId ?? randomUUID(), inbound.clientIp);
    ctx.upstreamHeaders = inbound.headers;
    ctx.hostHeader = inbound.host;
    ctx.hasBody = inbound.hasBody;
    ctx.contentLength = inbound.contentLength;
    const target = splitTarget(req.url ?? '');
    if (target === undefined)
        return fail(ctx, new GatewayError('BAD_REQUEST', 'invalid request target'));
    ctx.path = target.path;
    ctx.query = target.query;
    ctx.host = normalizeHost(inbound.host);
    const route = listener.router.match(ctx.host, ctx.path, req.method, req);
    if (route === undefined)
        return fail(ctx, new GatewayError('ROUTE_NOT_FOUND'));
    ctx.route = route;
    ctx.upstreamPath = ctx.path;
    let pending;
    try {
        pending = route.chain.runRequest(ctx);
    }
    catch (err) {
        return fail(ctx, toGatewayError(err));
    }
    if (pending === undefined)
        forward(ctx);
    else
        pending.then(() => forward(ctx), (err) => fail(ctx, toGatewayError(err)));
}
function forward(ctx) {
    if (ctx.res.destroyed) {
        ctx.status = 499;
        return log(ctx);
    }
    const route = ctx.route;
    if (route.respond !== undefined) {
        writeDirectResponse(ctx, route.respond);
        return log(ctx);
    }
    if (route.endpoint !== undefined) {
        let pending;
        try {
            pending = route.endpoint(ctx);
        }
        catch (err) {
            return fail(ctx, toGatewayError(err));
        }
        if (pending === undefined)
            return log(ctx);
        pending.then(() => log(ctx), (err) => fail(ctx, toGatewayError(err)));
        return;
    }
    proxy(ctx, log);
}
function fail(ctx, err) {
    writeError(ctx, err);
    log(ctx);
}
function log(ctx) {
    ctx.listener.stats.record(ctx);
    ctx.listener.accessLog?.write(ctx);
}
//# sourceMappingURL=handler.js.map