import http2 from 'node:http2';
import { isIP } from 'node:net';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { AgentConfig } from '../../config/schemas/agent.js';
import type { Logger } from '../../observability/logger.js';
import { formatHostPort, type HostPort } from '../../net/address.js';
import { proofOf } from '../auth.js';
import { Backoff } from '../backoff.js';
import { NdjsonReader, ndjsonLine } from '../ndjson.js';
import { CONTROL_PATH, HEADER, MAX_CONTROL_LINE, MAX_FRAME_SIZE, STREAM_STATUS, TUNNEL_ALPN } from '../protocol.js';
import { ServiceTable, type LocalService } from './services.js';
import { serveStream } from './stream.js';
import { serveDatagramStream } from './datagram-stream.js';
import { destroySession } from '../session.js';

/** The agent's connection as /status shows it. */
export interface AgentConnectionStatus {
  state: 'connecting' | 'connected' | 'waiting' | 'stopped';
  server: string | null;
  /** The id the gateway lists this connection under. */
  session: string | null;
  since: string | null;
  lastPingAt: string | null;
  rttMs: number | null;
  attempts: number;
  lastError: string | null;
  streams: number;
  streamsTotal: number;
}

/** How the agent dials a gateway (also how `serveByCode` dials a relay). */
export interface DialSettings {
  servers: HostPort[];
  id: string;
  token: string | undefined;
  tls: AgentConfig['tls'];
  heartbeat: AgentConfig['heartbeat'];
  window: AgentConfig['window'];
  reconnect: AgentConfig['reconnect'];
}

/** Serves one data stream of a service (the default dials the service's local address: serveStream). */
export type StreamHandler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, service: LocalService, logger: Logger) => void;

/** What an embedding (serveByCode) changes in an agent: how streams are served, extra TLS options (PEM contents instead of files). */
export interface AgentHooks {
  streamHandler?: StreamHandler;
  tls?: tls.ConnectionOptions;
}

/**
 * `portico agent`: dials out to a gateway's tunnel listener and serves its
 * local services through that one connection (docs/tunnel.md). On the TLS
 * connection it dialled, the agent is the HTTP/2 *server*: the gateway
 * authenticates it on the control stream, takes its services, and opens a
 * CONNECT stream for each connection it carries.
 *
 * It never gives up unless told to (`reconnect.maxAttempts`): a server
 * down, a network not up yet, a refused login all lead to the next server
 * after a backoff; every new connection announces the services again.
 */
export class Agent {
  readonly services: ServiceTable;
  private settings: DialSettings;
  private readonly logger: Logger;
  private backoff: Backoff;
  private serverIndex = 0;
  private socket: tls.TLSSocket | null = null;
  private session: http2.ServerHttp2Session | null = null;
  private control: http2.ServerHttp2Stream | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private failures = 0;
  private readonly openStreams = new Set<http2.ServerHttp2Stream>();
  private readonly connectedWaiters = new Set<() => void>();
  readonly conn: AgentConnectionStatus = { state: 'stopped', server: null, session: null, since: null, lastPingAt: null, rttMs: null, attempts: 0, lastError: null, streams: 0, streamsTotal: 0 };
  /** Codes the gateway refused on this connection, with why. */
  refused = new Map<string, string>();
  /** Called when the agent gives up (reconnect.maxAttempts reached). */
  onGiveUp: ((reason: string) => void) | null = null;

  constructor(
    config: AgentConfig,
    logger: Logger,
    services?: ServiceTable,
    private readonly hooks: AgentHooks = {},
  ) {
    this.settings = dialSettings(config);
    this.logger = logger;
    this.backoff = new Backoff({ initialMs: config.reconnect.initial, maxMs: config.reconnect.max });
    this.services = services ?? new ServiceTable(config.services, logger);
    this.services.onChange = () => this.announce();
  }

  start(): void {
    this.stopped = false;
    this.conn.state = 'connecting';
    this.services.start();
    this.dial();
  }

  /** Applies a reloaded config: services change in place (the connection stays); new servers or credentials reconnect. */
  reload(config: AgentConfig): void {
    const next = dialSettings(config);
    const redial = JSON.stringify({ ...next, heartbeat: undefined }) !== JSON.stringify({ ...this.settings, heartbeat: undefined });
    if (JSON.stringify(next.reconnect) !== JSON.stringify(this.settings.reconnect)) this.backoff = new Backoff({ initialMs: config.reconnect.initial, maxMs: config.reconnect.max });
    this.settings = next;
    this.services.update(config.services);
    if (redial) {
      this.logger.info({}, 'agent: servers or credentials changed, reconnecting');
      this.dropConnection('reconnecting with the new settings');
    }
  }

  /** Resolves when the agent is connected and authenticated (tests, serveByCode). */
  connected(): Promise<void> {
    if (this.conn.state === 'connected') return Promise.resolve();
    return new Promise((resolve) => this.connectedWaiters.add(resolve));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.conn.state = 'stopped';
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const session = this.session;
    this.dropConnection('the agent is stopping');
    this.services.stop();
    if (session !== null && !session.destroyed) await new Promise<void>((r) => session.once('close', () => r()));
  }

  private dial(): void {
    if (this.stopped) return;
    const servers = this.settings.servers;
    const server = servers[this.serverIndex % servers.length]!;
    this.conn.server = formatHostPort(server);
    this.conn.state = 'connecting';
    this.conn.attempts++;
    let options: tls.ConnectionOptions;
    try {
      options = { ...tlsOptions(this.settings, server), ...this.hooks.tls };
    } catch (err) {
      return this.retry(`cannot read TLS files: ${(err as Error).message}`);
    }
    const socket = tls.connect(options);
    this.socket = socket;
    const handshake = setTimeout(() => socket.destroy(new Error('TLS handshake timed out')), 10_000);
    let settled = false;
    socket.once('secureConnect', () => {
      clearTimeout(handshake);
      settled = true;
      this.serve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(handshake);
      if (settled) return;
      settled = true;
      socket.destroy();
      this.retry(`${this.conn.server}: ${err.message}`);
    });
    socket.once('close', () => {
      clearTimeout(handshake);
      if (settled) return;
      settled = true;
      this.retry(`${this.conn.server}: connection closed during the TLS handshake`);
    });
  }

  /** The TLS connection is up: be the HTTP/2 server on it. */
  private serve(socket: tls.TLSSocket): void {
    const { window } = this.settings;
    let session: http2.ServerHttp2Session;
    try {
      session = http2.performServerHandshake(socket, {
        settings: { enablePush: false, initialWindowSize: window.stream, maxFrameSize: MAX_FRAME_SIZE, maxConcurrentStreams: 100_000 },
        maxSessionMemory: Math.ceil((2 * window.connection) / (1024 * 1024)) + 16,
      });
    } catch (err) {
      socket.destroy();
      return this.retry(`HTTP/2 failed: ${(err as Error).message}`);
    }
    this.session = session;
    let reason = 'the gateway closed the connection';
    session.on('error', (err) => (reason = `connection error: ${err.message}`));
    session.on('goaway', () => (reason = 'the gateway went away'));
    session.once('close', () => this.lost(session, reason));
    session.once('remoteSettings', () => {
      try {
        session.setLocalWindowSize(window.connection);
      } catch {
        /* closing */
      }
    });
    session.on('stream', (stream, headers) => {
      stream.on('error', () => undefined);
      if (headers[':method'] === 'POST' && headers[':path'] === CONTROL_PATH) return this.onControl(stream, headers);
      if (headers[':method'] !== 'CONNECT' || this.control === null) {
        stream.respond({ ':status': 400, [HEADER.error]: 'not a tunnel stream' }, { endStream: true });
        return;
      }
      const code = String(headers[':authority'] ?? '');
      const service = this.services.get(code);
      if (service === undefined) return void stream.respond({ ':status': STREAM_STATUS.unknownCode, [HEADER.error]: `no service "${code.slice(0, 63)}" here` }, { endStream: true });
      if (!service.up) return void stream.respond({ ':status': STREAM_STATUS.withdrawn, [HEADER.error]: `service ${code} is withdrawn (unhealthy)` }, { endStream: true });
      this.openStreams.add(stream);
      this.conn.streams++;
      this.conn.streamsTotal++;
      stream.once('close', () => {
        this.openStreams.delete(stream);
        this.conn.streams--;
      });
      (this.hooks.streamHandler ?? (service.config.type === 'udp' ? serveDatagramStream : serveStream))(stream, headers, service, this.logger);
    });
  }

  private onControl(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    if (this.control !== null) return void stream.respond({ ':status': 409 }, { endStream: true });
    const raw = headers[HEADER.nonce];
    const nonce = typeof raw === 'string' ? raw : '';
    const { id, token } = this.settings;
    stream.respond({ ':status': 200, [HEADER.id]: id, [HEADER.proof]: token === undefined ? '-' : proofOf(token, nonce, id) });
    this.control = stream;
    const reader = new NdjsonReader(MAX_CONTROL_LINE);
    stream.on('data', (chunk: Buffer) => {
      let messages: Record<string, unknown>[];
      try {
        messages = reader.push(chunk);
      } catch (err) {
        this.dropConnection(`bad message from the gateway: ${(err as Error).message}`);
        return;
      }
      for (const m of messages) this.onGatewayMessage(m);
    });
    stream.once('close', () => {
      if (this.control === stream) this.dropConnection('the control stream ended');
    });
    this.announce();
  }

  private onGatewayMessage(m: Record<string, unknown>): void {
    if (m.type === 'welcome') {
      this.conn.state = 'connected';
      this.conn.session = typeof m.session === 'string' ? m.session : null;
      this.conn.since = new Date().toISOString();
      this.conn.lastError = null;
      this.failures = 0;
      this.backoff.reset();
      this.logger.info({ server: this.conn.server, session: this.conn.session }, 'agent connected');
      this.startHeartbeat();
      for (const w of this.connectedWaiters) w();
      this.connectedWaiters.clear();
    } else if (m.type === 'verdicts') {
      const refused = Array.isArray(m.refused) ? (m.refused as { code?: unknown; reason?: unknown }[]) : [];
      this.refused = new Map(refused.map((r) => [String(r.code), String(r.reason)]));
      for (const [code, reason] of this.refused) this.logger.warn({ code, reason }, 'agent: the gateway refused a service');
      if (typeof m.refusedOmitted === 'number' && m.refusedOmitted > 0) this.logger.warn({ more: m.refusedOmitted }, 'agent: the gateway refused more services than it listed');
      const accepted = Array.isArray(m.accepted) ? m.accepted.map(String) : [];
      this.logger.info({ accepted }, 'agent: services registered');
    } else if (m.type === 'refused') {
      this.conn.lastError = `refused: ${String(m.reason)}`;
      this.logger.error({ server: this.conn.server, reason: String(m.reason) }, 'agent: the gateway refused this agent (check id and token)');
    }
  }

  /** Sends the whole service set (at start and after every change). */
  private announce(): void {
    const c = this.control;
    if (c === null || c.destroyed || c.writableEnded) return;
    const all = this.services.announcements();
    const line = ndjsonLine({ type: 'services', services: all });
    if (Buffer.byteLength(line) <= MAX_CONTROL_LINE) return void c.write(line);
    // The gateway closes the connection on a longer line: announce what fits, and say so, rather than reconnect forever.
    let room = MAX_CONTROL_LINE - Buffer.byteLength(ndjsonLine({ type: 'services', services: [] }));
    const fit: typeof all = [];
    for (const s of all) {
      room -= Buffer.byteLength(JSON.stringify(s)) + 1;
      if (room < 0) break;
      fit.push(s);
    }
    this.logger.error({ services: all.length, announced: fit.length, limit: MAX_CONTROL_LINE }, 'agent: the services do not fit in one control message; announcing the first ones only');
    c.write(ndjsonLine({ type: 'services', services: fit }));
  }

  private startHeartbeat(): void {
    const session = this.session;
    if (session === null) return;
    const { interval, timeout } = this.settings.heartbeat;
    let outstanding = false;
    this.heartbeat = setInterval(() => {
      if (outstanding || session.destroyed) return;
      outstanding = true;
      this.pingTimer = setTimeout(() => this.dropConnection(`no heartbeat answer within ${timeout} ms`), timeout);
      const sent = Date.now();
      try {
        session.ping((err) => {
          outstanding = false;
          if (this.pingTimer !== null) clearTimeout(this.pingTimer);
          if (err) return;
          this.conn.lastPingAt = new Date().toISOString();
          this.conn.rttMs = Date.now() - sent;
        });
      } catch {
        /* closing */
      }
    }, interval);
  }

  /** Ends the current connection (the session's close then schedules the next dial). */
  private dropConnection(reason: string): void {
    if (this.session !== null && !this.session.destroyed) {
      this.lastReason = reason;
      destroySession(this.session, this.socket ?? { destroy() {} });
    } else {
      this.socket?.destroy();
    }
  }

  private lastReason: string | null = null;

  private lost(session: http2.ServerHttp2Session, why: string): void {
    if (this.session !== session) return;
    const reason = this.lastReason ?? why;
    this.lastReason = null;
    this.session = null;
    this.control = null;
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    if (this.pingTimer !== null) clearTimeout(this.pingTimer);
    this.heartbeat = null;
    const streams = this.openStreams.size;
    for (const s of this.openStreams) s.destroy();
    this.openStreams.clear();
    this.conn.session = null;
    this.conn.since = null;
    if (this.conn.state === 'connected') this.logger.warn({ server: this.conn.server, reason, streamsFailed: streams }, 'agent disconnected');
    this.retry(reason);
  }

  private retry(reason: string): void {
    this.conn.lastError = this.conn.lastError?.startsWith('refused:') ? this.conn.lastError : reason;
    if (this.stopped) return;
    this.failures++;
    const max = this.settings.reconnect.maxAttempts;
    if (max > 0 && this.failures >= max) {
      this.conn.state = 'stopped';
      this.logger.error({ reason, attempts: this.failures }, 'agent: giving up (reconnect.maxAttempts reached)');
      this.onGiveUp?.(reason);
      return;
    }
    this.conn.state = 'waiting';
    this.serverIndex++;
    const delay = this.backoff.next();
    this.logger.info({ reason, retryInMs: delay, next: formatHostPort(this.settings.servers[this.serverIndex % this.settings.servers.length]!) }, 'agent: not connected, retrying');
    this.conn.lastError = reason;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.dial();
    }, delay);
  }
}

export function dialSettings(config: AgentConfig): DialSettings {
  return { servers: config.servers, id: config.id, token: config.token, tls: config.tls, heartbeat: config.heartbeat, window: config.window, reconnect: config.reconnect };
}

/** node:tls options to reach `server`: ALPN, the CA, SNI (not for an IP: RFC 6066 §3), a client certificate for mTLS. */
function tlsOptions(s: DialSettings, server: HostPort): tls.ConnectionOptions {
  const t = s.tls;
  const name = t.serverName ?? server.host;
  return {
    host: server.host,
    port: server.port,
    ALPNProtocols: [TUNNEL_ALPN],
    servername: isIP(name) === 0 ? name : undefined,
    ...(t.serverName !== undefined ? { checkServerIdentity: (_h: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(t.serverName!, cert) } : {}),
    ca: t.ca === undefined ? undefined : readFileSync(t.ca),
    cert: t.cert === undefined ? undefined : readFileSync(t.cert),
    key: t.key === undefined ? undefined : readFileSync(t.key),
    minVersion: t.minVersion,
    rejectUnauthorized: !t.insecureSkipVerify,
    noDelay: true,
  } as tls.ConnectionOptions;
}
