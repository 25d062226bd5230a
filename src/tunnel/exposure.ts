import dgram from 'node:dgram';
import net from 'node:net';
import { getSystemErrorMap } from 'node:util';
import type { TunnelListenerConfig } from '../config/schemas/tunnel.js';
import { connectVia } from '../l4/dial.js';
import { splice } from '../l4/splice.js';
import type { Logger } from '../observability/logger.js';
import { Carried, formatPeer, type ConnectionRegistry, type Owner } from '../runtime/connection-registry.js';
import type { ConnectCallback, ConnectOptions, Connector, StreamOrigin } from '../runtime/connector.js';
import { DatagramDecoder, encodeDatagram, MAX_DATAGRAM_LENGTH } from './datagram-framing.js';
import type { Registration, TunnelHub } from './hub.js';
import type { Exposure } from './session.js';

/** Time for an agent to reach its local service for one public-port connection (or UDP session). */
const CONNECT_TIMEOUT_MS = 10_000;
/** Copy buffer per direction of a public-port connection. */
const BUFFER = 64 * 1024;
/** A UDP client (address:port) silent this long both ways ends its session (and its stream). */
export const UDP_IDLE_MS = 30_000;
/** UDP sessions one public port carries at once (as the L4 udp listener's default); new clients beyond are dropped. */
export const MAX_UDP_SESSIONS = 10_000;
/** Datagrams a UDP session holds while its stream is being opened; more are dropped. */
const OPENING_QUEUE = 64;

/** What an exposure needs of its tunnel listener (its Binding): its name, the registry, the hub. */
export interface Binding extends Owner {
  readonly registry: ConnectionRegistry;
  readonly tunnels: TunnelHub;
}

/**
 * What a tunnel listener opens for its agents' registrations (the
 * `Exposure` a TunnelSession asks): a public port per `remotePort` (TCP
 * for tcp/http/grpc services, UDP for udp services), bound on the
 * listener's `portsHost` (default: its own listen host) for as long as the
 * registration lives; and HTTP hosts (`hosts`) claimed on the tunnel's
 * `http.listener` through the gateway's HostClaims.
 *
 * Every connection on a public port becomes a new stream through THAT
 * registration (its agent connection), carrying the client's and the
 * port's addresses (the agent's PROXY header); a refused or timed-out
 * stream closes the client's connection. When the registration leaves,
 * its port closes at once with every connection on it.
 */
export class TunnelExposure implements Exposure {
  private readonly ports = new Map<Registration, PublicPort>();

  constructor(
    private readonly binding: Binding,
    private readonly config: () => TunnelListenerConfig,
    private readonly logger: Logger,
  ) {}

  async expose(r: Registration): Promise<string | null> {
    const config = this.config();
    const s = r.service;
    let port: PublicPort | null = null;
    if (s.remotePort !== undefined) {
      const host = config.portsHost ?? config.listen.host;
      port = s.type === 'udp' ? new UdpPort(this.binding, r, host, s.remotePort, this.logger) : new TcpPort(this.binding, r, host, s.remotePort, this.logger);
      const why = await port.open();
      if (why !== null) return why;
    }
    if (s.hosts.length > 0) {
      const claims = this.binding.tunnels.hosts;
      const why = claims === null || config.http === undefined ? 'this tunnel listener takes no hosts (it has no http: block)' : claims.claim(config.http.listener, r);
      if (why !== null) {
        port?.close();
        return why;
      }
    }
    if (port !== null) this.ports.set(r, port);
    return null;
  }

  withdraw(r: Registration): void {
    const port = this.ports.get(r);
    this.ports.delete(r);
    port?.close();
    this.binding.tunnels.hosts?.release(r);
  }

  /** Public ports open now (admin status, tests). */
  get openPorts(): number {
    return this.ports.size;
  }
}

/** A connector whose streams carry `origin` (the public port's client), through the registration's connector. */
class OriginConnector implements Connector {
  readonly identity: string;
  constructor(
    private readonly inner: Connector,
    private readonly origin: StreamOrigin,
  ) {
    this.identity = inner.identity;
  }
  connect(options: ConnectOptions, callback: ConnectCallback): () => void {
    return this.inner.connect({ ...options, origin: this.origin }, callback);
  }
}

/** One public port of one registration; its registry entry is a 'tunnel-port'. */
abstract class PublicPort {
  readonly entry: PortEntry;
  protected closed = false;
  /** It was bound and listed (what `ended` undoes). */
  private listed = false;
  /** Bytes from / to clients of connections (sessions) that ended; live ones are added by `bytesIn`/`bytesOut`. */
  protected doneIn = 0;
  protected doneOut = 0;

  constructor(
    protected readonly binding: Binding,
    readonly r: Registration,
    readonly host: string,
    readonly port: number,
    protected readonly logger: Logger,
  ) {
    this.entry = new PortEntry(binding, this);
  }

  /** Binds the port; null when listening, else why not (the registration is refused). */
  abstract open(): Promise<string | null>;
  abstract bytesIn(): number;
  abstract bytesOut(): number;
  /** Stops listening and closes every connection on it now (idempotent). */
  abstract close(): void;

  /** The agent's connection address (`peer` of the registry entry). */
  get agentPeer(): string {
    return (this.r.opener as { peer?: string }).peer ?? this.r.opener.agentId;
  }

  protected opened(kind: 'tcp' | 'udp'): void {
    this.listed = true;
    this.binding.registry.add(this.entry);
    this.logger.info({ listener: this.binding.name, agent: this.r.opener.agentId, code: this.r.code, port: this.port, protocol: kind }, 'tunnel public port open');
  }

  protected ended(kind: 'tcp' | 'udp'): void {
    if (!this.listed) return;
    this.listed = false;
    this.entry.unregister();
    this.logger.info({ listener: this.binding.name, agent: this.r.opener.agentId, code: this.r.code, port: this.port, protocol: kind }, 'tunnel public port closed');
  }

  /** A new stream through this port's registration for a client at `client` that reached `server` (default: the bound address). */
  protected connector(client: string, server = formatPeer(this.host, this.port)): Connector {
    return new OriginConnector(this.binding.tunnels.connector(this.r.identity), { client, server });
  }
}

/** A TCP public port: each accepted connection is spliced to a new tunnel stream (half-close, backpressure). */
class TcpPort extends PublicPort {
  private readonly server: net.Server;
  private readonly clients = new Set<net.Socket>();
  private readonly streams = new Set<net.Socket>();

  constructor(binding: Binding, r: Registration, host: string, port: number, logger: Logger) {
    super(binding, r, host, port, logger);
    // Paused until the stream is up: nothing is read from a client that may yet be refused.
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true, highWaterMark: BUFFER }, (c) => this.accept(c));
  }

  open(): Promise<string | null> {
    return new Promise((resolve) => {
      this.server.once('error', (err) => resolve(bindRefusal('tcp', this.host, this.port, err)));
      this.server.listen({ host: this.host, port: this.port, exclusive: true }, () => {
        this.server.removeAllListeners('error');
        this.server.on('error', (err) => this.logger.warn({ listener: this.binding.name, port: this.port, err: err.message }, 'tunnel public port error'));
        if (this.closed) return void this.server.close();
        this.opened('tcp');
        resolve(null);
      });
    });
  }

  private accept(client: net.Socket): void {
    if (this.closed) return void client.destroy();
    this.clients.add(client);
    client.on('error', () => undefined);
    const peer = formatPeer(client.remoteAddress, client.remotePort);
    const cancel = connectVia(this.connector(peer, formatPeer(client.localAddress, client.localPort)), { timeoutMs: CONNECT_TIMEOUT_MS, keepAliveMs: 0, highWaterMark: BUFFER }, (err, stream) => {
      client.off('close', onEarlyClose);
      if (err !== null || stream === null) {
        this.logger.info({ listener: this.binding.name, code: this.r.code, port: this.port, client: peer, err: err?.message }, 'tunnel public port: no stream to the agent');
        client.destroy();
        return;
      }
      if (client.destroyed || this.closed) return void stream.destroy();
      this.streams.add(stream);
      stream.once('close', () => this.streams.delete(stream));
      splice(client, stream, { idleMs: 0 }, () => undefined);
    });
    const onEarlyClose = () => cancel();
    client.once('close', onEarlyClose);
    client.once('close', () => {
      this.clients.delete(client);
      this.doneIn += client.bytesRead;
      this.doneOut += client.bytesWritten;
    });
  }

  bytesIn(): number {
    let n = this.doneIn;
    for (const c of this.clients) n += c.bytesRead;
    return n;
  }

  bytesOut(): number {
    let n = this.doneOut;
    for (const c of this.clients) n += c.bytesWritten;
    return n;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.server.listening) this.server.close();
    this.ended('tcp');
    for (const c of this.clients) c.destroy();
    for (const s of this.streams) s.destroy();
  }
}

/**
 * A UDP public port: each client address (ip:port) is a session with its
 * own tunnel stream, its datagrams framed both ways (datagram-framing.ts);
 * replies go back from the public port. A session ends after UDP_IDLE_MS
 * of silence both ways, or with its stream.
 */
class UdpPort extends PublicPort {
  private readonly socket: dgram.Socket;
  readonly sessions = new Map<string, DatagramSession>();
  /** Datagrams dropped: beyond MAX_UDP_SESSIONS, a full opening queue, a stream behind on its writes. */
  dropped = 0;

  constructor(binding: Binding, r: Registration, host: string, port: number, logger: Logger) {
    super(binding, r, host, port, logger);
    this.socket = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4' });
  }

  open(): Promise<string | null> {
    return new Promise((resolve) => {
      const onError = (err: Error) => {
        try {
          this.socket.close();
        } catch {
          /* not bound */
        }
        resolve(bindRefusal('udp', this.host, this.port, err));
      };
      this.socket.once('error', onError);
      this.socket.bind({ address: this.host, port: this.port, exclusive: true }, () => {
        this.socket.off('error', onError);
        this.socket.on('error', (err) => this.logger.warn({ listener: this.binding.name, port: this.port, err: err.message }, 'tunnel public port error'));
        if (this.closed) return void this.socket.close();
        this.socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
        this.opened('udp');
        resolve(null);
      });
    });
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closed) return;
    const key = `${rinfo.address} ${rinfo.port}`;
    let s = this.sessions.get(key);
    if (s === undefined) {
      if (this.sessions.size >= MAX_UDP_SESSIONS) {
        this.dropped++;
        return;
      }
      s = new DatagramSession(this, key, rinfo, this.connector(formatPeer(rinfo.address, rinfo.port)));
      this.sessions.set(key, s);
    }
    s.send(msg);
  }

  /** A datagram for the client of `s`, sent from the public port. */
  reply(s: DatagramSession, datagram: Buffer): void {
    if (this.closed) return;
    try {
      this.socket.send(datagram, s.rinfo.port, s.rinfo.address);
    } catch {
      /* closing */
    }
  }

  sessionEnded(s: DatagramSession): void {
    if (this.sessions.get(s.key) === s) this.sessions.delete(s.key);
    this.doneIn += s.bytesIn;
    this.doneOut += s.bytesOut;
  }

  bytesIn(): number {
    let n = this.doneIn;
    for (const s of this.sessions.values()) n += s.bytesIn;
    return n;
  }

  bytesOut(): number {
    let n = this.doneOut;
    for (const s of this.sessions.values()) n += s.bytesOut;
    return n;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.sessions.values()]) s.end();
    this.ended('udp');
    try {
      this.socket.close();
    } catch {
      /* already closed (a failed bind closes it) */
    }
  }
}

/** One UDP client of a public port and its tunnel stream. */
class DatagramSession {
  bytesIn = 0;
  bytesOut = 0;
  private stream: net.Socket | null = null;
  /** Datagrams received before the stream is up; null once it is. */
  private queue: Buffer[] | null = [];
  private readonly decoder = new DatagramDecoder();
  private lastActivity = Date.now();
  private timer: NodeJS.Timeout;
  private cancel: (() => void) | null;
  private ended = false;

  constructor(
    private readonly port: UdpPort,
    readonly key: string,
    readonly rinfo: dgram.RemoteInfo,
    connector: Connector,
  ) {
    this.timer = this.arm(UDP_IDLE_MS);
    this.cancel = connectVia(connector, { timeoutMs: CONNECT_TIMEOUT_MS, keepAliveMs: 0, highWaterMark: BUFFER }, (err, stream) => {
      this.cancel = null;
      if (err !== null || stream === null) return this.end();
      if (this.ended) return void stream.destroy();
      this.stream = stream;
      stream.on('error', () => undefined);
      stream.on('data', (chunk: Buffer) => {
        this.lastActivity = Date.now();
        for (const d of this.decoder.push(chunk)) {
          this.bytesOut += d.length;
          this.port.reply(this, d);
        }
      });
      // The agent ended or reset its side: the session is over.
      stream.once('end', () => this.end());
      stream.once('close', () => this.end());
      const queued = this.queue ?? [];
      this.queue = null;
      for (const d of queued) this.write(d);
    });
  }

  send(datagram: Buffer): void {
    if (this.ended) return;
    if (datagram.length > MAX_DATAGRAM_LENGTH) return void this.port.dropped++;
    this.lastActivity = Date.now();
    if (this.queue === null) return this.write(datagram);
    if (this.queue.length >= OPENING_QUEUE) return void this.port.dropped++;
    this.queue.push(datagram);
  }

  /** Writes one framed datagram; a stream still draining earlier writes drops it (UDP may lose datagrams, memory stays bounded). */
  private write(datagram: Buffer): void {
    const stream = this.stream;
    if (stream === null || stream.destroyed) return;
    if (stream.writableNeedDrain) return void this.port.dropped++;
    this.bytesIn += datagram.length;
    const [header, payload] = encodeDatagram(datagram);
    stream.cork();
    stream.write(header!);
    stream.write(payload!);
    stream.uncork();
  }

  /** One timer per session, re-armed lazily: traffic only moves `lastActivity`. */
  private arm(ms: number): NodeJS.Timeout {
    const t = setTimeout(() => {
      const left = this.lastActivity + UDP_IDLE_MS - Date.now();
      if (left > 0) this.timer = this.arm(left);
      else this.end();
    }, ms);
    t.unref();
    return t;
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    this.queue = null;
    this.cancel?.();
    this.cancel = null;
    this.stream?.destroy();
    this.stream = null;
    this.port.sessionEnded(this);
  }
}

/** A public port as GET /connections lists it: closing it closes the port and every connection on it. */
class PortEntry extends Carried {
  readonly kind = 'tunnel-port' as const;
  constructor(
    owner: Owner,
    private readonly port: PublicPort,
  ) {
    super(owner);
    this.target = port.r.identity;
  }
  peer(): string {
    return this.port.agentPeer;
  }
  bytesIn(): number {
    return this.port.bytesIn();
  }
  bytesOut(): number {
    return this.port.bytesOut();
  }
  override route(): string {
    return this.port.r.code;
  }
  protected shutdown(): void {
    this.port.close();
  }
}

/** Why a public port could not be bound, as the agent is told: `port 20022 (tcp) is already in use (EADDRINUSE)`. */
function bindRefusal(kind: 'tcp' | 'udp', host: string, port: number, err: Error): string {
  const { code, errno } = err as NodeJS.ErrnoException;
  const text = typeof errno === 'number' ? getSystemErrorMap().get(errno)?.[1] : undefined;
  return `port ${port} (${kind}) on ${formatPeer(host, port).replace(/:\d+$/, '')} cannot be opened: ${text && code ? `${text} (${code})` : err.message}`;
}
