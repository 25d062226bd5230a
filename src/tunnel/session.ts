import http2 from 'node:http2';
import type tls from 'node:tls';
import type { Logger } from '../observability/logger.js';
import { ConnectTimeoutError, type ConnectCallback, type ConnectOptions } from '../runtime/connector.js';
import { Carried, formatPeer, type ConnectionRegistry, type Owner } from '../runtime/connection-registry.js';
import type { HeartbeatConfig, WindowConfig } from '../config/schemas/tunnel.js';
import { newNonce } from './auth.js';
import { Registration, TunnelConnectError, type StreamOpener, type StreamOrigin, type TunnelHub } from './hub.js';
import { NdjsonReader, ndjsonLine } from './ndjson.js';
import { CONTROL_PATH, HEADER, MAX_CONTROL_LINE, MAX_FRAME_SIZE, type GatewayMessage, type ServiceAnnouncement } from './protocol.js';
import { resetStream, TunnelSocket } from './socket.js';
import { readAnnouncements } from './announcement.js';

/** What an authenticated connection may do: decided by the listener's policy for its id. */
export interface AgentGrant {
  readonly id: string;
  /** Null when this connection may register `service`, else why not (logged by the agent). */
  check(service: ServiceAnnouncement): string | null;
}

/** The listener's policy: who may connect (token proof or client certificate). */
export interface AgentAuthority {
  /** The grant for `id` proving itself with `proof` over `nonce` (or its certificate); null when refused. */
  authenticate(id: string, nonce: string, proof: string, socket: tls.TLSSocket): AgentGrant | null;
}

/** Public ports and HTTP hosts a registration asks for; implemented by the tunnel listener. */
export interface Exposure {
  /**
   * Opens what `r.service` asks for (binding a port is asynchronous);
   * null on success, else why not (the registration is refused, nothing
   * stays open). `withdraw` undoes a success.
   */
  expose(r: Registration): string | null | Promise<string | null>;
  withdraw(r: Registration): void;
}

export interface SessionSettings {
  heartbeat: HeartbeatConfig;
  window: WindowConfig;
  limits: { maxServices: number; maxStreams: number; handshakeTimeout: number };
}

export interface SessionDeps {
  owner: Owner;
  authority: AgentAuthority;
  hub: TunnelHub;
  exposure: Exposure | null;
  settings: SessionSettings;
  logger: Logger;
  registry: ConnectionRegistry;
  /** Called once when the connection has ended (after every registration left), with why. */
  onClose(session: TunnelSession, reason: string): void;
  /** Called once when it authenticated. */
  onReady?(session: TunnelSession): void;
}

/** Services messages one connection may send per minute; more is a flood and ends it. */
const MESSAGES_PER_MINUTE = 120;

let sessionSeq = 0;

/**
 * The gateway's side of one agent (or relay service) connection: the
 * HTTP/2 client over the accepted TLS socket. It authenticates the agent
 * on the control stream, turns its announced services into registrations
 * in the hub (checked against the agent's grant), opens a CONNECT stream
 * per carried connection, and pings; when anything fails the connection
 * ends and every registration leaves at once.
 */
export class TunnelSession implements StreamOpener {
  readonly seq = ++sessionSeq;
  readonly peer: string;
  agentId = '';
  get listener(): string {
    return this.deps.owner.name;
  }
  private readonly session: http2.ClientHttp2Session;
  private control: http2.ClientHttp2Stream | null = null;
  private grant: AgentGrant | null = null;
  private readonly registrations = new Map<string, Registration>();
  private readonly refusals = new Map<string, string>();
  private closed = false;
  private closeReason = '';
  private handshakeTimer: NodeJS.Timeout | null;
  private heartbeat: NodeJS.Timeout | null = null;
  private pingOutstanding = false;
  private pingTimer: NodeJS.Timeout | null = null;
  private messages = { windowStart: Date.now(), count: 0 };
  /** The services message being applied (they are applied in order). */
  private applying: Promise<void> = Promise.resolve();
  readonly startedAt = Date.now();
  /** When the last PING was answered (ms since epoch; 0 before the first), and its round trip. */
  lastPingAt = 0;
  lastRttMs = 0;
  /** Streams open now, and opened in total. */
  streams = 0;
  streamsTotal = 0;
  readonly entry: AgentEntry;

  constructor(
    readonly socket: tls.TLSSocket,
    private readonly deps: SessionDeps,
  ) {
    this.peer = formatPeer(socket.remoteAddress, socket.remotePort);
    this.entry = new AgentEntry(deps.owner, this);
    const { window } = deps.settings;
    this.session = http2.connect('http://portico-tunnel.invalid', {
      createConnection: () => socket,
      settings: { enablePush: false, initialWindowSize: window.stream, maxFrameSize: MAX_FRAME_SIZE },
      maxSessionMemory: Math.ceil((2 * window.connection) / (1024 * 1024)) + 16,
      peerMaxConcurrentStreams: deps.settings.limits.maxStreams,
    });
    this.session.on('error', (err) => this.close(`connection error: ${err.message}`));
    this.session.on('goaway', () => this.close('the agent went away'));
    this.session.once('close', () => this.close(this.closeReason || 'connection closed'));
    // HTTP/2 has no half-closed connection (RFC 9113 §6.8: peers leave with GOAWAY): a FIN from the peer
    // (the listener's sockets allow half-open) means it will never send a proof or a PING answer again.
    socket.once('end', () => this.close('the peer closed its side of the connection'));
    this.session.once('connect', () => {
      try {
        this.session.setLocalWindowSize(window.connection);
      } catch {
        // The session is already closing; 'close' follows.
      }
    });
    this.handshakeTimer = setTimeout(() => this.close('no authentication within the handshake timeout'), deps.settings.limits.handshakeTimeout);
    this.openControl();
  }

  /** Whether it authenticated and has not ended. */
  get ready(): boolean {
    return this.grant !== null && !this.closed;
  }

  /** Its registrations now (code → registration). */
  get registered(): ReadonlyMap<string, Registration> {
    return this.registrations;
  }

  /** Codes it announced that were refused, with why. */
  get refused(): ReadonlyMap<string, string> {
    return this.refusals;
  }

  private openControl(): void {
    const nonce = newNonce();
    let control: http2.ClientHttp2Stream;
    try {
      control = this.session.request({ ':method': 'POST', ':path': CONTROL_PATH, [HEADER.nonce]: nonce }, { endStream: false });
    } catch (err) {
      this.close(`cannot open the control stream: ${(err as Error).message}`);
      return;
    }
    this.control = control;
    const reader = new NdjsonReader(MAX_CONTROL_LINE);
    control.on('error', () => undefined);
    control.once('close', () => this.close(this.grant === null ? 'connection closed before authentication' : 'the control stream ended'));
    control.once('response', (headers) => {
      const id = one(headers[HEADER.id]);
      const proof = one(headers[HEADER.proof]);
      const grant = headers[':status'] === 200 && id !== undefined && proof !== undefined ? this.deps.authority.authenticate(id, nonce, proof, this.socket) : null;
      if (grant === null) {
        // One answer whatever was wrong (unknown id, wrong token, no certificate): nothing to probe with.
        this.deps.logger.warn({ listener: this.listener, peer: this.peer, id: id?.slice(0, 64) }, 'tunnel connection refused: authentication failed');
        this.send({ type: 'refused', reason: 'authentication failed' });
        this.closeSoon('authentication failed');
        return;
      }
      this.authenticated(grant);
    });
    control.on('data', (chunk: Buffer) => {
      if (this.grant === null || this.closed) return;
      let messages: Record<string, unknown>[];
      try {
        messages = reader.push(chunk);
      } catch (err) {
        this.close(`bad control message: ${(err as Error).message}`, true);
        return;
      }
      for (const m of messages) this.onMessage(m);
    });
  }

  private authenticated(grant: AgentGrant): void {
    if (this.closed) return;
    this.grant = grant;
    this.agentId = grant.id;
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.deps.registry.add(this.entry);
    const { heartbeat } = this.deps.settings;
    this.send({ type: 'welcome', session: this.deps.registry.idOf(this.entry), heartbeat });
    this.heartbeat = setInterval(() => this.ping(), heartbeat.interval);
    this.deps.logger.info({ listener: this.listener, peer: this.peer, agent: grant.id }, 'tunnel agent connected');
    this.deps.onReady?.(this);
  }

  private ping(): void {
    if (this.pingOutstanding || this.closed) return;
    this.pingOutstanding = true;
    const sent = Date.now();
    this.pingTimer = setTimeout(() => this.close(`no heartbeat answer within ${this.deps.settings.heartbeat.timeout} ms`), this.deps.settings.heartbeat.timeout);
    try {
      this.session.ping((err) => {
        this.pingOutstanding = false;
        if (this.pingTimer !== null) clearTimeout(this.pingTimer);
        this.pingTimer = null;
        if (err) return this.close(`heartbeat failed: ${err.message}`);
        this.lastPingAt = Date.now();
        this.lastRttMs = this.lastPingAt - sent;
      });
    } catch (err) {
      this.close(`heartbeat failed: ${(err as Error).message}`);
    }
  }

  private onMessage(m: Record<string, unknown>): void {
    const now = Date.now();
    if (now - this.messages.windowStart > 60_000) this.messages = { windowStart: now, count: 0 };
    if (++this.messages.count > MESSAGES_PER_MINUTE) {
      this.close(`more than ${MESSAGES_PER_MINUTE} control messages in a minute`, true);
      return;
    }
    if (m.type !== 'services') return; // Unknown message types are for newer gateways: ignored.
    const read = readAnnouncements(m.services, this.deps.settings.limits.maxServices);
    // One message at a time: an exposure may bind ports asynchronously.
    this.applying = this.applying.then(() => this.apply(read.services, read.refused)).catch((err: unknown) => this.close(`cannot apply the services: ${(err as Error).message}`));
  }

  /** Makes the registrations match the announced set: new ones checked and added, gone ones removed, changed ones updated. */
  private async apply(services: ServiceAnnouncement[], refused: { code: string; reason: string }[]): Promise<void> {
    if (this.closed) return;
    const grant = this.grant!;
    const wanted = new Map(services.map((s) => [s.code, s]));
    for (const [code, r] of this.registrations) {
      const s = wanted.get(code);
      if (s !== undefined && sameExposure(r.service, s)) continue;
      this.drop(r);
    }
    this.refusals.clear();
    for (const r of refused) this.refusals.set(r.code, r.reason);
    const accepted: string[] = [];
    for (const s of services) {
      const existing = this.registrations.get(s.code);
      if (existing !== undefined) {
        if (existing.service.up !== s.up) this.deps.hub.update(existing, s);
        else existing.service = s;
        accepted.push(s.code);
        continue;
      }
      const why = grant.check(s);
      if (why !== null) {
        this.refusals.set(s.code, why);
        continue;
      }
      const r = new Registration(s.code, this, this.seq, s);
      const exposed = this.deps.exposure === null ? null : await this.deps.exposure.expose(r);
      if (this.closed) {
        // The connection ended while a port was being bound: let it go with the others.
        if (exposed === null) this.deps.exposure?.withdraw(r);
        return;
      }
      if (exposed !== null) {
        this.refusals.set(s.code, exposed);
        continue;
      }
      this.registrations.set(s.code, r);
      this.deps.hub.register(r);
      accepted.push(s.code);
    }
    const refusedList = [...this.refusals].map(([code, reason]) => ({ code, reason }));
    if (refusedList.length > 0) this.deps.logger.warn({ listener: this.listener, agent: this.agentId, refused: refusedList.slice(0, 16) }, 'tunnel services refused');
    this.send(verdicts(accepted, refusedList));
  }

  private drop(r: Registration): void {
    this.registrations.delete(r.code);
    this.deps.hub.unregister(r);
    this.deps.exposure?.withdraw(r);
  }

  private send(m: GatewayMessage): void {
    const c = this.control;
    if (c === null || c.destroyed || c.writableEnded) return;
    c.write(ndjsonLine(m));
  }

  /**
   * Opens a CONNECT stream to `code` (RFC 9113 §8.5); calls back with it
   * as a socket once the agent answered 200 (it reached its local
   * service), or with the reason it could not.
   */
  open(code: string, origin: StreamOrigin, options: ConnectOptions, callback: ConnectCallback): () => void {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      if (timer !== null) clearTimeout(timer);
      callback(err, null);
    };
    let timer: NodeJS.Timeout | null = null;
    if (!this.ready || this.session.destroyed || this.session.closed) {
      process.nextTick(fail, new TunnelConnectError(`${code}@${this.agentId}: the tunnel connection is closed`));
      return () => void (settled = true);
    }
    if (this.streams >= this.deps.settings.limits.maxStreams) {
      process.nextTick(fail, new TunnelConnectError(`${code}@${this.agentId}: ${this.streams} streams open (the limit)`));
      return () => void (settled = true);
    }
    const headers: http2.OutgoingHttpHeaders = { ':method': 'CONNECT', ':authority': code };
    if (origin.client !== undefined) headers[HEADER.client] = origin.client;
    if (origin.server !== undefined) headers[HEADER.server] = origin.server;
    let stream: http2.ClientHttp2Stream;
    try {
      stream = this.session.request(headers, { endStream: false });
    } catch (err) {
      process.nextTick(fail, new TunnelConnectError(`${code}@${this.agentId}: ${(err as Error).message}`));
      return () => void (settled = true);
    }
    this.streams++;
    this.streamsTotal++;
    stream.once('close', () => this.streams--);
    const onEarlyEnd = () => fail(new TunnelConnectError(`${code}@${this.agentId}: the stream closed before the agent answered${stream.rstCode ? ` (HTTP/2 error ${stream.rstCode})` : ''}`));
    stream.once('close', onEarlyEnd);
    stream.on('error', () => undefined);
    if (options.timeout > 0) {
      timer = setTimeout(() => {
        fail(new ConnectTimeoutError(`${code}@${this.agentId}`, options.timeout));
        resetStream(stream, http2.constants.NGHTTP2_CANCEL);
      }, options.timeout);
    }
    stream.once('response', (h) => {
      stream.off('close', onEarlyEnd);
      if (settled) return void resetStream(stream, http2.constants.NGHTTP2_CANCEL);
      const status = h[':status'];
      if (status !== 200) {
        fail(new TunnelConnectError(`${code}@${this.agentId}: ${one(h[HEADER.error]) ?? `status ${status}`}`));
        resetStream(stream, http2.constants.NGHTTP2_CANCEL);
        return;
      }
      settled = true;
      if (timer !== null) clearTimeout(timer);
      const socket = new TunnelSocket(stream, splitPeer(origin.client), { allowHalfOpen: options.allowHalfOpen, highWaterMark: options.highWaterMark });
      const r = this.registrations.get(code);
      const entry = new TunnelStreamEntry(this.deps.owner, socket, origin.client ?? this.peer, r?.identity ?? `tunnel:${code}@${this.agentId}`);
      this.deps.registry.add(entry);
      socket.once('close', () => entry.unregister());
      callback(null, socket.asSocket());
    });
    return () => {
      if (settled) return;
      settled = true;
      if (timer !== null) clearTimeout(timer);
      resetStream(stream, http2.constants.NGHTTP2_CANCEL);
    };
  }

  /**
   * Ends the connection now: every registration leaves, every stream is
   * reset. Safe to call more than once. `violation`: the peer broke the
   * protocol (bad input, a flood), logged at warn rather than info.
   */
  close(reason: string, violation = false): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    if (this.pingTimer !== null) clearTimeout(this.pingTimer);
    for (const r of [...this.registrations.values()]) this.drop(r);
    if (this.grant !== null) this.deps.logger[violation ? 'warn' : 'info']({ listener: this.listener, peer: this.peer, agent: this.agentId, reason }, 'tunnel agent disconnected');
    else if (reason !== 'authentication failed') this.deps.logger.info({ listener: this.listener, peer: this.peer, reason }, 'tunnel connection closed before authentication');
    destroySession(this.session, this.socket);
    this.entry.unregister();
    this.deps.onClose(this, reason);
  }

  /** Lets the refusal reach the agent, then closes. */
  private closeSoon(reason: string): void {
    this.closeReason = reason;
    const c = this.control;
    if (c !== null && !c.destroyed) c.end();
    setTimeout(() => this.close(reason), 200).unref();
  }
}

/**
 * Destroys an HTTP/2 session and its socket on the next turn of the event
 * loop. Node 20's http2 can spin forever in a stream's RST_STREAM when its
 * session is destroyed from inside one of that session's own stream
 * events (a control stream's 'close'), so teardown never runs there.
 */
export function destroySession(session: http2.Http2Session, socket: { destroy(): void }): void {
  setImmediate(() => {
    session.destroy();
    socket.destroy();
  });
}

/**
 * The verdicts as one control line of at most MAX_CONTROL_LINE bytes, the
 * cap the agent enforces: a flood of refused services would otherwise make
 * a line the agent rejects (and reconnects over, forever). Refusals that do
 * not fit are counted in `refusedOmitted`. The accepted codes always fit:
 * each is shorter than the service entry that announced it, and the
 * announcement itself was one line within the cap.
 */
function verdicts(accepted: string[], refused: { code: string; reason: string }[]): GatewayMessage {
  const whole: GatewayMessage = { type: 'verdicts', accepted, refused };
  if (Buffer.byteLength(ndjsonLine(whole)) <= MAX_CONTROL_LINE) return whole;
  // Room for the refusals: the line without them, and a margin for `"refusedOmitted":N`.
  let room = MAX_CONTROL_LINE - Buffer.byteLength(ndjsonLine({ type: 'verdicts', accepted, refused: [] })) - 64;
  const kept: { code: string; reason: string }[] = [];
  for (const r of refused) {
    room -= Buffer.byteLength(JSON.stringify(r)) + 1;
    if (room < 0) break;
    kept.push(r);
  }
  return { type: 'verdicts', accepted, refused: kept, refusedOmitted: refused.length - kept.length };
}

function one(v: string | string[] | number | undefined): string | undefined {
  return typeof v === 'string' ? v : Array.isArray(v) ? v[0] : undefined;
}

function splitPeer(addr: string | undefined): { address?: string; port?: number } {
  if (addr === undefined) return {};
  const i = addr.lastIndexOf(':');
  return i < 0 ? { address: addr } : { address: addr.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(addr.slice(i + 1)) };
}

function sameExposure(a: ServiceAnnouncement, b: ServiceAnnouncement): boolean {
  return a.type === b.type && a.remotePort === b.remotePort && a.hosts.length === b.hosts.length && a.hosts.every((h, i) => h === b.hosts[i]);
}

/** An agent (or relay service) connection, as GET /connections lists it; its registrations are listed under it. */
export class AgentEntry extends Carried {
  readonly kind = 'tunnel-agent' as const;
  constructor(
    owner: Owner,
    readonly session: TunnelSession,
  ) {
    super(owner, session.startedAt);
  }
  peer(): string {
    return this.session.peer;
  }
  bytesIn(): number | null {
    return this.session.socket.bytesRead;
  }
  bytesOut(): number | null {
    return this.session.socket.bytesWritten;
  }
  override targetAddress(): string | undefined {
    return this.session.agentId;
  }
  override children(): Carried[] {
    let i = 0;
    return [...this.session.registered.values()].map((r) => {
      const c = new ServiceEntry(this.owner, this.session, r);
      c.parent = this;
      c.local = ++i;
      return c;
    });
  }
  override child(local: number): Carried | undefined {
    return this.children()[local - 1];
  }
  protected shutdown(): void {
    this.session.close('closed through the admin API');
  }
}

/** One registered code of an agent connection (closing it disconnects the agent: a code is its connection's). */
class ServiceEntry extends Carried {
  readonly kind = 'tunnel-service' as const;
  constructor(
    owner: Owner,
    private readonly session: TunnelSession,
    private readonly r: Registration,
  ) {
    super(owner, r.registeredAt);
    this.target = r.identity;
  }
  peer(): string {
    return this.session.peer;
  }
  bytesIn(): null {
    return null;
  }
  bytesOut(): null {
    return null;
  }
  override route(): string | undefined {
    return this.r.code;
  }
  protected shutdown(): void {
    this.session.close(`closed through the admin API (service ${this.r.code})`);
  }
}

/** One carried connection over a tunnel: a CONNECT stream, with the client it carries. */
class TunnelStreamEntry extends Carried {
  readonly kind = 'tunnel-stream' as const;
  constructor(
    owner: Owner,
    private readonly socket: TunnelSocket,
    private readonly client: string,
    identity: string,
  ) {
    super(owner);
    this.target = identity;
  }
  peer(): string {
    return this.client;
  }
  bytesIn(): number {
    return this.socket.bytesWritten;
  }
  bytesOut(): number {
    return this.socket.bytesRead;
  }
  protected shutdown(): void {
    this.socket.destroy();
  }
}
