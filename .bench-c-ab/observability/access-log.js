import pino from 'pino';
const NS_PER_MS = 1_000_000;
/**
 * One JSON line per request, written to stdout or a file through pino's
 * asynchronous destination (sonic-boom, buffered): a slow disk or terminal
 * never stalls the data plane; lines are flushed every second and on close.
 * The line is assembled by hand rather than by a generic serializer: its
 * shape is fixed, and this is on the per-request path.
 */
export class AccessLog {
    stream;
    timer;
    constructor(dest) {
        this.stream = pino.destination({ dest: dest === 'stdout' ? 1 : dest, sync: false, minLength: 4096, mkdir: true });
        this.timer = setInterval(() => this.flush(), 1000).unref();
    }
    write(ctx) {
        const now = process.hrtime.bigint();
        let line = `{"time":"${new Date().toISOString()}","type":"access","requestId":${str(ctx.requestId)}` +
            `,"listener":${str(ctx.listener.name)}`;
        if (ctx.route !== undefined)
            line += `,"route":${str(ctx.route.name)}`;
        line +=
            `,"client":${str(ctx.clientIp)},"method":${str(ctx.req.method ?? '')},"path":${str(ctx.path)}` +
                `,"status":${ctx.status},"bytesReceived":${ctx.contentLength > 0 ? ctx.contentLength : 0},"bytesSent":${ctx.bytesSent}` +
                `,"durationMs":${ms(now - ctx.startedAt)}`;
        if (ctx.upstream !== undefined)
            line += `,"upstream":${str(ctx.upstream.name)}`;
        if (ctx.target !== undefined)
            line += `,"target":${str(ctx.target.address)}`;
        if (ctx.upstreamStartedAt !== 0n)
            line += `,"upstreamMs":${ms((ctx.upstreamHeadersAt || now) - ctx.upstreamStartedAt)}`;
        if (ctx.error !== undefined)
            line += `,"error":${str(ctx.error.code)}`;
        this.stream.write(line + '}\n');
    }
    flush() {
        try {
            this.stream.flush();
        }
        catch {
            // sonic-boom throws if a write is pending; the next tick's flush catches up.
        }
    }
    close() {
        clearInterval(this.timer);
        try {
            this.stream.flushSync();
        }
        catch {
            /* closing anyway */
        }
        this.stream.end();
    }
}
const PLAIN = /^[^"\\\u0000-\u001f]*$/;
/** A JSON string literal; the common case (nothing to escape) skips JSON.stringify. */
function str(v) {
    return PLAIN.test(v) ? `"${v}"` : JSON.stringify(v);
}
function ms(ns) {
    return (Number(ns) / NS_PER_MS).toFixed(3);
}
/** Access logs by destination, shared across snapshots so a reload keeps its files open. */
export class AccessLogRegistry {
    logs = new Map();
    get(dest) {
        let log = this.logs.get(dest);
        if (!log) {
            log = new AccessLog(dest);
            this.logs.set(dest, log);
        }
        return log;
    }
    retain(keep) {
        for (const [dest, log] of this.logs) {
            if (keep.has(dest))
                continue;
            this.logs.delete(dest);
            log.close();
        }
    }
    close() {
        this.retain(new Set());
    }
}
//# sourceMappingURL=access-log.js.map