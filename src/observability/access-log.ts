import fs from 'node:fs';
import { dirname } from 'node:path';
import pino from 'pino';
import { sessionStats } from '../http/websocket/tunnel.js';
import type { RequestContext } from '../snapshot/snapshot.js';
import { ACCESS_LOG_FIELDS, DEFAULT_ACCESS_LOG_FIELDS, MASKED_QUERY_PARAMS, type AccessLogConfig, type AccessLogField } from '../config/schemas/access-log.js';
import type { ConnectionLogFields } from '../snapshot/snapshot.js';
import { maskedNames, maskQuery, maskUserinfo, type MaskedNames } from './redact.js';
import { readLoggedHeaders } from './trace-id.js';

const NS_PER_MS = 1_000_000;
/** The destination `accessLog: true` (or an object without `path`) writes to. */
export const STDOUT = 'stdout';

/** Called when a log file cannot be written or reopened (the gateway logs it). */
export type LogErrorHandler = (dest: string, err: Error) => void;

// One bit per field, in ACCESS_LOG_FIELDS order.
const bit = (f: AccessLogField): number => 1 << ACCESS_LOG_FIELDS.indexOf(f);
const TIME = bit('time');
const TYPE = bit('type');
const REQUEST_ID = bit('requestId');
const TRACE_ID = bit('traceId');
const LISTENER = bit('listener');
const ROUTE = bit('route');
const CLIENT = bit('client');
const METHOD = bit('method');
const HOST = bit('host');
const PATH = bit('path');
const QUERY = bit('query');
const PROTOCOL = bit('protocol');
const USER_AGENT = bit('userAgent');
const STATUS = bit('status');
const BYTES_RECEIVED = bit('bytesReceived');
const BYTES_SENT = bit('bytesSent');
const DURATION_MS = bit('durationMs');
const UPSTREAM = bit('upstream');
const TARGET = bit('target');
const UPSTREAM_STATUS = bit('upstreamStatus');
const UPSTREAM_MS = bit('upstreamMs');
const CONSUMER = bit('consumer');
const ERROR = bit('error');
const GRPC_STATUS = bit('grpcStatus');
const WEBSOCKET = bit('websocket');

/** The field set as bits: what the per-request writer tests instead of names. */
export function fieldBits(fields: readonly AccessLogField[]): number {
  let bits = 0;
  for (const f of fields) bits |= bit(f);
  return bits;
}

/**
 * One listener's access log: its field set and masked query parameters,
 * compiled once per snapshot, writing to a destination shared with the
 * other listeners that log there.
 *
 * HTTP lines (`write`) are assembled by hand, not by a generic serializer:
 * this is on the per-request path. The field set is a bit mask, so a line
 * costs one bit test per field, and fields are written in the fixed order of
 * ACCESS_LOG_FIELDS. Every string that comes from the client (path, query,
 * user agent, host, method) is escaped to printable ASCII (`jsonString`),
 * so a line is always one line of valid JSON and never carries raw control
 * bytes to a terminal.
 */
export class AccessLog {
  readonly dest: string;
  private readonly out: LogDestination;
  private readonly fields: number;
  private readonly masked: MaskedNames;

  constructor(out: LogDestination, fields: readonly AccessLogField[] = DEFAULT_ACCESS_LOG_FIELDS, maskQueryParams: readonly string[] = []) {
    this.out = out;
    this.dest = out.dest;
    this.fields = fieldBits(fields);
    this.masked = maskedNames([...MASKED_QUERY_PARAMS, ...maskQueryParams]);
  }

  write(ctx: RequestContext): void {
    this.out.write(this.line(ctx, process.hrtime.bigint()));
  }

  /** The line for one request (with its newline); `now` is when it ended. */
  line(ctx: RequestContext, now: bigint): string {
    const f = this.fields;
    const req = ctx.req;
    let line = (f & TIME) !== 0 ? `{"time":"${isoNow()}"` : '';
    if ((f & TYPE) !== 0) line += ',"type":"access"';
    if ((f & REQUEST_ID) !== 0) line += `,"requestId":${jsonString(ctx.requestId)}`;
    let userAgent: string | undefined;
    if ((f & (TRACE_ID | USER_AGENT)) !== 0) {
      // The trace id Portico used (the incoming traceparent's, or the one it created); else what the headers carry.
      const trace = ctx.trace;
      const h = readLoggedHeaders(req.rawHeaders, (f & TRACE_ID) !== 0 && trace === null);
      const traceId = (f & TRACE_ID) === 0 ? undefined : trace !== null ? trace.traceId : h.traceId;
      // A trace id is hex digits and dashes only (trace-id.ts, trace-context.ts): no escaping needed.
      if (traceId !== undefined) line += `,"traceId":"${traceId}"`;
      userAgent = h.userAgent;
    }
    if ((f & LISTENER) !== 0) line += `,"listener":${jsonString(ctx.listener.name)}`;
    if ((f & ROUTE) !== 0 && ctx.route !== undefined) line += `,"route":${jsonString(ctx.route.name)}`;
    if ((f & CLIENT) !== 0) line += `,"client":${jsonString(ctx.clientIp)}`;
    if ((f & METHOD) !== 0) line += `,"method":${jsonString(req.method ?? '')}`;
    if ((f & HOST) !== 0 && ctx.host !== '') line += `,"host":${jsonString(ctx.host)}`;
    if ((f & PATH) !== 0) line += `,"path":${jsonString(maskUserinfo(ctx.path))}`;
    if ((f & QUERY) !== 0 && ctx.query !== '') line += `,"query":${jsonString(maskQuery(ctx.query.slice(1), this.masked))}`;
    if ((f & PROTOCOL) !== 0) line += `,"protocol":${protocolOf(ctx)}`;
    if ((f & USER_AGENT) !== 0 && userAgent !== undefined) line += `,"userAgent":${jsonString(maskUserinfo(userAgent))}`;
    if ((f & STATUS) !== 0) line += `,"status":${ctx.status}`;
    if ((f & BYTES_RECEIVED) !== 0) line += `,"bytesReceived":${ctx.contentLength > 0 ? ctx.contentLength : 0}`;
    if ((f & BYTES_SENT) !== 0) line += `,"bytesSent":${ctx.bytesSent}`;
    if ((f & DURATION_MS) !== 0) line += `,"durationMs":${ms(now - ctx.startedAt)}`;
    if ((f & UPSTREAM) !== 0 && ctx.upstream !== undefined) line += `,"upstream":${jsonString(ctx.upstream.name)}`;
    if ((f & TARGET) !== 0 && ctx.target !== undefined) line += `,"target":${jsonString(ctx.target.address)}`;
    if ((f & UPSTREAM_STATUS) !== 0 && ctx.upstreamStatus !== 0) line += `,"upstreamStatus":${ctx.upstreamStatus}`;
    if ((f & UPSTREAM_MS) !== 0 && ctx.upstreamStartedAt !== 0n) line += `,"upstreamMs":${ms((ctx.upstreamHeadersAt || now) - ctx.upstreamStartedAt)}`;
    if ((f & CONSUMER) !== 0 && ctx.consumer !== undefined) line += `,"consumer":${jsonString(ctx.consumer.id)}`;
    if ((f & ERROR) !== 0 && ctx.error !== undefined) line += `,"error":${jsonString(ctx.error.code)}`;
    if ((f & GRPC_STATUS) !== 0 && ctx.grpcStatus >= 0) line += `,"grpcStatus":${ctx.grpcStatus}`;
    if ((f & WEBSOCKET) !== 0 && ctx.status === 101) {
      // A WebSocket session, logged when it ends.
      const ws = sessionStats(ctx);
      if (ws !== undefined) {
        line +=
          `,"websocket":{"messagesIn":${ws.messagesIn},"messagesOut":${ws.messagesOut}` +
          `,"framesIn":${ws.framesIn},"framesOut":${ws.framesOut},"closedBy":${jsonString(String(ws.closedBy))}}`;
      }
    }
    // Without `time` every field above began with a comma.
    return (f & TIME) !== 0 ? line + '}\n' : `{${line.slice(1)}}\n`;
  }

  /**
   * One line per L4 connection or UDP session (`type: "connection"`), when
   * it ends: `time`, `type`, then the given fields in their order; fields
   * left undefined are left out. Strings are escaped like HTTP lines and
   * URL userinfo in them is masked.
   */
  writeConnection(fields: ConnectionLogFields): void {
    let line = `{"time":"${isoNow()}","type":"connection"`;
    for (const key in fields) {
      const v = fields[key];
      if (v === undefined) continue;
      line += `,${jsonString(key)}:`;
      line += typeof v === 'string' ? jsonString(maskUserinfo(v)) : typeof v === 'number' ? (Number.isFinite(v) ? String(v) : 'null') : v ? 'true' : 'false';
    }
    this.out.write(line + '}\n');
  }
}

const H2 = '"HTTP/2"';
const H11 = '"HTTP/1.1"';
const H10 = '"HTTP/1.0"';

/** The request's HTTP version as a JSON string: `HTTP/1.1`, `HTTP/1.0` or `HTTP/2`. */
function protocolOf(ctx: RequestContext): string {
  if (ctx.h2) return H2;
  const req = ctx.req;
  if (req.httpVersionMajor === 1) return req.httpVersionMinor === 1 ? H11 : H10;
  return jsonString(`HTTP/${req.httpVersion}`);
}

/** Printable ASCII without `"` and `\`: written as is. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/**
 * A JSON string literal (RFC 8259 §7) in printable ASCII: `"` and `\` are
 * escaped, and every other character outside 0x20-0x7E (control bytes,
 * DEL, and anything non-ASCII, such as the latin1 bytes Node gives for a
 * raw request line) is written as `\uXXXX`. The common case (nothing to
 * escape) is one regex test.
 */
export function jsonString(v: string): string {
  if (PLAIN.test(v)) return `"${v}"`;
  let out = '"';
  let from = 0;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e && c !== 0x22 && c !== 0x5c) continue;
    out += v.slice(from, i);
    out += c === 0x22 ? '\\"' : c === 0x5c ? '\\\\' : `\\u${c.toString(16).padStart(4, '0')}`;
    from = i + 1;
  }
  return `${out}${v.slice(from)}"`;
}

let isoMs = 0;
let iso = '';

/** The current time in ISO 8601 (UTC, milliseconds), formatted once per millisecond. */
function isoNow(): string {
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    iso = new Date(now).toISOString();
  }
  return iso;
}

function ms(ns: bigint): string {
  return (Number(ns) / NS_PER_MS).toFixed(3);
}

type SonicBoom = pino.DestinationStream & {
  flush(): void;
  flushSync(): void;
  end(): void;
  reopen(): void;
  on(event: 'ready' | 'error', listener: (err: Error) => void): void;
  off(event: 'ready' | 'error', listener: (err: Error) => void): void;
};

/**
 * One access-log destination (stdout or a file) and its buffered,
 * asynchronous stream (pino's sonic-boom): a slow disk or terminal never
 * stalls the data plane; lines are flushed every second and on close.
 */
export class LogDestination {
  readonly dest: string;
  private readonly stream: SonicBoom;
  private readonly timer: NodeJS.Timeout;
  /** A reopen is under way (until the new file is open, or the open failed). */
  private reopening = false;
  /** close() was called: no more reopens; the stream ends (after a reopen under way). */
  private closing = false;

  /**
   * Opens `dest` (missing directories are created). A file that cannot be
   * opened throws here, synchronously, so the config that names it is
   * refused with the reason instead of failing later.
   */
  private readonly onError: LogErrorHandler;

  constructor(dest: string, onError: LogErrorHandler) {
    this.dest = dest;
    this.onError = onError;
    if (dest !== STDOUT) {
      fs.mkdirSync(dirname(dest), { recursive: true });
      fs.closeSync(fs.openSync(dest, 'a'));
    }
    this.stream = pino.destination({ dest: dest === STDOUT ? 1 : dest, sync: false, minLength: 4096, mkdir: true }) as SonicBoom;
    // Without a listener a failed write or reopen would be an uncaught exception. pino's own
    // listener (it drops EPIPE) emits the first other error once more: reported once.
    let last: Error | undefined;
    this.stream.on('error', (err) => {
      if (err === last) return;
      last = err;
      onError(dest, err);
    });
    this.timer = setInterval(() => this.flush(), 1000).unref();
  }

  /**
   * Queues `line`. After close() (the config that named this file was
   * replaced) a connection or request that outlived its config still ends
   * here: its line is appended synchronously to the file (stdout: written
   * to stdout), rare enough not to matter, instead of being lost or
   * throwing from the ended stream.
   */
  write(line: string): void {
    if (!this.closing) return void this.stream.write(line);
    try {
      if (this.dest === STDOUT) process.stdout.write(line);
      else fs.appendFileSync(this.dest, line);
    } catch (err) {
      this.onError(this.dest, err as Error);
    }
  }

  /**
   * Opens the file again at its path (after logrotate renamed it). The
   * buffered lines are written to the old file first, synchronously (at
   * most a second's worth); every later line goes to the new one: none is
   * lost. If the open fails, writing goes on to the old file and the error
   * is reported. Stdout is left alone (returns false).
   */
  reopen(): boolean {
    if (this.dest === STDOUT || this.closing) return false;
    try {
      this.stream.flushSync();
    } catch {
      // Not open yet (the first open then opens the file at the path), or the write failed (the lines stay buffered).
    }
    if (!this.reopening) {
      this.reopening = true;
      const done = () => {
        this.stream.off('ready', done);
        this.stream.off('error', done);
        this.reopening = false;
        if (this.closing) this.end();
      };
      this.stream.on('ready', done);
      this.stream.on('error', done);
    }
    this.stream.reopen();
    return true;
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
    this.closing = true;
    // sonic-boom drops a reopen still waiting for a write when it is ended (and the lines after it): end after the reopen.
    if (!this.reopening) this.end();
  }

  private end(): void {
    try {
      this.stream.flushSync();
    } catch {
      /* closing anyway */
    }
    this.stream.end();
  }
}

/**
 * Access-log destinations by path, shared across snapshots so a reload
 * keeps its files open; each snapshot's listeners get their own AccessLog
 * (fields, masks) writing to them.
 */
export class AccessLogRegistry {
  private readonly logs = new Map<string, LogDestination>();
  private readonly onError: LogErrorHandler;

  constructor(onError: LogErrorHandler = reportToStderr) {
    this.onError = onError;
  }

  /** The AccessLog for a listener's `accessLog:` value; null when it is off. */
  forListener(config: AccessLogConfig): AccessLog | null {
    if (config === false) return null;
    if (config === true) return new AccessLog(this.get(STDOUT));
    // L4 listeners' objects have only `path`: their connection lines have a fixed shape.
    const o = config as { path?: string; fields?: readonly AccessLogField[]; maskQueryParams?: readonly string[] };
    return new AccessLog(this.get(o.path ?? STDOUT), o.fields, o.maskQueryParams);
  }

  get(dest: string): LogDestination {
    let log = this.logs.get(dest);
    if (!log) {
      log = new LogDestination(dest, this.onError);
      this.logs.set(dest, log);
    }
    return log;
  }

  /** Reopens every file destination (SIGUSR1, after logrotate); returns how many. */
  reopen(): number {
    let n = 0;
    for (const log of this.logs.values()) if (log.reopen()) n++;
    return n;
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

function reportToStderr(dest: string, err: Error): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), msg: 'access log file error', dest, error: err.message })}\n`);
}
