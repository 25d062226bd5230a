import type net from 'node:net';
import tls from 'node:tls';
import type { TunnelListenerConfig } from '../config/schemas/tunnel.js';
import type { Logger } from '../observability/logger.js';
import type { AnyListenerRuntime, L4ListenerRuntime, ListenerTls } from '../snapshot/snapshot.js';
import { TunnelPolicy } from '../tunnel/policy.js';
import { TUNNEL_ALPN } from '../tunnel/protocol.js';
import { TunnelSession, type Exposure } from '../tunnel/session.js';
import type { Registration } from '../tunnel/hub.js';
import type { Binding, StreamListener } from './listener.js';
import { wrapped } from './tls.js';

/**
 * `protocol: tunnel`: agents behind NAT dial in over TLS and expose their
 * local services (docs/tunnel.md). Each accepted connection becomes a
 * TunnelSession (the gateway's HTTP/2 client side of reverse HTTP/2); its
 * registrations join the gateway's TunnelHub, where `{ tunnel: CODE }`
 * targets find them. A reload applies new agent policies to new
 * connections; connected agents keep the grant they authenticated with.
 */
export class TunnelListener implements StreamListener {
  readonly kind = 'tunnel' as const;
  private runtime!: L4ListenerRuntime<TunnelListenerConfig>;
  private policy!: TunnelPolicy;
  private template: { certificates: ListenerTls; handshakeMs: number; server: tls.Server } | null = null;
  private readonly sessions = new Set<TunnelSession>();
  /** Sockets accepted and not yet authenticated (TLS or control-stream handshake). */
  private pending = 0;
  /** How to stop counting an accepted socket as pending, by accepted socket. */
  private readonly unsettled = new WeakMap<net.Socket, () => void>();
  private refusedPending = 0;
  private closing = false;
  /** Public ports and HTTP hosts agents ask for (see exposure); null refuses them. */
  exposure: Exposure;

  constructor(
    private readonly binding: Binding,
    runtime: AnyListenerRuntime,
    private readonly logger: Logger,
  ) {
    this.exposure = refuseExposure;
    this.update(runtime);
  }

  update(runtime: AnyListenerRuntime): void {
    if (runtime.kind !== 'l4' || runtime.config.protocol !== 'tunnel') throw new Error(`listener ${runtime.name} is not a tunnel listener`);
    this.runtime = runtime as L4ListenerRuntime<TunnelListenerConfig>;
    this.policy = new TunnelPolicy(this.runtime.config);
  }

  get connections(): number {
    return this.sessions.size;
  }

  /** The connected agents (authenticated or not yet). */
  agents(): readonly TunnelSession[] {
    return [...this.sessions];
  }

  describe(): Record<string, unknown> {
    return { agents: [...this.sessions].filter((s) => s.ready).length, pending: this.pending, refusedPending: this.refusedPending };
  }

  accept(socket: net.Socket): void {
    const config = this.runtime.config;
    if (this.closing || this.pending >= config.limits.maxPending) {
      if (!this.closing) this.refusedPending++;
      socket.destroy();
      return;
    }
    const server = this.templateFor(this.runtime);
    if (server === null) return void socket.destroy();
    this.pending++;
    let counted = true;
    const settle = () => {
      if (!counted) return;
      counted = false;
      this.pending--;
    };
    socket.once('close', settle);
    socket.on('error', () => undefined);
    // A tunnel connection is never half-open (the gateway's sockets allow it for HTTP and L4): without this, a peer
    // that sends FIN during the TLS handshake would hold its pending slot until limits.handshakeTimeout.
    socket.allowHalfOpen = false;
    this.unsettled.set(socket, settle);
    server.emit('connection', socket);
  }

  private secured(secure: tls.TLSSocket): void {
    const runtime = this.runtime;
    const config = runtime.config;
    if (this.closing) return void secure.destroy();
    secure.on('error', () => undefined);
    const session = new TunnelSession(secure, {
      owner: this.binding,
      authority: this.policy,
      hub: this.binding.tunnels,
      exposure: this.exposure,
      settings: { heartbeat: config.heartbeat, window: config.window, limits: config.limits },
      logger: this.logger,
      registry: this.binding.registry,
      onReady: () => this.settlePending(secure),
      onClose: (s) => {
        this.sessions.delete(s);
        this.settlePending(secure);
      },
    });
    this.sessions.add(session);
  }

  private settlePending(secure: tls.TLSSocket): void {
    const raw = wrapped(secure);
    if (raw !== undefined) this.unsettled.get(raw)?.();
  }

  private templateFor(runtime: L4ListenerRuntime<TunnelListenerConfig>): tls.Server | null {
    const certificates = runtime.certificates;
    if (certificates === null) return null;
    const handshakeMs = runtime.config.limits.handshakeTimeout;
    if (this.template !== null && this.template.certificates === certificates && this.template.handshakeMs === handshakeMs) return this.template.server;
    const server = tls.createServer({ ...certificates.serverOptions(), ALPNProtocols: [TUNNEL_ALPN], handshakeTimeout: handshakeMs });
    server.on('secureConnection', (secure: tls.TLSSocket) => this.secured(secure));
    server.on('tlsClientError', (err: Error & { code?: string }, secure: tls.TLSSocket) => {
      const reason = secure.authorizationError ?? err.code ?? err.message;
      this.logger.info({ listener: this.binding.name, peer: secure.remoteAddress, reason: String(reason) }, 'tunnel TLS handshake refused');
      secure.destroy();
    });
    this.template = { certificates, handshakeMs, server };
    return server;
  }

  async close(graceMs: number): Promise<void> {
    this.closing = true;
    for (const s of this.sessions) s.close('the gateway is stopping');
    void graceMs;
  }
}

/** The default exposure: no public ports, no HTTP hosts. */
const refuseExposure: Exposure = {
  expose(r: Registration): string | null {
    if (r.service.remotePort !== undefined) return 'this gateway opens no remote ports yet';
    if (r.service.hosts.length > 0) return 'this gateway takes no hosts yet';
    return null;
  },
  withdraw(): void {},
};
