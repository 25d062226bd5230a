import http2, { type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { Readable } from 'node:stream';
import type tls from 'node:tls';
import type { Connector } from '../runtime/connector.js';
import { TcpConnector } from '../runtime/tcp-connector.js';
import { CANCEL, CONNECTING, H2ClientError, H2Session, NO_ERROR, READY, type SessionOwner } from './h2-session.js';

export { H2ClientError } from './h2-session.js';

export interface H2PoolOptions {
  /** `http://host:port` (h2c, prior knowledge, RFC 9113 §3.3) or `https://host:port` (h2 over TLS, ALPN `h2`). */
  origin: string;
  /** TLS client options for an https origin (ca, cert/key, servername, rejectUnauthorized, minVersion); ALPN is set here. */
  tls?: tls.ConnectionOptions;
  /** Opens the sessions' byte streams; a TCP dial to the origin's host and port when absent. */
  connector?: Connector;
  /** The target's host name or IP (the TLS certificate check without a server name); the origin's when absent. */
  host?: string;
  /** ms to establish a session: TCP + TLS + the server's first SETTINGS (0 = none). */
  connectTimeout: number;
  /** Default ms until the response head (0 = none); a dispatch's `headersTimeout` overrides it. */
  responseTimeout: number;
  /** ms without activity on a stream once its head arrived (0 = none), and how long a session with no stream is kept (0 = 60 s). */
  idleTimeout: number;
  /** Sessions to the target at most (default 16). A second one opens only while every session is at the peer's stream limit. */
  maxSessions?: number;
}

/** What `dispatch` takes: the subset of undici's `Dispatcher.DispatchOptions` the proxy sends. */
export interface H2DispatchOptions {
  path: string;
  method: string;
  /** Flat `[name, value, …]`; `host` becomes `:authority`. */
  headers: string[];
  body: Buffer | Readable | null;
  /** Overrides the pool's `responseTimeout` for this request (0 = none). */
  headersTimeout?: number;
}

/**
 * undici's legacy core handler (`Dispatcher.DispatchHandler`'s onConnect /
 * onHeaders / onData / onComplete / onError), as the pool calls it:
 *
 * - `onConnect(abort)` first, synchronously inside `dispatch`. `abort(err)`
 *   resets the stream with CANCEL and calls `onError(err)` once.
 * - `onHeaders(status, rawHeaders, resume, statusText, endStream)`: the
 *   final response head (1xx heads are not delivered), pseudo-headers left
 *   out, repeated fields as repeated pairs. `endStream` is true for a
 *   HEADERS frame with END_STREAM: no body follows, and in gRPC that is a
 *   Trailers-Only response (grpc-status is then in this head). Returning
 *   false pauses the stream until `resume()`; while paused nothing is read,
 *   so HTTP/2 flow control holds the server back (RFC 9113 §5.2).
 * - `onData(chunk)`: false pauses likewise.
 * - `onComplete(rawTrailers)`: the trailer fields (empty without trailers).
 * - `onError(err)`: exactly once on failure, never after `onComplete`.
 */
export interface H2DispatchHandler {
  onConnect?(abort: (err?: Error) => void): void;
  onHeaders?(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string, endStream?: boolean): boolean;
  onData?(chunk: Buffer): boolean;
  onComplete?(rawTrailers: Buffer[] | string[] | null): void;
  onError?(err: Error): void;
}

export interface H2PoolStats {
  /** Sessions not yet closed (connecting, ready or draining). */
  sessions: number;
  /** Streams open over all sessions. */
  streams: number;
  /** Requests waiting for a session or a free stream slot. */
  queued: number;
}

/**
 * Marks an error that failed requests the pool never wrote to the target
 * (its session could not be established): nothing reached the upstream,
 * so the request may go to another target. See `wasNotSent`.
 */
const NOT_SENT = Symbol('portico.h2NotSent');

/** Whether `err` failed a request before any of it was written (a connect failure of the session it waited for). */
export function wasNotSent(err: Error): boolean {
  return (err as Error & { [NOT_SENT]?: boolean })[NOT_SENT] === true;
}

const DEFAULT_MAX_SESSIONS = 16;
/** Times a request the server provably did not process is sent again on another session. */
const MAX_REPLAYS = 3;

const QUEUED = 0;
const ACTIVE = 1;
const DONE = 2;

const END_STREAM_FLAG = http2.constants.NGHTTP2_FLAG_END_STREAM;
const kRequest = Symbol('portico.h2Request');

type TaggedStream = ClientHttp2Stream & { [kRequest]: H2Request };

/** A field name (RFC 9110 §5.1 token), lower case (RFC 9113 §8.2.1). */
const TOKEN = /^[-!#$%&'*+.^_`|~0-9a-z]+$/;

/**
 * Fields Node's HTTP/2 layer accepts once per message (it throws on a
 * repeat); a repeated one keeps its first value.
 */
const SINGLE_VALUE = new Set([
  'access-control-allow-credentials', 'access-control-max-age', 'access-control-request-method', 'age', 'authorization',
  'content-encoding', 'content-language', 'content-length', 'content-location', 'content-md5', 'content-range',
  'content-type', 'date', 'dnt', 'etag', 'expires', 'from', 'if-match', 'if-modified-since', 'if-none-match', 'if-range',
  'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'range', 'referer',
  'retry-after', 'tk', 'upgrade-insecure-requests', 'user-agent', 'x-content-type-options',
]);

/**
 * An HTTP/2 connection pool to one target, with undici Pool's `dispatch`
 * contract (see `H2DispatchHandler`), for `h2` and `h2c` upstreams.
 *
 * - Requests share one session; a stream beyond the peer's
 *   SETTINGS_MAX_CONCURRENT_STREAMS waits in a FIFO queue, or goes to
 *   another session (opened only while every session is full, up to
 *   `maxSessions`). The pool never opens more streams than allowed.
 * - A request the server provably did not process (REFUSED_STREAM,
 *   RFC 9113 §8.7; above a GOAWAY's last stream id, §6.8; or never sent) is
 *   sent again on another session when its body can be replayed (none, a
 *   Buffer, or a stream not read yet), up to 3 times. Other failures go to
 *   `onError`: the retry policy above decides.
 * - A failed or closed session is dropped; the next request opens a new
 *   one. A connect failure fails the queued requests when no other session
 *   is left to carry them.
 */
export class H2Pool implements SessionOwner {
  readonly origin: string;
  private readonly url: URL;
  readonly idleTimeout: number;
  readonly responseTimeout: number;
  /** `:scheme` of every request: http (h2c) or https (h2). */
  readonly scheme: string;
  /** `host:port` of the origin: `:authority` when the request has no Host. */
  readonly authority: string;
  private readonly tls: tls.ConnectionOptions | undefined;
  private readonly connector: Connector;
  private readonly host: string;
  private readonly connectTimeout: number;
  private readonly maxSessions: number;
  private readonly sessions: H2Session[] = [];
  /** FIFO of requests waiting for a stream slot; entries before `head` are taken. */
  private queue: (H2Request | undefined)[] = [];
  private head = 0;
  private closing = false;
  /** destroy() was called: nothing is sent again. */
  destroyed = false;
  private closeWaiters: (() => void)[] = [];

  constructor(o: H2PoolOptions) {
    const url = new URL(o.origin);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`h2 origin must be http: or https:, got ${o.origin}`);
    this.scheme = url.protocol.slice(0, -1);
    this.authority = url.host;
    this.origin = url.origin;
    this.url = url;
    this.tls = url.protocol === 'https:' ? (o.tls ?? {}) : undefined;
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    this.host = o.host ?? host;
    this.connector = o.connector ?? new TcpConnector({ host, port: Number(url.port) || (url.protocol === 'https:' ? 443 : 80) });
    this.connectTimeout = o.connectTimeout;
    this.responseTimeout = o.responseTimeout;
    this.idleTimeout = o.idleTimeout;
    this.maxSessions = Math.max(1, o.maxSessions ?? DEFAULT_MAX_SESSIONS);
  }

  /** Sends one request. Returns false when the pool is closed (`onError` then has the reason). */
  dispatch(opts: H2DispatchOptions, handler: H2DispatchHandler): boolean {
    const req = new H2Request(this, opts, handler);
    handler.onConnect?.(req.abort);
    if (req.state !== QUEUED) return true; // aborted in onConnect
    if (req.headers === null) {
      req.fail(req.invalid!);
      return true;
    }
    if (this.closing) {
      req.fail(new H2ClientError(this.destroyed ? 'UND_ERR_DESTROYED' : 'UND_ERR_CLOSED', this.destroyed ? 'the pool was destroyed' : 'the pool is closed'));
      return false;
    }
    if (this.head === this.queue.length) {
      const s = this.availableSession();
      if (s !== null) {
        req.start(s);
        return true;
      }
    }
    this.queue.push(req);
    this.process();
    return true;
  }

  /** Graceful: requests queued or in flight finish, then every session sends GOAWAY and closes. */
  close(): Promise<void> {
    this.closing = true;
    const done = this.waitClosed();
    this.process();
    return done;
  }

  /** Fails every request (queued and in flight) and closes every session at once. */
  destroy(): Promise<void> {
    this.closing = true;
    this.destroyed = true;
    const done = this.waitClosed();
    const err = new H2ClientError('UND_ERR_DESTROYED', 'the pool was destroyed');
    const queued = this.queue;
    this.queue = [];
    this.head = 0;
    for (const req of queued) req?.fail(err);
    for (const s of [...this.sessions]) s.destroy(err);
    this.settleClose();
    return done;
  }

  stats(): H2PoolStats {
    let streams = 0;
    for (const s of this.sessions) streams += s.active;
    let queued = 0;
    for (let i = this.head; i < this.queue.length; i++) if (this.queue[i]?.state === QUEUED) queued++;
    return { sessions: this.sessions.length, streams, queued };
  }

  // SessionOwner ------------------------------------------------------------

  sessionReady(): void {
    this.process();
  }

  sessionDraining(): void {
    this.process();
  }

  sessionClosed(s: H2Session, err: Error | null, everReady: boolean): void {
    const i = this.sessions.indexOf(s);
    if (i >= 0) this.sessions.splice(i, 1);
    if (!everReady && !this.hasLiveSession()) {
      // Connect failure with nothing else to carry the queue: fail it, marked as not sent (the proxy tries another target).
      const e = err ?? new H2ClientError('UND_ERR_SOCKET', 'upstream closed the connection before the HTTP/2 session was established');
      (e as Error & { [NOT_SENT]?: boolean })[NOT_SENT] = true;
      this.failQueue(e);
    } else {
      this.process();
    }
    this.settleClose();
  }

  // Internal ------------------------------------------------------------------

  /** A stream of `s` closed: its slot may take a queued request. */
  streamClosed(): void {
    if (this.head < this.queue.length || this.closing) this.process();
  }

  /** Puts a request the server did not process back at the front of the queue. */
  requeue(req: H2Request): void {
    if (this.destroyed) return req.fail(new H2ClientError('UND_ERR_DESTROYED', 'the pool was destroyed'));
    if (this.head > 0) this.queue[--this.head] = req;
    else this.queue.unshift(req);
  }

  /** Starts queued requests on free stream slots; opens a session when none is free. */
  private process(): void {
    const queue = this.queue;
    while (this.head < queue.length) {
      const req = queue[this.head];
      if (req === undefined || req.state !== QUEUED) {
        queue[this.head++] = undefined;
        continue;
      }
      const s = this.availableSession();
      if (s === null) {
        this.connectIfNeeded();
        break;
      }
      queue[this.head++] = undefined;
      req.start(s);
    }
    if (this.head === queue.length) {
      if (this.head > 0) {
        queue.length = 0;
        this.head = 0;
      }
      if (this.closing) {
        // Only sessions with no stream: a GOAWAY sent before a new stream's HEADERS makes nghttp2 refuse that stream.
        for (const s of [...this.sessions]) if (s.active === 0) s.close();
        this.settleClose();
      }
    } else if (this.head > 1024 && this.head * 2 > queue.length) {
      this.queue = queue.slice(this.head);
      this.head = 0;
    }
  }

  private availableSession(): H2Session | null {
    const sessions = this.sessions;
    for (let i = 0; i < sessions.length; i++) if (sessions[i]!.available) return sessions[i]!;
    return null;
  }

  /** Opens a session unless one is connecting already or `maxSessions` are up. */
  private connectIfNeeded(): void {
    let live = 0;
    for (const s of this.sessions) {
      if (s.state === CONNECTING) return;
      if (s.state === READY) live++;
    }
    if (live >= this.maxSessions) return;
    this.sessions.push(
      new H2Session(this, this.url, { connector: this.connector, host: this.host, tls: this.tls, connectTimeout: this.connectTimeout, idleTimeout: this.idleTimeout }),
    );
  }

  private hasLiveSession(): boolean {
    for (const s of this.sessions) if (s.state === CONNECTING || s.state === READY) return true;
    return false;
  }

  private failQueue(err: Error): void {
    const queued = this.queue;
    const head = this.head;
    this.queue = [];
    this.head = 0;
    for (let i = head; i < queued.length; i++) queued[i]?.fail(err);
  }

  private waitClosed(): Promise<void> {
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  private settleClose(): void {
    if (!this.closing || this.sessions.length > 0 || this.head < this.queue.length) return;
    const waiters = this.closeWaiters;
    this.closeWaiters = [];
    for (const w of waiters) w();
  }
}

/** One dispatched request: its handler, the HTTP/2 header block and the stream it is on. */
class H2Request {
  state = QUEUED;
  readonly pool: H2Pool;
  readonly handler: H2DispatchHandler;
  /** The HTTP/2 header block, built once (a replay sends it again); null when a header name is invalid. */
  readonly headers: OutgoingHttpHeaders | null;
  readonly invalid: Error | null = null;
  readonly body: Buffer | Readable | null;
  readonly headersTimeout: number;
  stream: TaggedStream | null = null;
  session: H2Session | null = null;
  headersReceived = false;
  paused = false;
  /** The stream timeout fired while paused: re-armed on resume. */
  timedOutPaused = false;
  trailers: Buffer[] | null = null;
  /** A HEADERS frame with END_STREAM arrived (a trailers-only response, or the trailers). */
  endStreamSeen = false;
  /** The stream's 'error', if any: read when it closes. */
  streamError: Error | null = null;
  replays = 0;

  constructor(pool: H2Pool, opts: H2DispatchOptions, handler: H2DispatchHandler) {
    this.pool = pool;
    this.handler = handler;
    this.body = opts.body;
    this.headersTimeout = opts.headersTimeout ?? pool.responseTimeout;
    const headers = requestHeaders(opts, pool.scheme, pool.authority);
    if (typeof headers === 'string') {
      // Node would destroy the whole session over it (ERR_INVALID_HTTP_TOKEN), failing every stream on it.
      this.headers = null;
      this.invalid = new H2ClientError('UND_ERR_INVALID_ARG', `invalid request header name: ${JSON.stringify(headers)}`);
    } else {
      this.headers = headers;
    }
  }

  readonly abort = (err?: Error): void => {
    this.fail(err ?? new H2ClientError('UND_ERR_ABORTED', 'request aborted'));
  };

  readonly resume = (): void => {
    if (!this.paused || this.state !== ACTIVE) return;
    this.paused = false;
    const stream = this.stream!;
    if (this.timedOutPaused) {
      this.timedOutPaused = false;
      stream.setTimeout(this.pool.idleTimeout);
    }
    stream.resume();
  };

  start(s: H2Session): void {
    const body = this.body;
    let stream: TaggedStream;
    try {
      stream = s.request(this.headers!, body === null || (Buffer.isBuffer(body) && body.length === 0)) as TaggedStream;
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    this.state = ACTIVE;
    this.session = s;
    this.stream = stream;
    stream[kRequest] = this;
    stream.on('response', onResponse);
    stream.on('trailers', onTrailers);
    stream.on('end', onEnd);
    stream.on('error', onStreamError);
    stream.on('close', onClose);
    if (this.headersTimeout > 0) stream.setTimeout(this.headersTimeout);
    if (this.headersTimeout > 0 || this.pool.idleTimeout > 0) stream.on('timeout', onTimeout);
    if (body !== null) {
      if (Buffer.isBuffer(body)) {
        if (body.length > 0) stream.end(body);
      } else {
        // pipe: stream.write() false pauses the body until 'drain'; the stream's close unpipes it.
        if (this.replays === 0) body.once('error', (err) => this.fail(err));
        body.pipe(stream);
      }
    }
  }

  /** Whether the request can be sent again: its body was not read (or is in memory) and replays are left. */
  replayable(): boolean {
    const body = this.body;
    return this.replays < MAX_REPLAYS && (body === null || Buffer.isBuffer(body) || !body.readableDidRead);
  }

  /** Back to the queue for another session (the server did not process it). */
  replay(): void {
    const old = this.stream;
    if (old !== null && this.body !== null && !Buffer.isBuffer(this.body)) this.body.unpipe(old);
    this.replays++;
    this.state = QUEUED;
    this.stream = null;
    this.session = null;
    this.headersReceived = false;
    this.paused = false;
    this.trailers = null;
    this.endStreamSeen = false;
    this.streamError = null;
    this.pool.requeue(this);
  }

  complete(): void {
    this.state = DONE;
    this.handler.onComplete?.(this.trailers ?? []);
  }

  /** Ends the request with `err`: resets the stream (CANCEL) if still open, then `onError`, once. */
  fail(err: Error): void {
    if (this.state === DONE) return;
    this.state = DONE;
    const stream = this.stream;
    if (stream !== null && !stream.closed) stream.close(CANCEL);
    this.handler.onError?.(err);
  }
}

// Stream listeners: shared functions (no closure per request); `this` is the stream.

function onResponse(this: TaggedStream, headers: IncomingHttpHeaders, flags: number, raw: string[]): void {
  const req = this[kRequest];
  if (req.stream !== this || req.state !== ACTIVE) return;
  req.headersReceived = true;
  const idle = req.pool.idleTimeout;
  if (req.headersTimeout !== idle) this.setTimeout(idle);
  const endStream = (flags & END_STREAM_FLAG) !== 0;
  req.endStreamSeen = endStream;
  let keepReading: boolean | undefined;
  try {
    keepReading = req.handler.onHeaders?.(headers[':status'] as unknown as number, rawFields(raw), req.resume, '', endStream);
  } catch (err) {
    req.fail(err as Error);
    return;
  }
  if (req.state !== ACTIVE) return;
  if (keepReading === false) {
    req.paused = true;
    this.pause();
  }
  this.on('data', onData);
}

function onData(this: TaggedStream, chunk: Buffer): void {
  const req = this[kRequest];
  if (req.state !== ACTIVE) return;
  let more: boolean | undefined;
  try {
    more = req.handler.onData?.(chunk);
  } catch (err) {
    req.fail(err as Error);
    return;
  }
  if (more === false && req.state === ACTIVE) {
    req.paused = true;
    this.pause();
  }
}

function onTrailers(this: TaggedStream, _headers: IncomingHttpHeaders, _flags: number, raw: string[]): void {
  const req = this[kRequest];
  if (req.stream !== this) return;
  req.trailers = rawFields(raw);
  req.endStreamSeen = true;
}

/**
 * The readable side ended: the response's END_STREAM was read (after its
 * trailers, if any). Node also ends it when the stream is reset: after a
 * reset with an error code, only a response whose END_STREAM is known to
 * have arrived (trailers, or a HEADERS frame that ended the stream) is
 * complete; otherwise 'close' fails it (never a silently short body).
 */
function onEnd(this: TaggedStream): void {
  const req = this[kRequest];
  if (req.stream !== this || req.state !== ACTIVE || !req.headersReceived) return;
  const rst = this.rstCode;
  if (rst !== undefined && rst !== NO_ERROR && !req.endStreamSeen) return;
  req.complete();
}

function onStreamError(this: TaggedStream, err: Error): void {
  const req = this[kRequest];
  if (req.stream === this) req.streamError ??= err;
}

function onTimeout(this: TaggedStream): void {
  const req = this[kRequest];
  if (req.stream !== this || req.state !== ACTIVE) return;
  if (!req.headersReceived) {
    req.fail(new H2ClientError('UND_ERR_HEADERS_TIMEOUT', `no response head within ${req.headersTimeout} ms`));
  } else if (req.paused) {
    // Not the upstream's fault: the handler is holding the stream (undici does not time out a paused body either).
    req.timedOutPaused = true;
  } else {
    req.fail(new H2ClientError('UND_ERR_BODY_TIMEOUT', `no response data for ${req.pool.idleTimeout} ms`));
  }
}

/**
 * The stream is closed: free its slot; a request still waiting for its
 * response is sent again when the server provably did not process it,
 * else it fails.
 */
function onClose(this: TaggedStream): void {
  const req = this[kRequest];
  if (req.stream !== this) return;
  const s = req.session!;
  s.streamClosed();
  if (req.state === ACTIVE) {
    if (!req.headersReceived && s.unprocessed(this) && req.replayable()) req.replay();
    else req.fail(closeError(req, s, this));
  }
  req.pool.streamClosed();
}

/** Why a stream closed before its response ended. */
function closeError(req: H2Request, s: H2Session, stream: ClientHttp2Stream): Error {
  const err = req.streamError;
  // A session-level failure (socket reset, GOAWAY with an error, pool destroyed) is reported as itself.
  if (err !== null && (err as { code?: string }).code !== 'ERR_HTTP2_STREAM_ERROR') return err;
  const code = stream.rstCode ?? NO_ERROR;
  // A session that died closes its open streams locally (NO_ERROR or CANCEL): the connection was lost, nobody reset the stream.
  if (s.session.destroyed && (code === NO_ERROR || code === CANCEL)) {
    return s.error ?? new H2ClientError('UND_ERR_SOCKET', 'upstream closed the HTTP/2 session before the response ended');
  }
  return new H2ClientError('UPSTREAM_STREAM_RESET', `upstream reset the stream (${errorName(code)})`, code, err ?? undefined);
}

const ERROR_NAMES = [
  'NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED', 'FRAME_SIZE_ERROR',
  'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM', 'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED',
];

/** RFC 9113 §7 name of an error code. */
function errorName(code: number): string {
  return ERROR_NAMES[code] ?? `0x${code.toString(16)}`;
}

/** Node's flat `[name, value, …]` header strings (latin1, one char per byte) as undici's raw Buffers, pseudo-headers left out. */
function rawFields(raw: string[]): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.charCodeAt(0) === 0x3a) continue;
    out.push(Buffer.from(name, 'latin1'), Buffer.from(raw[i + 1]!, 'latin1'));
  }
  return out;
}

/**
 * The HTTP/2 header block of a request (RFC 9113 §8.3.1): `:method`,
 * `:scheme`, `:path`, `:authority` from Host (else the origin), names in
 * lower case (§8.2.1), connection-specific fields dropped (§8.2.2:
 * Connection and what it names, Keep-Alive, Proxy-Connection,
 * Transfer-Encoding, Upgrade, HTTP2-Settings, and TE unless "trailers"),
 * repeated fields as arrays.
 */
function requestHeaders(opts: H2DispatchOptions, scheme: string, authority: string): OutgoingHttpHeaders | string {
  const h = Object.create(null) as OutgoingHttpHeaders;
  h[':method'] = opts.method;
  h[':scheme'] = scheme;
  h[':path'] = opts.path;
  h[':authority'] = authority;
  let hostSeen = false;
  let connection: string | undefined;
  const raw = opts.headers;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    const c = name.charCodeAt(0);
    // Only names starting with c, h, k, p, t or u (or ':') need a closer look.
    if (c === 0x63 || c === 0x68 || c === 0x6b || c === 0x70 || c === 0x74 || c === 0x75 || c === 0x3a) {
      switch (name) {
        case 'host':
          if (!hostSeen) h[':authority'] = value;
          hostSeen = true;
          continue;
        case 'connection':
          connection = connection === undefined ? value : `${connection},${value}`;
          continue;
        case 'keep-alive':
        case 'proxy-connection':
        case 'transfer-encoding':
        case 'upgrade':
        case 'http2-settings':
          continue;
        case 'te':
          if (value.trim().toLowerCase() === 'trailers') h.te = 'trailers';
          continue;
      }
      if (c === 0x3a) continue; // pseudo-headers are the pool's
    }
    const prev = h[name];
    if (prev === undefined) {
      if (!TOKEN.test(name)) return name;
      h[name] = value;
    } else if (!SINGLE_VALUE.has(name)) {
      if (Array.isArray(prev)) prev.push(value);
      else h[name] = [prev as string, value];
    }
  }
  if (connection !== undefined) {
    for (const token of connection.split(',')) {
      const t = token.trim().toLowerCase();
      if (t !== '' && t.charCodeAt(0) !== 0x3a && t !== 'te') delete h[t];
    }
  }
  return h;
}
