import type net from 'node:net';
import type { Binding, FrontendKind, StreamFrontend } from '../listeners/frontend.js';
import type { AnyListenerRuntime } from '../listeners/listener-runtime.js';
import type { Logger } from '../observability/logger.js';
import type { RefusalReason } from './admission.js';
import { ConnectionRegistry } from './connections.js';
import { listSocket } from '../runtime/connection-registry.js';
import { StreamConnection, type StreamKind } from './stream-connection.js';
import type { L4ListenerRuntime } from './listener-runtime.js';
import { readProxyHeader, ProxyProtocolError } from './proxy-protocol/read.js';
import { unmapV4, type ProxiedAddresses } from './proxy-protocol/encode.js';
import type { StreamListenerConfig } from './schema.js';

/** One accepted connection, once admitted: who the client is and what it already sent. */
export interface Accepted<C extends StreamListenerConfig> {
  socket: net.Socket;
  /** The client's addresses: from the PROXY protocol header when there was one, else the socket's. */
  client: ProxiedAddresses;
  /** Bytes read while looking for a PROXY header, to be handled before anything else. */
  head: Buffer;
  /** The listener as it was when the connection arrived. */
  runtime: L4ListenerRuntime<C>;
  /** process.hrtime.bigint() at accept. */
  startedAt: bigint;
}

/** How a connection ended, for its access-log line. */
export interface ConnectionEnd {
  client: ProxiedAddresses;
  startedAt: bigint;
  /** `ok`, a refusal reason, or an error code such as DIAL_FAILED. */
  outcome: string;
  upstream?: string;
  target?: string;
  bytesUp?: number;
  bytesDown?: number;
  closedBy?: string;
  error?: string;
  /** Protocol-specific fields (sni, sealed backend…). */
  extra?: Record<string, string | number | boolean>;
}

/**
 * What every TCP-based L4 listener does with a new connection, before its
 * own protocol: TCP keep-alive; the PROXY protocol header (`accept`,
 * `require`), believed only from `trustedProxies`; the connection
 * middlewares and limits on the client's address. A refused connection is
 * reset at once and counted. The subclass's `serve` gets the rest.
 */
export abstract class L4StreamFrontend<C extends StreamListenerConfig> implements StreamFrontend {
  abstract readonly kind: FrontendKind;
  protected runtime: L4ListenerRuntime<C>;
  protected readonly registry = new ConnectionRegistry();
  /** Connections still sending their PROXY header (not yet in the registry). */
  private readonly pending = new Set<net.Socket>();
  protected closing = false;
  protected readonly binding: Binding;
  protected readonly logger: Logger;

  constructor(binding: Binding, runtime: L4ListenerRuntime<C>, logger: Logger) {
    this.binding = binding;
    this.runtime = runtime;
    this.logger = logger;
  }

  update(runtime: AnyListenerRuntime): void {
    this.runtime = runtime as L4ListenerRuntime<C>;
  }

  get connections(): number {
    return this.registry.size + this.pending.size;
  }

  describe(): Record<string, unknown> {
    return { refused: Object.fromEntries(this.registry.refused) };
  }

  accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const startedAt = process.hrtime.bigint();
    const runtime = this.runtime;
    const config = runtime.config;
    // TCP_NODELAY is already set: the gateway's server is created with noDelay.
    if (config.tcpKeepAlive > 0) socket.setKeepAlive(true, config.tcpKeepAlive);
    // Errors are handled by whoever owns the socket next; this keeps an early reset from throwing.
    socket.on('error', () => undefined);
    const own = new SocketAddresses(socket);
    const trusted = runtime.trustedProxies === null || runtime.trustedProxies.has(own.sourceAddress);
    if (config.proxyProtocol === 'none' || !trusted) {
      if (config.proxyProtocol === 'require') return this.refuse(socket, own, 'proxy-protocol', startedAt, 'peer not in trustedProxies');
      this.admit({ socket, client: own, head: EMPTY, runtime, startedAt });
      return;
    }
    this.pending.add(socket);
    socket.once('close', () => this.pending.delete(socket));
    readProxyHeader(socket, { required: config.proxyProtocol === 'require', timeoutMs: config.timeouts.handshake }).then(
      (r) => {
        this.pending.delete(socket);
        if (socket.destroyed) return;
        this.admit({ socket, client: r.addresses ?? own, head: r.rest, runtime, startedAt });
      },
      (err: unknown) => {
        this.pending.delete(socket);
        const detail = err instanceof ProxyProtocolError ? `${err.reason}: ${err.message}` : String(err);
        this.refuse(socket, own, 'proxy-protocol', startedAt, detail);
      },
    );
  }

  private admit(a: Accepted<C>): void {
    const ip = a.client.sourceAddress;
    const verdict = a.runtime.admission.check(ip);
    const go = (reason: RefusalReason | null) => {
      if (a.socket.destroyed) return;
      const refused = reason ?? this.registry.add(a.socket, ip, a.runtime.config.limits);
      if (refused !== null) return this.refuse(a.socket, a.client, refused, a.startedAt);
      listSocket(this.binding.registry, a.socket, new StreamConnection(this.kind as StreamKind, this.binding, a.socket, a.client));
      this.serve(a);
    };
    if (verdict instanceof Promise) verdict.then(go, () => go(null));
    else go(verdict);
  }

  /** Resets a refused connection, counts it by reason and logs it. */
  private refuse(socket: net.Socket, client: ProxiedAddresses, reason: RefusalReason, startedAt: bigint, detail?: string): void {
    this.registry.refuse(reason);
    if (socket.resetAndDestroy !== undefined && !socket.destroyed) socket.resetAndDestroy();
    else socket.destroy();
    this.logger.debug({ listener: this.binding.name, client: client.sourceAddress, reason, detail }, 'connection refused');
    this.logConnection(this.runtime, { client, outcome: reason, startedAt, ...(detail !== undefined ? { error: detail } : {}) });
  }

  /** Handles an admitted connection: the listener's own protocol. */
  protected abstract serve(a: Accepted<C>): void;

  /** Writes the connection's access-log line, if the listener logs. */
  logConnection(runtime: L4ListenerRuntime<C>, end: ConnectionEnd): void {
    if (runtime.accessLog === null) return;
    const { client, startedAt, extra, ...rest } = end;
    runtime.accessLog.writeConnection({
      listener: runtime.name,
      protocol: runtime.config.protocol,
      client: client.sourceAddress,
      clientPort: client.sourcePort,
      durationMs: Math.round(Number(process.hrtime.bigint() - startedAt) / 1e3) / 1e3,
      ...rest,
      ...extra,
    });
  }

  close(graceMs: number): Promise<void> {
    this.closing = true;
    for (const s of this.pending) s.destroy();
    return this.registry.close(graceMs);
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * A connection's own addresses. The local side costs a getsockname call,
 * so it is read only when something asks (a PROXY header sent upstream).
 */
class SocketAddresses implements ProxiedAddresses {
  readonly sourceAddress: string;
  readonly sourcePort: number;
  private readonly socket: net.Socket;

  constructor(socket: net.Socket) {
    this.socket = socket;
    this.sourceAddress = unmapV4(socket.remoteAddress ?? '');
    this.sourcePort = socket.remotePort ?? 0;
  }

  get destinationAddress(): string {
    return unmapV4(this.socket.localAddress ?? '');
  }

  get destinationPort(): number {
    return this.socket.localPort ?? 0;
  }
}
