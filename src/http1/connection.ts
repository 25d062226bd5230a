import type net from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { recognizeHead } from './head-parser.js';
import { LeanRequest } from './request.js';
import { LeanResponse, type ResponseOwner } from './response.js';

/** What a lean connection needs from its HTTP listener (listeners/http.ts). */
export interface LeanHost {
  /** node:http's maxHeaderSize for this listener: a longer head is node:http's to refuse. */
  readonly maxHeaderSize: number;
  keepAliveMs(): number;
  headersTimeoutMs(): number;
  /** Runs the request lifecycle on one request (handler.ts `handleRequest`, via the listener). */
  serve(req: IncomingMessage, res: ServerResponse): void;
  /**
   * node:http takes the connection from here on; `socket` is paused with
   * the unread bytes put back. `queued`: those bytes were read while a
   * response was still in flight (pipelined behind it), which is how
   * node:http would have seen them.
   */
  handOver(socket: net.Socket, queued: boolean): void;
  /** The first bytes may be the HTTP/2 preface (RFC 9113 §3.4) on a listener that serves it. */
  mayBeH2(first: Buffer): boolean;
  /** Takes the socket (first bytes put back) to tell HTTP/2 from HTTP/1.1 (listeners/h2-preface.ts). */
  sniff(socket: net.Socket, first: Buffer): void;
  /** Nothing arrived within the headers timeout: answered as node:http answers it. */
  idleAtStart(socket: net.Socket): void;
  /** The connection is done with the lean engine (closed, or handed over). */
  forget(conn: LeanConnection): void;
}

/** Unread bytes kept while a response is in flight; past this, reading stops until it is done. */
const PENDING_LIMIT = 64 * 1024;

/**
 * One downstream HTTP/1.1 connection served by the lean engine: it reads
 * request heads the recognizer (head-parser.ts) accepts, runs each through
 * the request lifecycle with a LeanRequest / LeanResponse, and answers them
 * in order, one at a time (pipelined requests wait, RFC 9112 §9.3.2). The
 * first head it does not recognize (odd, malformed, split across reads, or
 * with a body not yet read) makes it hand the connection to node:http at
 * that request boundary, once the response in flight is done; node:http
 * then serves it to its end, and answers bad input as it always has.
 *
 * Timeouts: `timeouts.headers` until the first request (then as node:http
 * would: 408, or a silent close on a listener that also waits for the
 * HTTP/2 preface), `timeouts.keepAlive` while idle between requests.
 * State lives here, never on the socket.
 */
export class LeanConnection implements ResponseOwner {
  readonly socket: net.Socket;
  private readonly host: LeanHost;
  /** Bytes read and not yet taken by a request. */
  private pending: Buffer | null = null;
  /** The response being answered; null when idle. */
  private active: LeanResponse | null = null;
  /** Requests taken so far. */
  private served = 0;
  /** Something was read (the first read may be the HTTP/2 preface). */
  private started = false;
  /** No further request is taken: the connection ends after the response in flight. */
  private closing = false;
  /** The connection left the lean engine (handed over or closed). */
  private done = false;
  private driving = false;
  /** Bytes were already waiting when the last response ended (pipelined behind it). */
  private queuedBehind = false;
  private readonly onData = (chunk: Buffer): void => this.read(chunk);
  private readonly onDrain = (): void => this.drained();
  private readonly onEnd = (): void => this.peerEnded();
  private readonly onClose = (): void => this.closed();
  private readonly onTimeout = (): void => this.timedOut();

  constructor(host: LeanHost, socket: net.Socket) {
    this.host = host;
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('drain', this.onDrain);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    socket.on('timeout', this.onTimeout);
    socket.on('error', destroyOnError);
    socket.setTimeout(host.headersTimeoutMs());
  }

  keepAliveMs(): number {
    return this.host.keepAliveMs();
  }

  /**
   * Graceful close (connection registry, listener close): an idle
   * connection ends now; a response in flight is finished with
   * `Connection: close` if its head is not out yet, and the connection
   * ends after it (RFC 9112 §9.6). Returns false when node:http has the
   * connection (its own rules apply).
   */
  shutdown(end: (socket: net.Socket) => void): boolean {
    if (this.done) return false;
    this.closing = true;
    this.pending = null;
    const res = this.active;
    if (res === null) end(this.socket);
    else if (!res.headersSent) res.shouldKeepAlive = false;
    else res.once('finish', () => end(this.socket));
    return true;
  }

  /** Closes the connection if no request is in flight (listener close: node:http's closeIdleConnections). */
  closeIfIdle(): void {
    if (!this.done && this.active === null) this.socket.destroy();
  }

  private read(chunk: Buffer): void {
    if (!this.started) {
      this.started = true;
      if (this.host.mayBeH2(chunk)) {
        this.detach();
        return this.host.sniff(this.socket, chunk);
      }
    }
    if (this.closing) return;
    this.pending = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    if (this.active !== null) {
      if (this.pending.length > PENDING_LIMIT) this.socket.pause();
      return;
    }
    this.drive();
  }

  /** Takes requests from the bytes read while none is in flight; hands over at the first one not recognized. */
  private drive(): void {
    if (this.driving) return;
    this.driving = true;
    try {
      while (this.active === null && !this.closing && !this.done && this.pending !== null) {
        if (this.socket.writableNeedDrain) return;
        const buf = this.pending;
        const head = recognizeHead(buf, 0, buf.length, this.host.maxHeaderSize);
        if (head === null) return this.handOver();
        this.pending = head.end < buf.length ? buf.subarray(head.end) : null;
        const body = head.contentLength > 0 ? buf.subarray(head.bodyStart, head.end) : null;
        const res = new LeanResponse(this, head.method === 'HEAD', head.keepAlive);
        this.active = res;
        this.queuedBehind = false;
        // From the first request on, the idle limit is the keep-alive timeout (refreshed by every read and write; ignored while a response is in flight).
        if (this.served++ === 0) this.socket.setTimeout(this.host.keepAliveMs());
        this.host.serve(new LeanRequest(head, this.socket, body) as unknown as IncomingMessage, res as unknown as ServerResponse);
      }
      if (this.active === null && this.pending === null && !this.done && !this.closing && this.socket.isPaused()) this.socket.resume();
    } finally {
      this.driving = false;
    }
  }

  /** A response handed its last byte to the socket: the next request may go. */
  ended(res: LeanResponse, last: boolean): void {
    if (res !== this.active) return;
    this.active = null;
    this.queuedBehind = this.pending !== null;
    if (last || this.closing) {
      this.closing = true;
      this.pending = null;
      // As node:http after a `Connection: close` answer: FIN once written, then gone.
      this.socket.destroySoon();
      return;
    }
    if (this.driving) return;
    if (this.pending === null) {
      if (this.socket.isPaused()) this.socket.resume();
      return;
    }
    // Pipelined requests go on after the code that ended this response has returned.
    process.nextTick(driveLater, this);
  }

  resumeDriving(): void {
    this.drive();
  }

  private drained(): void {
    this.active?.emit('drain');
    if (this.active === null && this.pending !== null) this.drive();
  }

  /** node:http takes over at this request boundary, with the bytes read so far. */
  private handOver(): void {
    const socket = this.socket;
    const rest = this.pending;
    this.pending = null;
    this.detach();
    socket.pause();
    if (rest !== null) socket.unshift(rest);
    this.host.handOver(socket, this.queuedBehind);
    process.nextTick(resumeSocket, socket);
  }

  private detach(): void {
    this.done = true;
    const socket = this.socket;
    socket.off('data', this.onData);
    socket.off('drain', this.onDrain);
    socket.off('end', this.onEnd);
    socket.off('close', this.onClose);
    socket.off('timeout', this.onTimeout);
    socket.off('error', destroyOnError);
    socket.setTimeout(0);
    this.host.forget(this);
  }

  /** The peer ended its side: as node:http, the connection ends (a response in flight is cut by the close). */
  private peerEnded(): void {
    this.closing = true;
    this.pending = null;
    if (this.socket.writable) this.socket.end();
  }

  private closed(): void {
    const res = this.active;
    this.active = null;
    this.pending = null;
    this.detach();
    res?.closed();
  }

  private timedOut(): void {
    if (this.active !== null) return;
    if (this.served === 0 && this.pending === null) {
      this.detach();
      this.host.idleAtStart(this.socket);
      return;
    }
    this.socket.destroy();
  }
}

function destroyOnError(this: net.Socket): void {
  this.destroy();
}

function driveLater(conn: LeanConnection): void {
  conn.resumeDriving();
}

function resumeSocket(socket: net.Socket): void {
  socket.resume();
}
