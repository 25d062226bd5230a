import { GatewayError, fromUpstreamError } from '../errors.js';
import { connectionTokens, isHopByHop } from './hop-by-hop.js';
import { writeError } from './respond.js';
const DOWNSTREAM_CLOSED = new GatewayError('DOWNSTREAM_ABORTED');
/**
 * The upstream request phase: pick a target, send the request through the
 * target's keep-alive pool with undici's `dispatch`, and stream the
 * response straight into the downstream response, with backpressure both
 * ways (undici pipes the request body; the response pauses the upstream
 * socket while the downstream one is full).
 */
export function proxy(ctx, done) {
    const route = ctx.route;
    const upstream = route.upstream;
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
    headers.push('host', route.preserveHost && ctx.hostHeader !== undefined ? ctx.hostHeader : target.address);
    headers.push('x-request-id', ctx.requestId);
    const handler = new ProxyHandler(ctx, done);
    target.inflight++;
    ctx.upstreamStartedAt = process.hrtime.bigint();
    ctx.res.on('close', handler.onDownstreamClose);
    upstream.poolFor(target).dispatch({
        path: ctx.upstreamPath + ctx.query,
        method: req.method,
        headers,
        body: ctx.hasBody ? req : null,
    }, handler);
}
/**
 * undici's core handler interface (the one its HTTP/1.1 client calls
 * directly: raw header buffers, boolean backpressure). The newer
 * controller-style interface is a wrapper around it that parses every
 * response head into an object; skipping it saves that work per request.
 */
class ProxyHandler {
    ctx;
    done;
    abort = null;
    resume = null;
    finished = false;
    /** The upstream's Content-Length, or -1: lets the last chunk go out with `end`, in one write. */
    remaining = -1;
    constructor(ctx, done) {
        this.ctx = ctx;
        this.done = done;
    }
    onConnect(abort) {
        this.abort = abort;
        if (this.ctx.res.destroyed)
            abort(DOWNSTREAM_CLOSED);
    }
    onHeaders(status, raw, resume) {
        if (status < 200)
            return true; // 1xx interim responses are not forwarded on HTTP/1.1 (Node answers 100-continue itself).
        const ctx = this.ctx;
        this.resume = resume;
        ctx.upstreamHeadersAt = process.hrtime.bigint();
        ctx.target.observeLatency(Number(ctx.upstreamHeadersAt - ctx.upstreamStartedAt) / 1e6);
        let headers = [];
        let connection;
        let hasRequestId = false;
        for (let i = 0; i < raw.length; i += 2) {
            const name = raw[i].toString('latin1');
            const c = name.charCodeAt(0) | 0x20;
            // Only names starting with c, k, p, t, u or x need a closer look.
            if (c === 0x63 || c === 0x6b || c === 0x70 || c === 0x74 || c === 0x75 || c === 0x78) {
                const lower = name.toLowerCase();
                if (lower === 'connection') {
                    connection = raw[i + 1].toString('latin1');
                    continue;
                }
                if (isHopByHop(lower))
                    continue;
                if (lower === 'x-request-id')
                    hasRequestId = true;
                else if (lower === 'content-length')
                    this.remaining = Number(raw[i + 1].toString('latin1'));
            }
            headers.push(name, raw[i + 1].toString('latin1'));
        }
        if (connection !== undefined) {
            const drop = connectionTokens(connection);
            if (drop !== null)
                headers = headers.filter((_, i, a) => !drop.has(a[i - (i % 2)].toLowerCase()));
        }
        if (!hasRequestId)
            headers.push('x-request-id', ctx.requestId);
        const head = { status, headers };
        ctx.route.chain.runResponse(ctx, head);
        ctx.status = head.status;
        const res = ctx.res;
        if (res.destroyed) {
            this.abort?.(DOWNSTREAM_CLOSED);
            return false;
        }
        try {
            res.writeHead(head.status, head.headers);
        }
        catch (err) {
            // An upstream header Node refuses to forward (e.g. invalid characters).
            this.abort?.(new GatewayError('UPSTREAM_PROTOCOL_ERROR', `invalid response header: ${err.message}`));
            return false;
        }
        return true;
    }
    onData(chunk) {
        const res = this.ctx.res;
        this.ctx.bytesSent += chunk.length;
        if (this.remaining === chunk.length) {
            // The whole rest of the body: head (if still buffered) and data leave in one write.
            this.remaining = 0;
            res.end(chunk);
            return true;
        }
        if (this.remaining > 0)
            this.remaining -= chunk.length;
        if (res.write(chunk))
            return true;
        res.once('drain', this.resume);
        return false;
    }
    onComplete() {
        if (!this.ctx.res.writableEnded)
            this.ctx.res.end();
        this.finish();
    }
    onError(err) {
        const ctx = this.ctx;
        if (err === DOWNSTREAM_CLOSED || ctx.res.destroyed) {
            ctx.error = DOWNSTREAM_CLOSED;
            ctx.status ||= 499;
            if (!ctx.res.destroyed)
                ctx.res.destroy();
        }
        else {
            writeError(ctx, fromUpstreamError(err));
        }
        this.finish();
    }
    /** A downstream client that goes away aborts the upstream request. */
    onDownstreamClose = () => {
        if (!this.finished && this.abort !== null)
            this.abort(DOWNSTREAM_CLOSED);
    };
    finish() {
        if (this.finished)
            return;
        this.finished = true;
        this.ctx.target.inflight--;
        this.done(this.ctx);
    }
}
//# sourceMappingURL=proxy.js.map