import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { Agent } from 'undici';
import type { Binding } from './listener.js';
import type { Logger } from '../observability/logger.js';
import type { ProxiedAddresses } from '../l4/proxy-protocol/encode.js';
import type { ForwardProxyListenerConfig } from '../config/schemas/l4.js';
import { L4StreamListener, type Accepted, type ConnectionEnd } from './stream.js';
import type { AnyListenerRuntime, L4ListenerRuntime } from '../snapshot/snapshot.js';
import { checkProxyAuth, PROXY_CHALLENGE } from '../l4/forward-proxy/basic-auth.js';
import { DestinationPolicy, type Verdict } from '../l4/forward-proxy/destination-policy.js';
import { forward } from '../l4/forward-proxy/forward.js';
import { GatewayError } from '../errors.js';
import { outcomeOf } from '../l4/outcome.js';
import { answer, answerAndClose } from '../l4/forward-proxy/respond.js';
import { parseAbsoluteForm, parseAuthority, type Destination } from '../l4/forward-proxy/target.js';
import { openTunnel } from '../l4/forward-proxy/tunnel.js';

type Runtime = L4ListenerRuntime<ForwardProxyListenerConfig>;

/** What every request or tunnel is checked against: auth, then the destination policy. */
type Admitted = { ok: true; address: string; consumer?: string } | { ok: false; error: GatewayError; consumer?: string };

function hostPort(d: Destination): string {
  return d.host.includes(':') ? `[${d.host}]:${d.port}` : `${d.host}:${d.port}`;
}

const VERDICT_CODES = { FORBIDDEN: 'DESTINATION_DENIED', DNS_FAILED: 'DESTINATION_UNRESOLVED', DNS_TIMEOUT: 'DESTINATION_RESOLVE_TIMEOUT' } as const;

function verdictError(v: Exclude<Verdict, { ok: true }>): GatewayError {
  return new GatewayError(VERDICT_CODES[v.code], v.reason);
}

const AUTH_CODES = { 400: 'BAD_REQUEST', 403: 'FORBIDDEN', 407: 'PROXY_AUTH_REQUIRED' } as const;

/**
 * `protocol: forward-proxy`: an HTTP/1.1 proxy for browsers and tools.
 * Connections are accepted like every stream listener's (PROXY header,
 * connection middlewares, limits, registry; L4StreamListener) and then
 * parsed by a node:http server that never listens itself:
 *
 * - absolute-form requests (`GET http://host:port/path`, any method) are
 *   forwarded with undici (forward.ts) and the response streamed back;
 * - `CONNECT host:port` opens a tunnel (tunnel.ts);
 * - anything else (origin-form, other schemes, a malformed head) is 400.
 *
 * Each request or tunnel is checked in order: request-target, then
 * `auth: basic` (407), then the destination policy on the resolved address
 * (403), and gets one access-log line. Forwarded requests go through one
 * undici Agent per listener (pooled by the dialled IP and port), rebuilt
 * when the timeouts change on reload.
 */
export class ForwardProxyListener extends L4StreamListener<ForwardProxyListenerConfig> {
  readonly kind = 'forward-proxy' as const;
  private server: http.Server;
  /** Servers replaced on reload (maxHeaderSize changed); their connections stay with them. */
  private readonly retired: http.Server[] = [];
  /** Each connection's client, as admitted (PROXY protocol addresses included). */
  private readonly clients = new WeakMap<Duplex, ProxiedAddresses>();
  /** The destination policy of each listener runtime (a request is checked with the runtime it arrived under). */
  private readonly policies = new WeakMap<Runtime, DestinationPolicy>();
  private agent: Agent;
  private agentKey: string;

  constructor(binding: Binding, runtime: Runtime, logger: Logger) {
    super(binding, runtime, logger);
    const config = runtime.config;
    this.server = this.createServer(config);
    this.agentKey = agentKey(config);
    this.agent = createAgent(config);
  }

  override update(runtime: AnyListenerRuntime): void {
    const old = this.runtime.config;
    super.update(runtime);
    const config = this.runtime.config;
    if (config.maxHeaderSize !== old.maxHeaderSize) {
      this.retired.push(this.server);
      this.server = this.createServer(config);
    } else this.applyTimeouts(this.server, config);
    const key = agentKey(config);
    if (key !== this.agentKey) {
      // In-flight requests finish on the old agent; it closes after them.
      void this.agent.close().catch(() => undefined);
      this.agent = createAgent(config);
      this.agentKey = key;
    }
  }

  protected serve(a: Accepted<ForwardProxyListenerConfig>): void {
    this.clients.set(a.socket, a.client);
    // Bytes read while looking for a PROXY header belong to the first request head.
    if (a.head.length > 0) a.socket.unshift(a.head);
    this.server.emit('connection', a.socket);
    // The PROXY header reader leaves the socket paused; node:http's 'data' listener then gets
    // the unshifted bytes first (its parser reads the handle directly only after them).
    if (a.socket.isPaused()) a.socket.resume();
  }

  override async close(graceMs: number): Promise<void> {
    const servers = [this.server, ...this.retired];
    // Idle keep-alive connections close now, busy ones once their response is done (shouldKeepAlive is off).
    const closeIdle = () => servers.forEach((s) => s.closeIdleConnections());
    closeIdle();
    const sweep = setInterval(closeIdle, 50);
    await super.close(graceMs);
    clearInterval(sweep);
    // Stops node:http's connection checks (started by the 'listening' emitted in createServer).
    for (const s of servers) s.close(() => undefined);
    await this.agent.destroy().catch(() => undefined);
  }

  private createServer(config: ForwardProxyListenerConfig): http.Server {
    const server = http.createServer({
      maxHeaderSize: config.maxHeaderSize,
      requestTimeout: 0,
      noDelay: true,
      // How often Node checks the head timeout (its default, 30 s, makes it fire late).
      connectionsCheckingInterval: 1000,
    });
    this.applyTimeouts(server, config);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.onRequest(req, res));
    server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.onConnect(req, socket as net.Socket, head));
    server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => this.onClientError(err, socket));
    // node:http checks head timeouts only on servers that emitted 'listening'; this one never listens.
    server.emit('listening');
    return server;
  }

  /** The head of each request must arrive within `timeouts.handshake`; `timeouts.idle` bounds silence and keep-alive. */
  private applyTimeouts(server: http.Server, config: ForwardProxyListenerConfig): void {
    server.headersTimeout = config.timeouts.handshake;
    server.keepAliveTimeout = config.timeouts.idle;
    server.timeout = config.timeouts.idle;
  }

  private clientOf(socket: Duplex): ProxiedAddresses {
    return this.clients.get(socket) ?? { sourceAddress: '', sourcePort: 0, destinationAddress: '', destinationPort: 0 };
  }

  /** Auth (when configured), then the destination policy; resolves the address to dial. */
  private async admitRequest(req: http.IncomingMessage, d: Destination, client: ProxiedAddresses, runtime: Runtime): Promise<Admitted> {
    let consumer: string | undefined;
    if (runtime.config.auth === 'basic') {
      const auth = checkProxyAuth(req.rawHeaders, runtime.consumers, client.sourceAddress);
      if (!auth.ok) {
        return { ok: false, error: new GatewayError(AUTH_CODES[auth.status], auth.reason, auth.status === 407 ? { headers: { 'proxy-authenticate': PROXY_CHALLENGE } } : {}) };
      }
      consumer = auth.consumer.id;
    }
    let policy = this.policies.get(runtime);
    if (policy === undefined) {
      policy = new DestinationPolicy(runtime.config.allow, runtime.config.deny);
      this.policies.set(runtime, policy);
    }
    const verdict = await policy.check(d, runtime.config.connectTimeout);
    const who = consumer === undefined ? {} : { consumer };
    return verdict.ok ? { ok: true, address: verdict.address, ...who } : { ok: false, error: verdictError(verdict), ...who };
  }

  /**
   * Writes one request's (or tunnel's) access-log line: `outcome` is the
   * forward proxy's name for `err` (outcomeOf; `ok` for none), `code` the
   * GatewayError code. Every request and tunnel ends here exactly once.
   */
  private logRequest(runtime: Runtime, client: ProxiedAddresses, startedAt: bigint, err: GatewayError | null, fields: Omit<ConnectionEnd, 'client' | 'startedAt' | 'outcome'>): void {
    this.logConnection(runtime, { client, startedAt, outcome: outcomeOf(err, 'forward-proxy'), ...(err !== null ? { code: err.code } : {}), ...fields } as ConnectionEnd);
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const startedAt = process.hrtime.bigint();
    const runtime = this.runtime;
    const client = this.clientOf(req.socket);
    if (this.closing || this.binding.draining()) res.shouldKeepAlive = false;
    const url = req.url ?? '';
    const method = req.method ?? '';
    const target = parseAbsoluteForm(url);
    if (target === undefined) {
      const reason = url.startsWith('/') ? 'this is a proxy: the request-target must be an absolute http:// URI' : 'unsupported request-target (only http:// URIs and CONNECT)';
      // A client that does not speak to a proxy: nothing more is read from it.
      res.shouldKeepAlive = false;
      const err = new GatewayError('BAD_REQUEST', reason);
      answer(res, err);
      this.logRequest(runtime, client, startedAt, err, { error: reason, extra: { method, status: 400 } });
      return;
    }
    const d = target.destination;
    this.admitRequest(req, d, client, runtime).then(
      (adm) => {
        const extra: Record<string, string | number> = { method, ...(adm.consumer !== undefined ? { consumer: adm.consumer } : {}) };
        if (!adm.ok) {
          answer(res, adm.error);
          this.logRequest(runtime, client, startedAt, adm.error, { target: hostPort(d), error: adm.error.message, extra: { ...extra, status: adm.error.status } });
          return;
        }
        if (res.destroyed) {
          this.logRequest(runtime, client, startedAt, new GatewayError('DOWNSTREAM_ABORTED', 'the client closed before the request was forwarded'), { target: hostPort(d), extra });
          return;
        }
        forward(this.agent, req, res, target, adm.address, client.sourceAddress, (r) => {
          this.logRequest(runtime, client, startedAt, r.error, {
            target: hostPort(d),
            bytesUp: r.bytesUp,
            bytesDown: r.bytesDown,
            ...(r.detail !== undefined ? { error: r.detail } : {}),
            extra: { ...extra, address: adm.address, ...(r.status !== undefined ? { status: r.status } : {}) },
          });
        });
      },
      (cause: unknown) => {
        const err = new GatewayError('INTERNAL', 'internal error', { cause });
        answer(res, err);
        this.logger.error({ listener: this.binding.name, err: String(cause) }, 'forward-proxy request failed');
        this.logRequest(runtime, client, startedAt, err, { target: hostPort(d), error: String(cause), extra: { method, status: err.status } });
      },
    );
  }

  private onConnect(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    const startedAt = process.hrtime.bigint();
    const runtime = this.runtime;
    const client = this.clientOf(socket);
    const d = parseAuthority(req.url ?? '');
    if (d === undefined) {
      const reason = 'CONNECT needs host:port';
      const err = new GatewayError('BAD_REQUEST', reason);
      answerAndClose(socket, err);
      this.logRequest(runtime, client, startedAt, err, { error: reason, extra: { method: 'CONNECT', status: 400 } });
      return;
    }
    // Nothing is read from the client until the tunnel is up (or refused).
    socket.pause();
    this.admitRequest(req, d, client, runtime).then(
      (adm) => {
        const extra: Record<string, string | number> = { method: 'CONNECT', ...(adm.consumer !== undefined ? { consumer: adm.consumer } : {}) };
        if (!adm.ok) {
          answerAndClose(socket, adm.error);
          this.logRequest(runtime, client, startedAt, adm.error, { target: hostPort(d), error: adm.error.message, extra: { ...extra, status: adm.error.status } });
          return;
        }
        if (socket.destroyed) {
          this.logRequest(runtime, client, startedAt, new GatewayError('DOWNSTREAM_ABORTED', 'the client closed before the tunnel was up'), { target: hostPort(d), extra });
          return;
        }
        const config = runtime.config;
        openTunnel(
          socket,
          { address: adm.address, port: d.port, head, connectTimeoutMs: config.connectTimeout, idleMs: config.timeouts.idle, keepAliveMs: config.tcpKeepAlive, highWaterMark: config.buffer },
          (r) => {
            const spliced = r.error === null ? { bytesUp: r.splice.bytesUp, bytesDown: r.splice.bytesDown, closedBy: r.splice.closedBy } : {};
            const detail = r.error === null ? r.splice.error : r.error.code === 'DOWNSTREAM_ABORTED' ? undefined : r.error.message;
            this.logRequest(runtime, client, startedAt, r.error, {
              target: hostPort(d),
              ...spliced,
              ...(detail !== undefined ? { error: detail } : {}),
              extra: { ...extra, address: adm.address, ...(r.status !== undefined ? { status: r.status } : {}) },
            });
          },
        );
      },
      (cause: unknown) => {
        const err = new GatewayError('INTERNAL', 'internal error', { cause });
        answerAndClose(socket, err);
        this.logger.error({ listener: this.binding.name, err: String(cause) }, 'forward-proxy CONNECT failed');
        this.logRequest(runtime, client, startedAt, err, { target: hostPort(d), error: String(cause), extra: { method: 'CONNECT', status: err.status } });
      },
    );
  }

  /**
   * A request head that cannot be parsed (RFC 9112), is over maxHeaderSize
   * (431) or is not received within `timeouts.handshake` (408): answered
   * once, then the connection is closed, and logged. A reset, or an error
   * on a connection that cannot be answered any more, is just closed: no
   * request was lost (a request in flight logs its own line).
   */
  private onClientError(err: Error & { code?: string }, socket: Duplex): void {
    if (err.code === 'ECONNRESET' || !socket.writable || (socket as Duplex & { _httpMessage?: unknown })._httpMessage) {
      socket.destroy();
      return;
    }
    const code = err.code === 'HPE_HEADER_OVERFLOW' ? 'HEADERS_TOO_LARGE' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'REQUEST_TIMEOUT' : 'BAD_REQUEST';
    const e = new GatewayError(code, err.code !== undefined ? `malformed request (${err.code})` : 'malformed request');
    answerAndClose(socket, e);
    this.logRequest(this.runtime, this.clientOf(socket), process.hrtime.bigint(), e, { error: e.message, extra: { status: e.status } });
  }
}

/** The settings an undici Agent is built with; a reload that changes them builds a new one. */
function agentKey(c: ForwardProxyListenerConfig): string {
  return `${c.connectTimeout}/${c.responseTimeout}/${c.timeouts.idle}/${c.maxHeaderSize}/${c.tcpKeepAlive}`;
}

/**
 * undici Agent for forwarded requests: connect timeout = `connectTimeout`,
 * time to the response head = `responseTimeout` (0: none), silence within
 * a response body = `timeouts.idle`. Origins are IP literals, so undici
 * dials the checked address and never resolves a name itself.
 */
function createAgent(c: ForwardProxyListenerConfig): Agent {
  return new Agent({
    connect: { timeout: c.connectTimeout, ...(c.tcpKeepAlive > 0 ? { keepAlive: true, keepAliveInitialDelay: c.tcpKeepAlive } : {}) },
    headersTimeout: c.responseTimeout,
    bodyTimeout: c.timeouts.idle,
    maxHeaderSize: c.maxHeaderSize,
  });
}
