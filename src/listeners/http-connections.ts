import http2 from 'node:http2';
import type { ServerResponse } from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { Carried, formatPeer, type Owner } from '../runtime/connection-registry.js';

/** How long a connection the gateway ended (FIN sent) may take to close its side before it is destroyed. */
export const CLOSE_GRACE_MS = 2000;

type HttpSocket = net.Socket & { _httpMessage?: ServerResponse | null };

/** Ends our half now and destroys the socket if the peer has not closed within CLOSE_GRACE_MS. */
export function endThenDestroy(socket: net.Socket): void {
  if (socket.destroyed) return;
  socket.end();
  const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
  socket.once('close', () => clearTimeout(timer));
}

/**
 * An HTTP/1.x connection (`http1`). Closing it: a response in progress is
 * finished with `Connection: close` (RFC 9112 §9.6) and the connection
 * then ends; an idle connection (no request being answered) ends at once.
 */
export class Http1Connection extends Carried {
  readonly kind = 'http1' as const;
  readonly socket: net.Socket;
  /** The lean engine serving it (http1/connection.ts), until node:http takes it over; null: node:http's. */
  lean: { shutdown(end: (socket: net.Socket) => void): boolean } | null = null;

  constructor(owner: Owner, socket: net.Socket) {
    super(owner);
    this.socket = socket;
  }

  peer(): string {
    return formatPeer(this.socket.remoteAddress, this.socket.remotePort);
  }

  bytesIn(): number {
    return this.socket.bytesRead;
  }

  bytesOut(): number {
    return this.socket.bytesWritten;
  }

  protected shutdown(): void {
    if (this.lean !== null && this.lean.shutdown(endThenDestroy)) return;
    const socket = this.socket as HttpSocket;
    const res = socket._httpMessage;
    if (res == null || res.writableFinished) return endThenDestroy(socket);
    // node:http sends `Connection: close` and ends the socket after this response.
    if (!res.headersSent) res.shouldKeepAlive = false;
    // The head already went out as keep-alive: the connection ends once the body is done.
    else res.once('finish', () => endThenDestroy(socket));
  }
}

/** An HTTP/2 connection (`h2-session`). Closing it sends GOAWAY (RFC 9113 §6.8): streams in progress finish, no new ones start, then it closes. */
export class H2SessionConnection extends Carried {
  readonly kind = 'h2-session' as const;
  readonly session: http2.ServerHttp2Session;
  /**
   * The socket the session runs on (plain or TLS), as handed to node:http2:
   * `session.socket` is a proxy that throws once the session is destroyed,
   * which can happen before its 'close' event unlists it.
   */
  readonly socket: Duplex | null;
  /** Its open streams and when each began (the listener adds and deletes them: one Map operation each per request). */
  readonly streams = new Map<http2.ServerHttp2Stream, number>();

  constructor(owner: Owner, session: http2.ServerHttp2Session, socket: Duplex | null) {
    super(owner);
    this.session = session;
    this.socket = socket;
  }

  override children(): Carried[] {
    const out: Carried[] = [];
    for (const [stream, startedAt] of this.streams) if (stream.id !== undefined) out.push(new H2StreamConnection(this, stream, startedAt));
    return out;
  }

  override child(local: number): Carried | undefined {
    for (const [stream, startedAt] of this.streams) if (stream.id === local) return new H2StreamConnection(this, stream, startedAt);
    return undefined;
  }

  peer(): string {
    const s = this.socket as net.Socket | null;
    return formatPeer(s?.remoteAddress, s?.remotePort);
  }

  bytesIn(): number | null {
    return (this.socket as net.Socket | null)?.bytesRead ?? null;
  }

  bytesOut(): number | null {
    return (this.socket as net.Socket | null)?.bytesWritten ?? null;
  }

  protected shutdown(): void {
    if (!this.session.closed && !this.session.destroyed) this.session.close();
  }
}

/**
 * One request stream of an HTTP/2 connection (`h2-stream`). Closing it
 * resets the stream with RST_STREAM CANCEL (RFC 9113 §6.4, §7); the
 * connection and its other streams go on. Bytes are not counted per
 * stream (null): see the stream's `h2-session`.
 */
export class H2StreamConnection extends Carried {
  readonly kind = 'h2-stream' as const;
  readonly stream: http2.ServerHttp2Stream;
  private readonly connection: H2SessionConnection;

  /** A view made at list time (see H2SessionConnection.children); its id is the session's, a dot and the stream id. */
  constructor(connection: H2SessionConnection, stream: http2.ServerHttp2Stream, startedAt: number) {
    super(connection.owner, startedAt);
    this.stream = stream;
    this.connection = connection;
    this.parent = connection;
    this.local = stream.id!;
  }

  peer(): string {
    return this.connection.peer();
  }

  bytesIn(): null {
    return null;
  }

  bytesOut(): null {
    return null;
  }

  protected shutdown(): void {
    if (!this.stream.closed && !this.stream.destroyed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
  }
}
