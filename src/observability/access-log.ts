import pino from 'pino';
import { sessionStats } from '../http/websocket/tunnel.js';
import type { RequestContext } from '../http/context.js';

const NS_PER_MS = 1_000_000;

/**
 * One JSON line per request, written to stdout or a file through pino's
 * asynchronous destination (sonic-boom, buffered): a slow disk or terminal
 * never stalls the data plane; lines are flushed every second and on close.
 * The line is assembled by hand rather than by a generic serializer: its
 * shape is fixed, and this is on the per-request path.
 */
/** What a connection line says (see AccessLog.writeConnection); protocol-specific extras are allowed. */
export interface ConnectionLogFields {
  listener: string;
  protocol: string;
  client: string;
  clientPort?: number;
  /** `ok`, a refusal reason, or an error code such as DIAL_FAILED. */
  outcome: string;
  upstream?: string;
  target?: string;
  bytesUp?: number;
  bytesDown?: number;
  durationMs: number;
  closedBy?: string;
  error?: string;
  [extra: string]: string | number | boolean | undefined;
}

export class AccessLog {
  private readonly stream: SonicBoom;
  private readonly timer: NodeJS.Timeout;

  constructor(dest: string) {
    this.stream = pino.destination({ dest: dest === 'stdout' ? 1 : dest, sync: false, minLength: 4096, mkdir: true }) as SonicBoom;
    this.timer = setInterval(() => this.flush(), 1000).unref();
  }

  write(ctx: RequestContext): void {
    const now = process.hrtime.bigint();
    let line =
      `{"time":"${new Date().toISOString()}","type":"access","requestId":${str(ctx.requestId)}` +
      `,"listener":${str(ctx.listener.name)}`;
    if (ctx.route !== undefined) line += `,"route":${str(ctx.route.name)}`;
    line +=
      `,"client":${str(ctx.clientIp)},"method":${str(ctx.req.method ?? '')},"path":${str(ctx.path)}` +
      `,"status":${ctx.status},"bytesReceived":${ctx.contentLength > 0 ? ctx.contentLength : 0},"bytesSent":${ctx.bytesSent}` +
      `,"durationMs":${ms(now - ctx.startedAt)}`;
    if (ctx.upstream !== undefined) line += `,"upstream":${str(ctx.upstream.name)}`;
    if (ctx.target !== undefined) line += `,"target":${str(ctx.target.address)}`;
    if (ctx.upstreamStartedAt !== 0n) line += `,"upstreamMs":${ms((ctx.upstreamHeadersAt || now) - ctx.upstreamStartedAt)}`;
    if (ctx.error !== undefined) line += `,"error":${str(ctx.error.code)}`;
    if (ctx.grpcStatus >= 0) line += `,"grpcStatus":${ctx.grpcStatus}`;
    if (ctx.status === 101) {
      // A WebSocket session, logged when it ends.
      const ws = sessionStats(ctx);
      if (ws !== undefined) {
        line +=
          `,"websocket":{"messagesIn":${ws.messagesIn},"messagesOut":${ws.messagesOut}` +
          `,"framesIn":${ws.framesIn},"framesOut":${ws.framesOut},"closedBy":${str(String(ws.closedBy))}}`;
      }
    }
    this.stream.write(line + '}\n');
  }

  /**
   * One line per L4 connection or UDP session (`type: "connection"`), when
   * it ends. Fields left undefined are left out.
   */
  writeConnection(fields: ConnectionLogFields): void {
    this.stream.write(JSON.stringify({ time: new Date().toISOString(), type: 'connection', ...fields }) + '\n');
  }

  flush(): void {
    try {
      this.stream.flush();
    } catch {
      // sonic-boom throws if a write is pending; the next tick's flush catches up.
    }
  }

  close(): void {
    clearInterval(this.timer);
    try {
      this.stream.flushSync();
    } catch {
      /* closing anyway */
    }
    this.stream.end();
  }
}

type SonicBoom = pino.DestinationStream & { flush(): void; flushSync(): void; end(): void };

const PLAIN = /^[^"\\\u0000-\u001f]*$/;

/** A JSON string literal; the common case (nothing to escape) skips JSON.stringify. */
function str(v: string): string {
  return PLAIN.test(v) ? `"${v}"` : JSON.stringify(v);
}

function ms(ns: bigint): string {
  return (Number(ns) / NS_PER_MS).toFixed(3);
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
