import http2, { type ClientHttp2Session, type ClientHttp2Stream, type OutgoingHttpHeaders } from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import type { Connector } from '../runtime/connector.js';

/** Being connected: TCP, TLS (ALPN h2), then the server's first SETTINGS frame. */
export const CONNECTING = 0;
/** Takes new streams, up to the peer's SETTINGS_MAX_CONCURRENT_STREAMS. */
export const READY = 1;
/** GOAWAY sent or received (RFC 9113 §6.8): open streams finish, no new ones. */
export const DRAINING = 2;
export const CLOSED = 3;

/** RFC 9113 §7 error codes used here. */
export const NO_ERROR = 0;
export const REFUSED_STREAM = 7;
export const CANCEL = 8;

/** Per-stream receive window we advertise (SETTINGS_INITIAL_WINDOW_SIZE, RFC 9113 §6.9.2): bounds what a paused stream buffers. */
const STREAM_WINDOW = 1024 * 1024;
/** Connection-level receive window (RFC 9113 §6.9.1): several streams can each fill their window at once. */
const CONNECTION_WINDOW = 16 * 1024 * 1024;
/** Kept when the pool has no idle timeout (undici's keepAliveTimeout default). */
const DEFAULT_SESSION_IDLE = 60_000;
/**
 * Streams a session opens at most: client stream ids are odd and below 2^31
 * (RFC 9113 §5.1.1), so about 2^30 fit. A session that has used them is
 * retired (new streams go to a new session) instead of failing with
 * ERR_HTTP2_OUT_OF_STREAMS.
 */
const STREAMS_PER_SESSION = 2 ** 30 - 16;
/** After GOAWAY with no stream left, how long the peer has to close its side before the socket is destroyed. */
const DRAIN_LINGER = 1000;

const END_STREAM = Object.freeze({ endStream: true });
const OPEN_STREAM = Object.freeze({ endStream: false });

/** What a session reports to its pool. */
export interface SessionOwner {
  /** The server's first SETTINGS arrived: streams can be opened. */
  sessionReady(s: H2Session): void;
  /** GOAWAY (either way) or an idle close began: no new streams on `s`. */
  sessionDraining(s: H2Session): void;
  /** The session is gone. `err` is why (null after a clean close); `everReady` is false for a failed connect. */
  sessionClosed(s: H2Session, err: Error | null, everReady: boolean): void;
}

export interface SessionOptions {
  /** Opens the session's byte stream. */
  connector: Connector;
  /** The target's host name or IP: the TLS certificate check without a server name, and the SNI default for a name. */
  host: string;
  tls: tls.ConnectionOptions | undefined;
  /** ms for TCP + TLS + the server's SETTINGS (0 = none). */
  connectTimeout: number;
  /** ms a session with no open stream is kept (0 = the 60 s default). */
  idleTimeout: number;
}

/**
 * An error of the HTTP/2 client. `code` is one undici uses where one
 * exists (UND_ERR_CONNECT_TIMEOUT, UND_ERR_HEADERS_TIMEOUT, …), so
 * `fromUpstreamError` classifies both clients alike; `rstCode` is the
 * RST_STREAM error code (RFC 9113 §7) of a stream the server reset.
 */
export class H2ClientError extends Error {
  readonly code: string;
  readonly rstCode: number | undefined;

  constructor(code: string, message: string, rstCode?: number, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'H2ClientError';
    this.code = code;
    this.rstCode = rstCode;
  }
}

/**
 * One HTTP/2 connection to a target (`ClientHttp2Session`) and the pool's
 * bookkeeping for it: its state, the streams it carries and the peer's
 * stream limit.
 *
 * - It counts as connected only once the server's first SETTINGS frame is
 *   in (RFC 9113 §3.4), so `connectTimeout` covers a server that accepts
 *   TCP and never speaks HTTP/2, and the pool knows the stream limit
 *   before it opens streams.
 * - Over TLS, a server that did not select `h2` by ALPN (RFC 7301) is
 *   refused (UPSTREAM_ALPN_MISMATCH) rather than sent a preface it cannot read.
 * - A GOAWAY from the server makes it DRAINING; `goawayLastStreamId` then
 *   tells which streams the server never processed (§6.8).
 * - With no open stream it is unref'd (it does not keep the process alive)
 *   and closed gracefully after `idleTimeout` without activity.
 */
export class H2Session {
  /** The HTTP/2 session, once the connector gave a stream (until then, state is CONNECTING and no stream is opened). */
  session!: ClientHttp2Session;
  state = CONNECTING;
  /** Streams opened and not yet closed. */
  active = 0;
  /** The peer's SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 §6.5.2). */
  maxStreams = 0;
  /** The last stream id of a GOAWAY received, or -1. */
  goawayLastStreamId = -1;
  error: Error | null = null;
  private readonly owner: SessionOwner;
  /** The TCP or TLS socket, kept to end a graceful close the peer never finishes (the session hides it); null while connecting. */
  private socket: net.Socket | null = null;
  /** Cancels the connector's attempt while the byte stream is being opened. */
  private cancelConnect: (() => void) | null = null;
  private readonly origin: URL;
  private readonly idleTimeout: number;
  private connectTimer: NodeJS.Timeout | null = null;
  private lingerTimer: NodeJS.Timeout | null = null;
  private everReady = false;
  private referenced = true;
  /** Streams opened so far (see STREAMS_PER_SESSION). */
  private opened = 0;
  /** Out of stream ids: closed (GOAWAY) once its last stream ends. */
  private retiring = false;

  constructor(owner: SessionOwner, origin: URL, o: SessionOptions) {
    this.owner = owner;
    this.origin = origin;
    this.idleTimeout = o.idleTimeout;
    if (o.connectTimeout > 0) {
      this.connectTimer = setTimeout(this.onConnectTimeout, o.connectTimeout, o.connectTimeout);
    }
    // The connect timer covers the stream, TLS and the server's SETTINGS together.
    let called = false;
    const cancel = o.connector.connect({ timeout: 0 }, (err, stream) => {
      called = true;
      this.cancelConnect = null;
      if (err !== null) {
        this.error ??= err;
        this.onClose();
        return;
      }
      const host = o.host;
      this.attach(
        o.tls === undefined
          ? stream!
          : tls.connect({ servername: net.isIP(host) === 0 ? host : undefined, ...o.tls, host, socket: stream!, ALPNProtocols: ['h2'] }),
      );
    });
    // A connector may call back at once (a refusal it knows of): then there is nothing to cancel.
    if (!called) this.cancelConnect = cancel;
  }

  /** The byte stream is open: start HTTP/2 over it (over TLS for h2). */
  private attach(socket: net.Socket): void {
    this.socket = socket;
    const session = http2.connect(this.origin, {
      createConnection: () => socket,
      settings: { enablePush: false, initialWindowSize: STREAM_WINDOW },
      // Node's defaults (128 header pairs, 10 MB of session memory) are below what a gateway sees.
      maxHeaderListPairs: 2000,
      maxSessionMemory: 64,
    });
    this.session = session;
    session.on('connect', this.onConnect);
    session.on('remoteSettings', this.onRemoteSettings);
    session.on('goaway', this.onGoaway);
    session.on('error', this.onError);
    session.on('close', this.onClose);
    session.on('timeout', this.onTimeout);
    // A TLS failure after connect but before SETTINGS (e.g. the server refuses our client
    // certificate) destroys the session without its 'error' or 'close': the socket tells.
    socket.on('error', this.onSocketError);
    socket.once('close', this.onClose);
    session.setTimeout(this.idleTimeout > 0 ? this.idleTimeout : DEFAULT_SESSION_IDLE);
  }

  /** Whether a new stream may be opened now. */
  get available(): boolean {
    // Node may have closed the session a tick before its 'goaway'/'close' reach us.
    return this.state === READY && this.active < this.maxStreams && !this.session.closed && !this.session.destroyed;
  }

  /** Opens a stream (throws what `ClientHttp2Session.request` throws, e.g. on an invalid header). */
  request(headers: OutgoingHttpHeaders, endStream: boolean): ClientHttp2Stream {
    const stream = this.session.request(headers, endStream ? END_STREAM : OPEN_STREAM);
    if (this.active++ === 0 && !this.referenced) {
      this.referenced = true;
      this.session.ref();
    }
    if (++this.opened >= STREAMS_PER_SESSION) {
      // Not closed here: a GOAWAY queued before this stream's HEADERS would make nghttp2 refuse it.
      this.retiring = true;
      this.state = DRAINING;
    }
    return stream;
  }

  /** One of this session's streams closed. */
  streamClosed(): void {
    if (--this.active > 0) return;
    if (this.referenced && this.state !== CLOSED) {
      this.referenced = false;
      this.session.unref();
    }
    if (this.retiring) {
      this.retiring = false;
      this.session.close();
    }
    if (this.state === DRAINING) this.linger();
  }

  /** Unrefs a session that got no stream right after it became ready. */
  idleCheck(): void {
    if (this.active === 0 && this.referenced) {
      this.referenced = false;
      this.session.unref();
    }
  }

  /**
   * Whether the server provably did not process `stream`, so that it may be
   * sent again on another connection: it was refused (REFUSED_STREAM,
   * RFC 9113 §8.7), its id is above a GOAWAY's last stream id (§6.8), or it
   * never got an id (its HEADERS never left).
   */
  unprocessed(stream: ClientHttp2Stream): boolean {
    if (stream.rstCode === REFUSED_STREAM) return true;
    const id = stream.id;
    return id === undefined || (this.goawayLastStreamId >= 0 && id > this.goawayLastStreamId);
  }

  /** Graceful: GOAWAY, open streams finish, then the socket closes. */
  close(): void {
    if (this.state === CLOSED) return;
    if (this.state === CONNECTING) return this.destroy(null);
    this.state = DRAINING;
    this.session.close();
    if (this.active === 0) this.linger();
  }

  destroy(err: Error | null): void {
    if (this.state === CLOSED) return;
    if (err !== null) this.error ??= err;
    this.state = DRAINING;
    if (this.cancelConnect !== null) {
      this.cancelConnect();
      this.cancelConnect = null;
      // No stream yet: nothing else will report the close. Reported on the next tick, as a socket's close would be.
      process.nextTick(this.onClose);
      return;
    }
    this.session?.destroy();
    this.socket?.destroy();
  }

  private readonly onConnect = (): void => {
    const session = this.session;
    if (session.encrypted && session.alpnProtocol !== 'h2') {
      this.destroy(new H2ClientError('UPSTREAM_ALPN_MISMATCH', `upstream did not negotiate h2 by ALPN (got ${String(session.alpnProtocol || 'none')})`));
      return;
    }
    session.setLocalWindowSize(CONNECTION_WINDOW);
  };

  private readonly onRemoteSettings = (settings: http2.Settings): void => {
    this.maxStreams = settings.maxConcurrentStreams ?? 0xffffffff;
    if (this.state !== CONNECTING) {
      // A raised limit frees room for queued requests.
      if (this.state === READY) this.owner.sessionReady(this);
      return;
    }
    this.state = READY;
    this.everReady = true;
    this.clearConnectTimer();
    this.owner.sessionReady(this);
    this.idleCheck();
  };

  private readonly onGoaway = (_code: number, lastStreamId: number): void => {
    this.goawayLastStreamId = lastStreamId;
    if (this.state === CLOSED) return;
    this.state = DRAINING;
    this.owner.sessionDraining(this);
    if (this.active === 0) this.linger();
  };

  private readonly onError = (err: Error): void => {
    this.error ??= err;
  };

  /** Node destroys the session on a socket error but may emit neither its 'error' nor a 'close' (seen with TLS alerts). */
  private readonly onSocketError = (err: Error): void => {
    this.error ??= err;
    this.socket?.destroy();
    this.onClose();
  };

  /** The session or its socket closed (whichever is first; once). */
  private readonly onClose = (): void => {
    if (this.state === CLOSED) return;
    if (this.session !== undefined && !this.session.destroyed) this.session.destroy();
    this.clearConnectTimer();
    if (this.lingerTimer !== null) clearTimeout(this.lingerTimer);
    this.state = CLOSED;
    this.owner.sessionClosed(this, this.error, this.everReady);
  };

  /** No frame for `idleTimeout`: close when no stream is open (an open but quiet stream has its own timeout). */
  private readonly onTimeout = (): void => {
    if (this.active > 0 || this.state !== READY) return;
    this.state = DRAINING;
    this.owner.sessionDraining(this);
    this.session.close();
    this.linger();
  };

  private readonly onConnectTimeout = (ms: number): void => {
    this.connectTimer = null;
    if (this.state !== CONNECTING) return;
    this.destroy(new H2ClientError('UND_ERR_CONNECT_TIMEOUT', `connect timeout: no HTTP/2 session within ${ms} ms`));
  };

  /**
   * A graceful close ends our side of the socket and waits for the peer to
   * close its side, which a peer with streams of its own still open may
   * never do: past DRAIN_LINGER with no stream left, the socket is reset (TCP RST).
   */
  private linger(): void {
    if (this.lingerTimer !== null || this.state === CLOSED) return;
    this.lingerTimer = setTimeout(() => this.socket?.resetAndDestroy(), DRAIN_LINGER);
  }

  private clearConnectTimer(): void {
    if (this.connectTimer !== null) {
      clearTimeout(this.connectTimer);
      this.connectTimer = null;
    }
  }
}
