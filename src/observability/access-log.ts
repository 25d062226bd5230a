import pino, { type Logger } from 'pino';
import type { RequestContext } from '../http/context.js';

const NS_PER_MS = 1_000_000;

/**
 * One JSON line per request, written through pino to stdout or a file.
 * The destination is asynchronous (sonic-boom, buffered): a slow disk or
 * terminal never stalls the data plane; lines are flushed every second
 * and on close.
 */
export class AccessLog {
  private readonly stream: pino.DestinationStream & { flush?(): void; end?(): void; flushSync?(): void };
  private readonly logger: Logger;
  private readonly timer: NodeJS.Timeout;

  constructor(dest: string) {
    const stream = pino.destination({ dest: dest === 'stdout' ? 1 : dest, sync: false, minLength: 4096, mkdir: true });
    this.stream = stream;
    this.logger = pino({ base: null, messageKey: 'msg', timestamp: pino.stdTimeFunctions.isoTime }, stream);
    this.timer = setInterval(() => this.flush(), 1000).unref();
  }

  write(ctx: RequestContext): void {
    const now = process.hrtime.bigint();
    const upstreamMs =
      ctx.upstreamStartedAt === 0n ? undefined : Number((ctx.upstreamHeadersAt || now) - ctx.upstreamStartedAt) / NS_PER_MS;
    this.logger.info({
      type: 'access',
      requestId: ctx.requestId,
      listener: ctx.listener.name,
      route: ctx.route?.name,
      client: ctx.clientIp,
      method: ctx.req.method,
      path: ctx.path,
      status: ctx.status,
      bytesReceived: ctx.contentLength > 0 ? ctx.contentLength : 0,
      bytesSent: ctx.bytesSent,
      durationMs: Number(now - ctx.startedAt) / NS_PER_MS,
      upstream: ctx.upstream?.name,
      target: ctx.target?.address,
      upstreamMs,
      error: ctx.error?.code,
    });
  }

  flush(): void {
    try {
      this.stream.flush?.();
    } catch {
      // sonic-boom throws if a write is pending; the next tick's flush catches up.
    }
  }

  close(): void {
    clearInterval(this.timer);
    try {
      this.stream.flushSync?.();
    } catch {
      /* closing anyway */
    }
    this.stream.end?.();
  }
}

/** Access logs by destination, shared across snapshots so a reload keeps its files open. */
export class AccessLogRegistry {
  private readonly logs = new Map<string, AccessLog>();

  get(dest: string): AccessLog {
    let log = this.logs.get(dest);
    if (!log) {
      log = new AccessLog(dest);
      this.logs.set(dest, log);
    }
    return log;
  }

  retain(keep: ReadonlySet<string>): void {
    for (const [dest, log] of this.logs) {
      if (keep.has(dest)) continue;
      this.logs.delete(dest);
      log.close();
    }
  }

  close(): void {
    this.retain(new Set());
  }
}
