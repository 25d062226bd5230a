import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { errors, type Dispatcher } from 'undici';
import { ResponseParser, type ResponseSink } from './parser.js';
import type { H1Request, RequestHead } from './request.js';
import type { ReadInto } from '../../runtime/connector.js';

/** What a connection needs from its pool (pool.ts). */
export interface ConnectionOwner {
  readonly responseTimeout: number;
  readonly idleTimeout: number;
  /** Opens the byte stream (the target's connector, TLS on top for https). */
  connect(servername: string | undefined, readInto: ReadInto, callback: (err: Error | null, socket: Socket | null) => void): void;
  /** The connection finished a response and may carry another request. */
  release(c: Connection): void;
  /** The connection is gone (closed, failed, or its connect failed). Called once. */
  removed(c: Connection): void;
}

const CONNECTING = 0;
const IDLE = 1;
const BUSY = 2;
const CLOSED = 3;

/** What the idle timer is counting: nothing, the silence of a response body, or an idle keep-alive connection. */
const OFF = 0;
const BODY = 1;
const KEEP_ALIVE = 2;

/** Bytes per read of a plain TCP connection (libuv's own read size). */
const READ_SIZE = 64 * 1024;

/** A Buffer body up to this size is copied after the head into one buffer (one write); a larger one is written with cork/uncork. */
const JOIN_LIMIT = 16 * 1024;

/** When the upstream hints no `Keep-Alive: timeout`, an idle connection without an idle timeout is kept this long (undici's default). */
const DEFAULT_KEEP_ALIVE = 60_000;
/** Taken off the upstream's Keep-Alive hint, so a connection it is about to close is not reused (undici's keepAliveTimeoutThreshold). */
const HINT_MARGIN = 1000;

/**
 * One HTTP/1.1 keep-alive connection to a target, carrying one request
 * at a time (no pipelining), with undici's dispatch handler contract as
 * the proxy uses it (exchange/exchange.ts UpstreamCall):
 *
 * - `onConnect(abort)` once the request is on a connected socket, just
 *   before its first byte is written; `abort(err)` ends the request with
 *   `onError(err)` and closes the connection as failed: it is never reused
 *   and nothing is sent again for that request.
 * - `onHeaders(status, raw, resume, reason)` for the final head (1xx are
 *   dropped), `onData(chunk)` for each body chunk (a subarray of the
 *   socket's own buffer; false pauses the socket until `resume()`),
 *   `onComplete(trailers)` once, or `onError(err)` once instead.
 * - Timeouts: the response head within `headersTimeout` of the request
 *   (restarted while the body is being written, as undici does); no
 *   silence longer than the idle timeout inside a body (not counted while
 *   the handler holds the body back); an idle connection closes after the
 *   idle timeout, or the upstream's `Keep-Alive: timeout` hint less one
 *   second. Errors carry undici's codes (UND_ERR_HEADERS_TIMEOUT,
 *   UND_ERR_BODY_TIMEOUT, UND_ERR_SOCKET, HPE_* from parser.ts …).
 * - A response that ends while the request body is still being written
 *   completes, and its connection is closed. Bytes that arrive while no
 *   request is in flight close the connection.
 */
/**
 * A dispatch handler that can tell whether it still holds the last body
 * chunk it was given (it could not write it on at once). One that cannot
 * tell is taken to hold it.
 */
export interface ChunkHolder {
  holdsChunk?(): boolean;
}

export class Connection implements ResponseSink {
  private readonly owner: ConnectionOwner;
  /** The TLS server name the connection was opened with (https), else undefined. */
  readonly servername: string | undefined;
  private socket: Socket | null = null;
  private state = CONNECTING;
  private readonly parser: ResponseParser;
  /** The request in flight, or null. */
  private handler: Dispatcher.DispatchHandler | null = null;
  /** Counts requests: a stale `abort` or `resume` (of a request that ended) does nothing. */
  private seq = 0;
  /** The request waiting for the connect to finish. */
  private first: { opts: H1Request; handler: Dispatcher.DispatchHandler; head: RequestHead } | null = null;

  /** The request body being written (a stream), or null. */
  private body: Readable | null = null;
  /** Bytes of a Content-Length body still to write, or -1 when the body is sent chunked. */
  private bodyLeft = -1;

  /** The handler held the body back: the rest of `held` from `heldAt` is parsed on resume. */
  private paused = false;
  private held: Buffer | null = null;
  private heldAt = 0;

  /**
   * The buffer the next read of a plain TCP connection goes into (see
   * `onRead`), created with the first read; and whether a view of it is
   * still held after the current read, so that the next read needs a new one.
   */
  private readBuffer: Buffer | null = null;
  private readHeld = false;
  private readonly readInto: ReadInto = {
    buffer: () => (this.readBuffer ??= Buffer.allocUnsafeSlow(READ_SIZE)),
    callback: (bytes, buffer) => this.onRead(bytes, buffer),
  };

  private headTimer: NodeJS.Timeout | null = null;
  private headMs = 0;
  private headArmed = false;
  private idleTimer: NodeJS.Timeout | null = null;
  private idleMs = 0;
  private idleKind = OFF;
  /** The keep-alive time after the current response (the upstream's hint applied). */
  private keepAliveMs = 0;

  constructor(owner: ConnectionOwner, servername: string | undefined) {
    this.owner = owner;
    this.servername = servername;
    this.parser = new ResponseParser(this);
  }

  /** Opens the connection and sends `opts` on it once connected (or fails the handler with the connect error). */
  open(opts: H1Request, handler: Dispatcher.DispatchHandler, head: RequestHead): void {
    this.first = { opts, handler, head };
    this.owner.connect(this.servername, this.readInto, (err, socket) => this.connected(err, socket));
  }

  get idle(): boolean {
    return this.state === IDLE;
  }

  private connected(err: Error | null, socket: Socket | null): void {
    const first = this.first!;
    this.first = null;
    if (this.state === CLOSED) {
      // Destroyed while connecting (pool destroy): its request was failed then.
      socket?.destroy();
      return;
    }
    if (err !== null || socket === null) {
      this.state = CLOSED;
      this.owner.removed(this);
      first.handler.onError!(err ?? new errors.SocketError('no connection'));
      return;
    }
    this.socket = socket;
    socket.on('data', this.onSocketData);
    socket.on('end', this.onSocketEnd);
    socket.on('error', this.onSocketError);
    socket.on('close', this.onSocketClose);
    socket.on('drain', this.onSocketDrain);
    this.state = IDLE;
    this.send(first.opts, first.handler, first.head);
  }

  /** Sends a request on this idle, connected connection. */
  send(opts: H1Request, handler: Dispatcher.DispatchHandler, head: RequestHead): void {
    this.state = BUSY;
    this.idleKind = OFF;
    const seq = ++this.seq;
    this.handler = handler;
    this.parser.reset(opts.method === 'HEAD');
    handler.onConnect?.((err?: Error) => {
      if (this.seq === seq) this.fail(err ?? new errors.RequestAbortedError());
    });
    if (this.seq !== seq) return;
    const socket = this.socket!;
    const body = opts.body;
    const text = head.text;
    if (body == null) {
      socket.write(text, 'latin1');
    } else if (Buffer.isBuffer(body)) {
      if (body.length <= JOIN_LIMIT) {
        const out = Buffer.allocUnsafe(text.length + body.length);
        out.write(text, 0, 'latin1');
        body.copy(out, text.length);
        socket.write(out);
      } else {
        socket.cork();
        socket.write(text, 'latin1');
        socket.write(body);
        socket.uncork();
      }
    } else {
      socket.write(text, 'latin1');
      this.pipeBody(body, head.contentLength);
    }
    if (this.seq !== seq) return;
    this.armHead(opts.headersTimeout ?? this.owner.responseTimeout);
  }

  /** Closes an idle connection, or fails the request in flight with `err`. */
  destroy(err: Error): void {
    if (this.state === CONNECTING) {
      const first = this.first;
      this.first = null;
      this.state = CLOSED;
      this.owner.removed(this);
      first?.handler.onError!(err);
      return;
    }
    this.fail(err);
  }

  // ---- the response (parser.ts sink) ----

  onResponseHead(status: number, reason: string, raw: Buffer[]): boolean {
    this.headArmed = false;
    const p = this.parser;
    if (p.keepAlive) {
      const idle = this.owner.idleTimeout || DEFAULT_KEEP_ALIVE;
      this.keepAliveMs = p.keepAliveHintMs < 0 ? idle : Math.min(idle, p.keepAliveHintMs - HINT_MARGIN);
    }
    this.armIdle(BODY, this.owner.idleTimeout);
    return this.handler!.onHeaders!(status, raw as unknown as Buffer[], this.resumeOf(this.seq), reason);
  }

  onResponseBody(chunk: Buffer): boolean {
    const h = this.handler!;
    const go = h.onData!(chunk);
    // Only a read into `readBuffer` (plain TCP) asks; a handler that cannot tell is taken to keep the chunk.
    if (this.readBuffer !== null && !this.readHeld && (h as ChunkHolder).holdsChunk?.() !== false) this.readHeld = true;
    return go;
  }

  /**
   * A read of a plain TCP connection, into `readBuffer` (node:net's
   * `onread`): parsed as a 'data' chunk would be. Body chunks go on as views
   * of this buffer, and the next read reuses it, so a steady stream of
   * large responses allocates nothing per read (no external memory for the
   * garbage collector to chase). Only when a view may outlive the read (the
   * handler could not write it on at once, or a head or trailer section is
   * not complete) does the next read get a new buffer. Returns false to
   * pause the socket.
   */
  private onRead(bytes: number, buffer: Buffer): boolean {
    this.readHeld = false;
    this.onSocketData(buffer.subarray(0, bytes));
    this.releaseRead();
    return !this.paused;
  }

  /** After a read (or a resume that parsed a held one): a read buffer that is still looked at is not read into again. */
  private releaseRead(): void {
    if (this.readHeld || this.paused || this.parser.holdsInput) this.readBuffer = null;
    this.readHeld = false;
  }

  private resumeOf(seq: number): () => void {
    return () => {
      if (this.seq === seq) this.resume();
    };
  }

  private resume(): void {
    if (!this.paused || this.state !== BUSY) return;
    this.paused = false;
    this.armIdle(BODY, this.owner.idleTimeout);
    const held = this.held;
    this.held = null;
    if (held !== null && this.heldAt < held.length) {
      const seq = this.seq;
      this.feed(held, this.heldAt);
      this.releaseRead();
      if (this.seq !== seq || this.paused || this.state !== BUSY) return;
    }
    this.socket!.resume();
  }

  private readonly onSocketData = (chunk: Buffer): void => {
    if (this.state !== BUSY) {
      // Bytes with no request in flight: a response to nothing, or what trails one (RFC 9112 §9.3.2 pipelining is not used).
      this.close();
      return;
    }
    if (this.paused) {
      // Read before the pause took effect: kept, in order, for resume.
      const held = this.held;
      this.held = held === null ? chunk : Buffer.concat([held.subarray(this.heldAt), chunk]);
      this.heldAt = 0;
      return;
    }
    if (this.idleKind === BODY) this.idleTimer!.refresh();
    this.feed(chunk, 0);
  };

  /** Parses `buf` from `at` for the request in flight, and acts on where the parser stopped. */
  private feed(buf: Buffer, at: number): void {
    const seq = this.seq;
    const p = this.parser;
    let end: number;
    try {
      end = p.execute(buf, at);
    } catch (err) {
      // A handler threw: the request fails, its connection with it.
      if (this.seq === seq) this.fail(err as Error);
      else this.close();
      return;
    }
    if (this.seq !== seq || this.state !== BUSY) return;
    if (end < 0) return this.fail(p.error ?? new errors.SocketError('bad response'));
    if (p.done) return this.complete(end < buf.length);
    if (p.paused) {
      this.paused = true;
      this.held = end < buf.length ? buf : null;
      this.heldAt = end;
      this.idleKind = OFF;
      this.socket!.pause();
    }
  }

  /** The response is complete: the handler gets onComplete, the connection goes back to the pool or closes. */
  private complete(trailing: boolean): void {
    const handler = this.handler!;
    const trailers = this.parser.trailers;
    const reuse = this.parser.keepAlive && this.body === null && !trailing && this.keepAliveMs > 0;
    this.handler = null;
    this.seq++;
    this.headArmed = false;
    this.paused = false;
    this.held = null;
    if (reuse) {
      this.state = IDLE;
      // A response that completed while its connection was paused (held bytes parsed on resume): the idle
      // connection reads again, or the next request's response would never be read.
      const socket = this.socket!;
      if (socket.isPaused()) socket.resume();
      this.armIdle(KEEP_ALIVE, this.keepAliveMs);
      this.owner.release(this);
    } else {
      this.close();
    }
    handler.onComplete!(trailers as unknown as string[] | null);
  }

  /** Fails the request in flight (if any) with `err` and closes the connection. */
  private fail(err: Error): void {
    const handler = this.handler;
    this.handler = null;
    this.seq++;
    this.close();
    if (handler !== null) handler.onError!(err);
  }

  /** Closes the connection; the pool forgets it. */
  private close(): void {
    if (this.state === CLOSED) return;
    this.state = CLOSED;
    this.parser.halt();
    this.headArmed = false;
    this.idleKind = OFF;
    if (this.headTimer !== null) clearTimeout(this.headTimer);
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.held = null;
    this.detachBody();
    // Not informational: nothing is pending on this connection to send again (see h1-connection.ts for undici's case).
    this.socket?.destroy();
    this.owner.removed(this);
  }

  private readonly onSocketEnd = (): void => {
    if (this.state !== BUSY) return this.close();
    if (this.parser.finish()) return this.complete(false);
    this.fail(new errors.SocketError('other side closed'));
  };

  private readonly onSocketError = (err: Error): void => {
    if (this.state === BUSY) this.fail(err);
    else this.close();
  };

  private readonly onSocketClose = (): void => {
    if (this.state === BUSY) this.fail(new errors.SocketError('closed'));
    else this.close();
  };

  // ---- timers ----

  /** The response head must arrive within `ms` (0: no limit). */
  private armHead(ms: number): void {
    if (ms <= 0) return;
    this.headArmed = true;
    if (this.headTimer !== null && this.headMs === ms) {
      this.headTimer.refresh();
      return;
    }
    if (this.headTimer !== null) clearTimeout(this.headTimer);
    this.headTimer = setTimeout(onHeadTimer, ms, this).unref();
    this.headMs = ms;
  }

  headTimedOut(): void {
    if (this.headArmed && this.state === BUSY) this.fail(new errors.HeadersTimeoutError());
  }

  private armIdle(kind: number, ms: number): void {
    if (ms <= 0) {
      this.idleKind = OFF;
      return;
    }
    this.idleKind = kind;
    if (this.idleTimer !== null && this.idleMs === ms) {
      this.idleTimer.refresh();
      return;
    }
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(onIdleTimer, ms, this).unref();
    this.idleMs = ms;
  }

  idleTimedOut(): void {
    const kind = this.idleKind;
    this.idleKind = OFF;
    if (kind === BODY && this.state === BUSY) this.fail(new errors.BodyTimeoutError());
    else if (kind === KEEP_ALIVE && this.state === IDLE) this.close();
  }

  // ---- the request body (a stream) ----

  private pipeBody(body: Readable, contentLength: number): void {
    if (body.destroyed || body.readableEnded) {
      // Nothing more will come: an ended body is empty now; a destroyed one cannot be sent.
      if (body.readableEnded && contentLength <= 0) {
        if (contentLength < 0) this.socket!.write('0\r\n\r\n', 'latin1');
        return;
      }
      return this.fail(new errors.RequestAbortedError('request body no longer readable'));
    }
    this.body = body;
    this.bodyLeft = contentLength;
    body.on('data', this.onBodyData);
    body.on('end', this.onBodyEnd);
    body.on('error', this.onBodyError);
    body.on('close', this.onBodyClose);
  }

  private detachBody(): void {
    const body = this.body;
    if (body === null) return;
    this.body = null;
    body.off('data', this.onBodyData);
    body.off('end', this.onBodyEnd);
    body.off('error', this.onBodyError);
    body.off('close', this.onBodyClose);
    // A body left unfinished may still fail (its client going away): that is no longer this request's error.
    if (!body.readableEnded) body.on('error', ignore);
  }

  private readonly onBodyData = (chunk: Buffer | string): void => {
    if (typeof chunk === 'string') chunk = Buffer.from(chunk);
    const socket = this.socket!;
    let ok: boolean;
    if (this.bodyLeft >= 0) {
      if (chunk.length > this.bodyLeft) return this.fail(new errors.RequestContentLengthMismatchError());
      this.bodyLeft -= chunk.length;
      ok = socket.write(chunk);
    } else {
      if (chunk.length === 0) return;
      // One chunk per read (RFC 9112 §7.1): size line, data, CRLF in one write.
      socket.cork();
      socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      socket.write(chunk);
      ok = socket.write('\r\n', 'latin1');
      socket.uncork();
    }
    if (this.headArmed) this.headTimer!.refresh();
    if (!ok) this.body!.pause();
  };

  private readonly onSocketDrain = (): void => {
    if (this.body !== null) this.body.resume();
  };

  private readonly onBodyEnd = (): void => {
    if (this.bodyLeft > 0) return this.fail(new errors.RequestContentLengthMismatchError());
    if (this.bodyLeft < 0) this.socket!.write('0\r\n\r\n', 'latin1');
    this.detachBody();
    if (this.headArmed) this.headTimer!.refresh();
  };

  private readonly onBodyError = (err: Error): void => {
    this.fail(err);
  };

  /** The body stream closed before its end: the request is cut (a client that went away). */
  private readonly onBodyClose = (): void => {
    if (this.body !== null && !this.body.readableEnded) this.fail(new errors.RequestAbortedError('request body closed before its end'));
  };
}

function ignore(): void {}

function onHeadTimer(c: Connection): void {
  c.headTimedOut();
}

function onIdleTimer(c: Connection): void {
  c.idleTimedOut();
}
