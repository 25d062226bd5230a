import type net from 'node:net';
import tls from 'node:tls';
import type { TunnelListenerConfig } from '../config/schemas/tunnel.js';
import type { Logger } from '../observability/logger.js';
import type { AnyListenerRuntime, L4ListenerRuntime, ListenerTls } from '../snapshot/snapshot.js';
import { TunnelPolicy } from '../tunnel/policy.js';
import { TUNNEL_ALPN } from '../tunnel/protocol.js';
import { TunnelSession, type Exposure } from '../tunnel/session.js';
import { TunnelExposure } from '../tunnel/exposure.js';
import type { Binding, StreamListener } from './listener.js';
import { PendingHandshakes } from './pending-handshakes.js';

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
  private policy: TunnelPolicy | undefined;
  private template: { certificates: ListenerTls; handshakeMs: number; server: tls.Server } | null = null;
  private readonly sessions = new Set<TunnelSession>();
  /** Sockets accepted and not yet authenticated (TLS or control-stream handshake). */
  private readonly pending = new PendingHandshakes();
  private closing = false;
  /** Public ports and HTTP hosts agents ask for (tunnel/exposure.ts). */
  exposure: Exposure;

  constructor(
    private readonly binding: Binding,
    runtime: AnyListenerRuntime,
    private readonly logger: Logger,
  ) {
    this.update(runtime);
    this.exposure = new TunnelExposure(binding, () => this.runtime.config, logger);
  }

  update(runtime: AnyListenerRuntime): void {
    if (runtime.kind !== 'l4' || runtime.config.protocol !== 'tunnel') throw new Error(`listener ${runtime.name} is not a tunnel listener`);
    const previous = this.policy;
    this.runtime = runtime as L4ListenerRuntime<TunnelListenerConfig>;
    this.policy = new TunnelPolicy(this.runtime.config);
    if (previous === undefined) return;
    // An agent whose entry changed (removed, new token, other codes or ports) reconnects under the new one; the others stay.
    for (const session of this.sessions) {
      if (session.ready && previous.fingerprint(session.agentId) !== this.policy.fingerprint(session.agentId)) {
        session.close('its entry in the config changed (removed, or new credentials or permissions)');
      }
    }
  }

  get connections(): number {
    return this.sessions.size;
  }

  /** The connected agents (authenticated or not yet). */
  agents(): readonly TunnelSession[] {
    return [...this.sessions];
  }

  describe(): Record<string, unknown> {
    return { agents: [...this.sessions].filter((s) => s.ready).length, pending: this.pending.size, refusedPending: this.pending.refused };
  }

  accept(socket: net.Socket): void {
    const server = this.closing ? null : this.templateFor(this.runtime);
    if (server === null || !this.pending.admit(socket, this.runtime.config.limits.maxPending)) return void socket.destroy();
    socket.on('error', () => undefined);
    // A tunnel connection is never half-open (the gateway's sockets allow it for HTTP and L4): without this, a peer
    // that sends FIN during the TLS handshake would hold its pending slot until limits.handshakeTimeout.
    socket.allowHalfOpen = false;
    server.emit('connection', socket);
  }

  private secured(secure: tls.TLSSocket): void {
    const runtime = this.runtime;
    const config = runtime.config;
    if (this.closing) return void secure.destroy();
    secure.on('error', () => undefined);
    const session = new TunnelSession(secure, {
      owner: this.binding,
      authority: this.policy!,
      hub: this.binding.tunnels,
      exposure: this.exposure,
      settings: { heartbeat: config.heartbeat, window: config.window, limits: config.limits },
      logger: this.logger,
      registry: this.binding.registry,
      onReady: () => this.pending.settle(secure),
      onClose: (s, reason) => {
        this.sessions.delete(s);
        this.pending.settle(secure);
        this.binding.metrics.record(this.binding.name, undefined, s.agentId === '' ? 'NOT_AUTHENTICATED' : 'ok', secure.bytesRead, secure.bytesWritten);
        // One line per agent connection, when it ends (the shape of L4 connection lines).
        runtime.accessLog?.writeConnection({
          listener: this.binding.name,
          protocol: 'tunnel',
          client: s.peer,
          outcome: s.agentId === '' ? 'NOT_AUTHENTICATED' : 'ok',
          agent: s.agentId || undefined,
          bytesUp: secure.bytesRead,
          bytesDown: secure.bytesWritten,
          durationMs: Date.now() - s.startedAt,
          streams: s.streamsTotal,
          closedBy: reason,
        });
      },
    });
    this.sessions.add(session);
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
    this.pending.destroyAll();
    for (const s of this.sessions) s.close('the gateway is stopping');
    void graceMs;
  }
}
