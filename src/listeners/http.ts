import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { HttpListenerConfig } from '../config/schema.js';
import { bodyBeingRead, failBody, handleRequest } from '../http/handler.js';
import { clientGone, parserError, type ParserError } from '../http/framing.js';
import { GatewayError } from '../errors.js';
import { handleUpgrade } from '../http/upgrade.js';
import { WebSocketSessions } from '../http/websocket/sessions.js';
import type { Logger } from '../observability/logger.js';
import type { AnyListenerRuntime, ListenerRuntime } from '../snapshot/snapshot.js';
import type { Binding, StreamListener } from './listener.js';
import { mayBePreface, sniffPreface } from './h2-preface.js';
import { LeanConnection, type LeanHost } from '../http1/connection.js';
import { listSocket, unlistSocket } from '../runtime/connection-registry.js';
import { H2SessionConnection, Http1Connection } from './http-connections.js';
import { H2Request } from '../http/h2/request.js';
import { H2Response } from '../http/h2/response.js';

/** What an HTTP listener's sockets need from the gateway (while draining, responses close their connections). */
export type HttpBinding = Binding;

/** Server-side HTTP/2 settings beyond the configured ones (RFC 9113 §6.5.2). */
const H2_INITIAL_WINDOW = 1024 * 1024;

/**
 * The protocol side of an `http` or `https` listener: it takes each
 * accepted TCP connection from the bound socket and serves it.
 *
 * - `http`: a connection that opens with the HTTP/2 client preface
 *   (RFC 9113 §3.4, prior knowledge) goes to the HTTP/2 server, any other
 *   to HTTP/1.1.
 * - `https`: TLS is terminated with the listener's certificates (picked by
 *   SNI), then ALPN decides: `h2` → HTTP/2, else HTTP/1.1.
 *
 * An HTTP/1.1 connection starts in the lean engine (http1/connection.ts),
 * which serves the requests it fully recognizes and hands the connection
 * to node:http (`h1`) at the first one it does not, so that odd or
 * malformed input gets node:http's answer.
 *
 * Both servers hand requests to the same lifecycle (http/handler.ts) on
 * the snapshot current when each request arrives; HTTP/2 requests are
 * served from node:http2's core stream API through the lean request and
 * response of http/h2/, which have the members the lifecycle uses. Upgrade
 * requests on HTTP/1.1 are WebSocket tunnels (http/upgrade.ts).
 *
 * Neither inner server listens: the bound socket belongs to the gateway
 * (kept across reloads), and the listener is updated in place on reload.
 */
export class HttpListener implements StreamListener {
  readonly kind = 'http' as const;
  readonly h1: http.Server;
  readonly h2: http2.Http2Server;
  readonly websockets: WebSocketSessions;
  private readonly binding: HttpBinding;
  private readonly logger: Logger;
  private config: HttpListenerConfig;
  /** TLS template server (never listening) built from the current listener's certificates; null for `http`. */
  private tlsServer: tls.Server | null = null;
  /** Every accepted TCP connection, until it closes (for graceful close). */
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  /** The socket being handed to the HTTP/2 server: its 'session' event comes synchronously, inside `emit('connection')`. */
  private handingOver: Duplex | null = null;
  /** The socket the lean engine is handing to node:http: already listed, so its 'connection' event lists nothing. */
  private leanHandover: Duplex | null = null;
  /** Connections the lean engine serves now (for closing idle ones). */
  private readonly leans = new Set<LeanConnection>();
  private readonly leanHost: LeanHost;
  /**
   * Sockets handed over by the lean engine with bytes that were pipelined
   * behind a response in flight, until node:http parses a request from
   * them: a parse error there is the one node:http meets while a response
   * is on its way (answerClientError: the connection closes, unanswered).
   */
  private readonly queuedBehindLean = new WeakSet<Duplex>();
  private closing = false;

  constructor(binding: HttpBinding, listener: ListenerRuntime, logger: Logger) {
    this.binding = binding;
    this.logger = logger;
    this.config = listener.config;
    this.websockets = new WebSocketSessions(binding, binding.registry);
    const config = listener.config;
    this.h1 = http.createServer(
      {
        keepAliveTimeout: config.timeouts.keepAlive,
        headersTimeout: config.timeouts.headers,
        requestTimeout: config.timeouts.request,
        maxHeaderSize: config.maxHeaderSize,
        noDelay: true,
        // How often Node checks the headers/request timeouts (its default, 30 s, makes them fire late).
        connectionsCheckingInterval: 1000,
        // Host is checked by the request lifecycle (http/host.ts), with the other Host rules, a JSON body and a log line.
        requireHostHeader: false,
      },
      (req, res) => this.onRequest(req, res, false),
    );
    // Every connection handed to the HTTP/1.1 server (plain, or TLS without h2) is listed until it closes.
    this.h1.on('connection', (socket: net.Socket) => {
      if (socket !== this.leanHandover) listSocket(binding.registry, socket, new Http1Connection(binding, socket));
    });
    this.h1.on('clientError', (err: ParserError, socket: Duplex) => this.onClientError(err, socket));
    this.h1.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      const l = this.listener();
      if (l === undefined) return socket.destroy();
      handleUpgrade(l, req, socket, head, this.websockets);
    });
    // CONNECT asks for a tunnel: that is the forward-proxy listener's job, not a reverse proxy's (RFC 9110 §9.3.6).
    this.h1.on('connect', (_req: http.IncomingMessage, socket: Duplex) => {
      // node:http took its own error listener off the socket before 'connect': a reset must not become an uncaught error.
      socket.on('error', () => socket.destroy());
      // A response still on its way (pipelining) would be cut by an answer written ahead of it: just close.
      if ((socket as HttpSocket)._httpMessage) return socket.destroy();
      refuseRaw(socket as HttpSocket, new GatewayError('METHOD_NOT_ALLOWED', 'CONNECT is not served on this listener (use a forward-proxy listener)'));
    });
    // node:http checks header/request timeouts only for servers that emitted
    // 'listening' (that is when it starts tracking connections); this one
    // never listens itself, so it is told once here.
    this.h1.emit('listening');

    this.leanHost = {
      maxHeaderSize: config.maxHeaderSize,
      keepAliveMs: () => this.config.timeouts.keepAlive,
      headersTimeoutMs: () => this.config.timeouts.headers,
      serve: (req, res) => this.onRequest(req, res, false),
      handOver: (socket, queued) => {
        if (queued) this.queuedBehindLean.add(socket);
        this.leanHandover = socket;
        try {
          this.h1.emit('connection', socket);
        } finally {
          this.leanHandover = null;
        }
      },
      mayBeH2: (first) => this.tlsServer === null && this.config.http2.enabled && mayBePreface(first),
      sniff: (socket, first) => {
        socket.pause();
        socket.unshift(first);
        sniffPreface(socket, this.config.timeouts.headers, (isH2) => {
          if (!isH2) return this.leanHost.handOver(socket, false);
          // Listed as an `h2-session` from here on, not as the `http1` connection it was taken for.
          unlistSocket(socket);
          this.serveH2(socket);
        });
        socket.resume();
      },
      idleAtStart: (socket) => {
        // As before the lean engine: the HTTP/2 preface wait closes silently, node:http answers 408.
        if (this.tlsServer === null && this.config.http2.enabled) socket.destroy();
        else this.onClientError(Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), socket);
      },
      forget: (conn) => this.leans.delete(conn),
    };

    // No 'request' listener: requests are served from the core stream API (onStream), without the compatibility layer.
    this.h2 = http2.createServer({
      settings: { maxConcurrentStreams: config.http2.maxConcurrentStreams, initialWindowSize: H2_INITIAL_WINDOW, maxHeaderListSize: config.maxHeaderSize },
      maxSessionMemory: 32,
    });
    this.h2.on('session', (session) => this.onSession(session));
    this.h2.on('sessionError', (err) => this.logger.debug({ listener: this.binding.name, err: err.message }, 'http2 session error'));
    this.update(listener);
  }

  /** Applies the settings of a reloaded listener (timeouts, TLS certificates, HTTP/2 switch). */
  update(runtime: AnyListenerRuntime): void {
    if (runtime.kind !== 'http') throw new Error(`listener ${runtime.name} is not an HTTP listener`);
    const listener = runtime;
    const config = listener.config;
    this.config = config;
    this.h1.keepAliveTimeout = config.timeouts.keepAlive;
    this.h1.headersTimeout = config.timeouts.headers;
    this.h1.requestTimeout = config.timeouts.request;
    const certs = listener.certificates;
    if (certs === null) {
      this.tlsServer = null;
      return;
    }
    const server = tls.createServer({
      ...certs.serverOptions(),
      ALPNProtocols: config.http2.enabled ? ['h2', 'http/1.1'] : ['http/1.1'],
      handshakeTimeout: config.timeouts.headers,
      // Session tickets are keyed per template; a reload starts new ones (clients fall back to a full handshake).
    });
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      if (socket.alpnProtocol === 'h2') this.serveH2(socket);
      else this.serveH1(socket);
    });
    server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
      // A refused client certificate surfaces as a reset; the socket knows the real reason (e.g. CERT_HAS_EXPIRED).
      const reason = socket.authorizationError ?? err.code ?? err.message;
      this.logger.info({ listener: this.binding.name, client: socket.remoteAddress, reason: String(reason) }, 'TLS handshake refused');
      socket.destroy();
    });
    this.tlsServer = server;
  }

  /** Serves one accepted TCP connection. */
  accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    if (this.tlsServer !== null) {
      this.tlsServer.emit('connection', socket);
      return;
    }
    // The lean engine's first read tells the HTTP/2 preface apart (leanHost.mayBeH2).
    this.serveH1(socket);
  }

  /** An HTTP/1.1 connection (plain, or TLS without h2): the lean engine first, listed as `http1` until it closes. */
  private serveH1(socket: net.Socket): void {
    socket.setNoDelay(true);
    const lean = new LeanConnection(this.leanHost, socket);
    this.leans.add(lean);
    const entry = new Http1Connection(this.binding, socket);
    entry.lean = lean;
    listSocket(this.binding.registry, socket, entry);
  }

  /**
   * Hands a connection to the HTTP/2 server. HTTP/2 has no half-closed
   * connection: a peer that ended its side can send no more frames (not
   * even WINDOW_UPDATE), so its streams cannot finish; node:http2 would
   * keep such a session, and its socket, open. It is closed at once.
   */
  private serveH2(socket: Duplex): void {
    socket.once('end', () => socket.destroy());
    this.handingOver = socket;
    try {
      this.h2.emit('connection', socket);
    } finally {
      this.handingOver = null;
    }
  }

  get connections(): number {
    return this.sockets.size;
  }

  /**
   * Graceful close, once the bound socket stopped accepting: WebSocket
   * sessions get 1001 Going Away; HTTP/2 sessions a GOAWAY (open streams
   * finish); idle HTTP/1.1 connections close now and busy ones when their
   * response is done. Whatever is left after `graceMs` is destroyed.
   */
  close(graceMs: number): Promise<void> {
    this.closing = true;
    this.websockets.closeAll();
    for (const s of this.sessions) if (!s.closed) s.close();
    this.h1.closeIdleConnections();
    for (const c of this.leans) c.closeIfIdle();
    return new Promise((resolve) => {
      const deadline = Date.now() + graceMs;
      const sweep = setInterval(() => {
        this.h1.closeIdleConnections();
        for (const c of this.leans) c.closeIfIdle();
        if (this.sockets.size > 0 && Date.now() < deadline) return;
        clearInterval(sweep);
        for (const s of this.sessions) s.destroy();
        for (const s of this.sockets) s.destroy();
        // Stops node:http's connection checks (the interval 'listening' started).
        this.h1.close(() => undefined);
        resolve();
      }, 50);
    });
  }

  private onClientError(err: ParserError, socket: Duplex): void {
    if (this.queuedBehindLean.has(socket)) {
      this.queuedBehindLean.delete(socket);
      if (!clientGone(err) && bodyBeingRead(socket) === undefined) return closeUnanswered(socket as HttpSocket);
    }
    answerClientError(err, socket as HttpSocket, this.logger, this.binding.name);
  }

  private listener(): ListenerRuntime | undefined {
    const l = this.binding.current().listeners.get(this.binding.name);
    return l?.kind === 'http' ? l : undefined;
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse, h2: boolean): void {
    // node:http parsed a request from bytes the lean engine handed over: from here on its own rules apply.
    if (!h2 && this.queuedBehindLean.has(req.socket)) this.queuedBehindLean.delete(req.socket);
    const listener = this.listener();
    if (!h2 && (listener === undefined || this.binding.draining())) res.shouldKeepAlive = false;
    if (listener === undefined) {
      res.writeHead(503, { 'content-type': 'application/json', ...(h2 ? {} : { connection: 'close' }) });
      res.end('{"error":"listener is shutting down","code":"LISTENER_CLOSED"}');
      return;
    }
    handleRequest(listener, req, res, h2);
  }

  /**
   * An HTTP/2 request stream (RFC 9113 §8.1). CONNECT is refused with 405
   * (this is a reverse proxy; RFC 9113 §8.5); `Expect: 100-continue` gets
   * its interim 100 at once and any other expectation 417 (RFC 9110
   * §10.1.1); every other request goes to the lifecycle with the lean
   * request and response of http/h2/.
   */
  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: string[], socket: Duplex): void {
    // A reset or a protocol error is the session's to report (see onSession); the stream just ends.
    stream.on('error', ignore);
    if (headers[':method'] === 'CONNECT') return answerStream(stream, 405);
    const expect = headers.expect;
    if (expect !== undefined) {
      if (expect.toLowerCase() !== '100-continue') return answerStream(stream, 417);
      if (!stream.headersSent && !stream.destroyed) stream.additionalHeaders({ ':status': 100 });
    }
    // A request with no body: its stream's readable side is read to its (immediate) end.
    if (stream.endAfterHeaders) stream.resume();
    const req = new H2Request(stream, headers, rawHeaders, socket);
    this.onRequest(req as unknown as http.IncomingMessage, new H2Response(stream) as unknown as http.ServerResponse, true);
  }

  /**
   * An HTTP/2 connection. Idle connections (no open stream for the
   * keep-alive timeout) are closed with GOAWAY; a malformed frame or a
   * protocol error makes nghttp2 send GOAWAY itself, and the error is logged.
   */
  private onSession(session: http2.ServerHttp2Session): void {
    this.sessions.add(session);
    const entry = new H2SessionConnection(this.binding, session, this.handingOver);
    const registry = this.binding.registry;
    registry.add(entry);
    // node:http2 may destroy a session (a peer gone mid-stream) without ending a TLS socket under it.
    const socket = this.handingOver;
    if (socket !== null) session.once('close', () => socket.destroy());
    // Streams are listed through their session's entry (made at list time), so a request adds one Map entry, no object.
    const streams = entry.streams;
    const socket_ = socket ?? session.socket;
    session.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
      streams.set(stream, Date.now());
      stream.once('close', () => streams.delete(stream));
      this.onStream(stream, headers, rawHeaders, socket_);
    });
    session.setTimeout(this.config.timeouts.keepAlive, () => {
      if (streams.size === 0) session.close();
    });
    session.on('error', (err) => this.logger.info({ listener: this.binding.name, err: err.message }, 'http2 connection error'));
    session.on('frameError', (type, code) => this.logger.debug({ listener: this.binding.name, type, code }, 'http2 frame error'));
    session.once('close', () => {
      this.sessions.delete(session);
      registry.remove(entry);
    });
    if (this.closing || this.binding.draining()) session.close();
  }
}

function ignore(): void {}

/** Answers an HTTP/2 stream with `status` and no body, unless it is gone. */
function answerStream(stream: http2.ServerHttp2Stream, status: number): void {
  if (!stream.destroyed && !stream.closed && !stream.headersSent) stream.respond({ ':status': status }, { endStream: true });
}

const REASONS: Record<number, string> = { 405: 'Method Not Allowed', 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large', 501: 'Not Implemented' };
/** How long a connection refused for bad framing may take to read its answer before it is destroyed. */
const CLOSE_GRACE_MS = 5000;

/** A refused connection is destroyed if the client has not closed it within CLOSE_GRACE_MS of its answer. */
function destroyLater(socket: HttpSocket): void {
  if (socket.destroyed) return;
  const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
  socket.once('close', () => clearTimeout(timer));
}

/** Sockets whose parse error was handled: llhttp reports the same error again for every later packet. */
const refused = new WeakSet<Duplex>();

type HttpSocket = Duplex & { _httpMessage?: http.ServerResponse | null };

/**
 * Malformed HTTP/1.x (RFC 9112 parse errors, a head over maxHeaderSize, a
 * headers or request timeout), as node:http reports it; never throws.
 * Every case ends the connection.
 *
 * - While a request's body is being read (framing.ts `parserError`: a bad
 *   chunk, an unknown transfer coding llhttp refuses after the head, or
 *   `timeouts.request`), that request fails with the mapped status
 *   (exchange/request-body.ts `failBody`): answered with the JSON error body if nothing
 *   was sent yet, its upstream request aborted, and logged with the cause.
 * - Otherwise no request exists yet: answer once with the mapped status
 *   and a JSON body (no request id), then close; with a response still in
 *   flight on the connection (pipelining), just close.
 */
function answerClientError(err: ParserError, socket: HttpSocket, logger: Logger, listener: string): void {
  if (refused.has(socket)) return;
  refused.add(socket);
  const ctx = bodyBeingRead(socket);
  if (clientGone(err)) {
    // Nobody to answer: the connection goes, and a request in flight ends as 499 through its close (exchange/exchange.ts aborts the upstream request).
    socket.destroy();
    return;
  }
  const inFlight = socket._httpMessage;
  if (ctx === undefined && inFlight && socket.writable) {
    // Bad bytes after a complete request whose response is still on its way (pipelined garbage, a body on a
    // bodiless request): that request is answered, then the connection closes (RFC 9112 §9.3, §9.6).
    inFlight.shouldKeepAlive = false;
    const close = () => {
      if (socket.writable) socket.end();
      destroyLater(socket);
    };
    inFlight.once('close', close);
    return;
  }
  destroyLater(socket);
  const error = parserError(err, ctx !== undefined);
  if (ctx !== undefined) {
    logger.debug({ listener, requestId: ctx.requestId, code: error.code, err: error.message }, 'request body refused');
    const answered = ctx.res.writableEnded;
    failBody(ctx, error);
    // A request answered in full before its body broke: nothing else will end its connection.
    if (answered && (socket._httpMessage == null || socket._httpMessage === ctx.res)) socket.end();
    return;
  }
  if (!socket.writable || socket._httpMessage) {
    socket.destroy();
    return;
  }
  refuseRaw(socket, error);
}

/**
 * Bad bytes pipelined behind a response the lean engine finished (it hands
 * over only at a request boundary): as node:http does for bad bytes behind
 * a response in flight, the connection ends without another answer
 * (RFC 9112 §9.3, §9.6).
 */
function closeUnanswered(socket: HttpSocket): void {
  refused.add(socket);
  if (socket.writable) socket.end();
  destroyLater(socket);
}

/** Answers a connection that has no request object (a parse error, a CONNECT) with `error` as JSON, then closes it. */
function refuseRaw(socket: HttpSocket, error: GatewayError): void {
  const body = JSON.stringify({ error: error.message, code: error.code });
  const allow = error.status === 405 ? 'allow: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE\r\n' : '';
  socket.end(
    `HTTP/1.1 ${error.status} ${REASONS[error.status] ?? 'Bad Request'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${allow}connection: close\r\n\r\n${body}`,
  );
  destroyLater(socket);
}
