import type net from 'node:net';
import tls from 'node:tls';
import type { RelayListenerConfig } from '../config/schemas/tunnel.js';
import type { Logger } from '../observability/logger.js';
import { formatPeer } from '../runtime/connection-registry.js';
import type { AnyListenerRuntime, L4ListenerRuntime, ListenerTls } from '../snapshot/snapshot.js';
import type { Registration } from '../tunnel/hub.js';
import { RELAY_ALPN, TUNNEL_ALPN } from '../tunnel/protocol.js';
import { serveRelayClient, type RelayEnd, type RelayOutcome } from '../tunnel/relay/pair.js';
import { RelayClientPolicy, RelayServicePolicy } from '../tunnel/relay/policy.js';
import { TunnelSession, type AgentAuthority } from '../tunnel/session.js';
import type { Binding, StreamListener } from './listener.js';
import { PendingHandshakes } from './pending-handshakes.js';

/**
 * `protocol: relay` (docs/relay.md): one TLS port, two roles chosen by
 * ALPN. A peer offering `portico-tunnel/1` is a SERVICE: the tunnel
 * transport (a TunnelSession, as for agents) whose id is the one code it
 * registers, authenticated against `services:`; its registration joins the
 * gateway's TunnelHub, the namespace tunnel agents share. Any other peer
 * (no ALPN, or `portico-relay/1`) is a CLIENT: one request line, one
 * status line, then its connection is spliced to a stream opened through
 * a registration of the code it named (serveRelayClient).
 *
 * Every client connection is logged once (an access-log line of type
 * `connection`, or a logger line when the access log is off) and counted
 * by outcome; relayed pairs are listed in the connection registry as
 * `relay-pair`. A reload applies new policies to new connections.
 */
export class RelayListener implements StreamListener {
  readonly kind = 'relay' as const;
  private runtime!: L4ListenerRuntime<RelayListenerConfig>;
  private services!: RelayServicePolicy;
  private clientPolicy!: RelayClientPolicy;
  private template: { certificates: ListenerTls; handshakeMs: number; server: tls.Server } | null = null;
  private readonly sessions = new Set<TunnelSession>();
  /** Client connections from TLS handshake to close. */
  private readonly clients = new Set<tls.TLSSocket>();
  /** Accepted sockets whose role is not settled yet (TLS handshake, service authentication, client request line). */
  private readonly pending = new PendingHandshakes();
  /** Client connections ended, by outcome; service connections refused; connections refused before TLS. */
  private readonly ended = new Map<RelayOutcome, number>();
  private serviceRefusals = 0;
  private tlsRefusals = 0;
  /** Round-robin position per code. */
  private readonly turns = new Map<string, number>();
  private readonly unwatch: () => void;
  private closing = false;

  constructor(
    private readonly binding: Binding,
    runtime: AnyListenerRuntime,
    private readonly logger: Logger,
  ) {
    this.update(runtime);
    // A code nobody registers any more needs no round-robin position.
    this.unwatch = binding.tunnels.watch((code) => {
      if (binding.tunnels.registrations(code).length === 0) this.turns.delete(code);
    });
  }

  update(runtime: AnyListenerRuntime): void {
    if (runtime.kind !== 'l4' || runtime.config.protocol !== 'relay') throw new Error(`listener ${runtime.name} is not a relay listener`);
    this.runtime = runtime as L4ListenerRuntime<RelayListenerConfig>;
    this.services = new RelayServicePolicy(this.runtime.config);
    this.clientPolicy = new RelayClientPolicy(this.runtime.config);
  }

  /** The connected services (authenticated or not yet): GET /agents lists them beside tunnel agents. */
  agents(): readonly TunnelSession[] {
    return [...this.sessions];
  }

  get connections(): number {
    return this.sessions.size + this.clients.size;
  }

  describe(): Record<string, unknown> {
    return {
      services: [...this.sessions].filter((s) => s.ready).length,
      clients: this.clients.size,
      pending: this.pending.size,
      ended: Object.fromEntries(this.ended),
      refused: {
        ...Object.fromEntries([...this.ended].filter(([k]) => k !== 'ok' && k !== 'client-closed')),
        'service-auth': this.serviceRefusals,
        'max-pending': this.pending.refused,
        tls: this.tlsRefusals,
      },
    };
  }

  accept(socket: net.Socket): void {
    const server = this.closing ? null : this.templateFor(this.runtime);
    if (server === null || !this.pending.admit(socket, this.runtime.config.limits.maxPending)) return void socket.destroy();
    socket.on('error', () => undefined);
    server.emit('connection', socket);
  }

  private secured(secure: tls.TLSSocket): void {
    if (this.closing) return void secure.destroy();
    secure.on('error', () => undefined);
    if (secure.alpnProtocol === TUNNEL_ALPN) this.service(secure);
    else this.client(secure);
  }

  /** A service: the tunnel transport, its id being its code. */
  private service(secure: tls.TLSSocket): void {
    // The template keeps client sockets half-open for the splice; HTTP/2 wants the whole connection to end with the peer's.
    secure.allowHalfOpen = false;
    const config = this.runtime.config;
    const policy = this.services;
    const authority: AgentAuthority = {
      authenticate: (id, nonce, proof) => {
        const grant = policy.authenticate(id, nonce, proof);
        if (grant === null) this.serviceRefusals++;
        return grant;
      },
    };
    const session = new TunnelSession(secure, {
      owner: this.binding,
      authority,
      hub: this.binding.tunnels,
      exposure: null,
      settings: { heartbeat: config.heartbeat, window: config.window, limits: { ...config.limits, maxServices: 1 } },
      logger: this.logger,
      registry: this.binding.registry,
      onReady: () => this.pending.settle(secure),
      onClose: (s) => {
        this.sessions.delete(s);
        this.pending.settle(secure);
      },
    });
    this.sessions.add(session);
  }

  /** A client: request line, status line, splice. */
  private client(secure: tls.TLSSocket): void {
    const runtime = this.runtime;
    const config = runtime.config;
    const startedAt = process.hrtime.bigint();
    const since = this.pending.acceptedAt(secure);
    const peer = { address: secure.remoteAddress, port: secure.remotePort };
    this.clients.add(secure);
    secure.once('close', () => this.clients.delete(secure));
    let settled = false;
    const settle = () => {
      if (!settled) this.pending.settle(secure);
      settled = true;
    };
    serveRelayClient(secure, {
      owner: this.binding,
      registry: this.binding.registry,
      hub: this.binding.tunnels,
      clients: this.clientPolicy,
      handshakeMs: config.limits.handshakeTimeout - (Date.now() - since),
      openMs: config.limits.handshakeTimeout,
      idleMs: config.idleTimeout,
      buffer: config.buffer,
      order: (code, up) => this.order(code, up),
      lineRead: settle,
      end: (r) => {
        settle();
        this.log(runtime, peer, startedAt, r);
      },
    });
  }

  /** The up registrations of `code`, starting at the next in turn. */
  private order(code: string, up: readonly Registration[]): Registration[] {
    const turn = this.turns.get(code) ?? 0;
    this.turns.set(code, (turn + 1) % 1_000_000_007);
    const start = turn % up.length;
    return [...up.slice(start), ...up.slice(0, start)];
  }

  /** One line per client connection, when it ends (or is refused). */
  private log(runtime: L4ListenerRuntime<RelayListenerConfig>, peer: { address?: string; port?: number }, startedAt: bigint, r: RelayEnd): void {
    this.ended.set(r.outcome, (this.ended.get(r.outcome) ?? 0) + 1);
    // The service code is a label only for a relayed pair (a registered code); a refused client's code is its own choice.
    this.binding.metrics.record(runtime.name, r.outcome === 'ok' ? r.service : undefined, r.outcome, r.bytesUp, r.bytesDown);
    const durationMs = Math.round(Number(process.hrtime.bigint() - startedAt) / 1e3) / 1e3;
    const client = formatPeer(peer.address, peer.port);
    if (runtime.accessLog !== null) {
      runtime.accessLog.writeConnection({
        listener: runtime.name,
        protocol: 'relay',
        client: peer.address ?? 'unknown',
        clientPort: peer.port,
        durationMs,
        outcome: r.outcome,
        status: r.status,
        service: r.service,
        target: r.target,
        bytesUp: r.bytesUp,
        bytesDown: r.bytesDown,
        closedBy: r.closedBy,
        error: r.error,
      });
      return;
    }
    const fields = { listener: runtime.name, client, outcome: r.outcome, status: r.status, service: r.service, target: r.target, bytesUp: r.bytesUp, bytesDown: r.bytesDown, error: r.error };
    if (r.outcome === 'unavailable') this.logger.warn(fields, 'relay client refused: the service is unavailable');
    else if (r.outcome === 'ok') this.logger.debug(fields, 'relay pair ended');
    else this.logger.info(fields, 'relay client refused');
  }

  private templateFor(runtime: L4ListenerRuntime<RelayListenerConfig>): tls.Server | null {
    const certificates = runtime.certificates;
    if (certificates === null) return null;
    const handshakeMs = runtime.config.limits.handshakeTimeout;
    if (this.template !== null && this.template.certificates === certificates && this.template.handshakeMs === handshakeMs) return this.template.server;
    // A peer offering ALPN, but neither of these, is refused in the handshake (no_application_protocol, RFC 7301 §3.2).
    const server = tls.createServer({ ...certificates.serverOptions(), ALPNProtocols: [TUNNEL_ALPN, RELAY_ALPN], handshakeTimeout: handshakeMs, allowHalfOpen: true });
    server.on('secureConnection', (secure: tls.TLSSocket) => this.secured(secure));
    server.on('tlsClientError', (err: Error & { code?: string }, secure: tls.TLSSocket) => {
      this.tlsRefusals++;
      const reason = secure.authorizationError ?? err.code ?? err.message;
      this.logger.info({ listener: this.binding.name, peer: secure.remoteAddress, reason: String(reason) }, 'relay TLS handshake refused');
      secure.destroy();
    });
    this.template = { certificates, handshakeMs, server };
    return server;
  }

  async close(graceMs: number): Promise<void> {
    this.closing = true;
    this.unwatch();
    this.pending.destroyAll();
    for (const s of this.sessions) s.close('the gateway is stopping');
    const deadline = Date.now() + graceMs;
    while (this.clients.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const c of this.clients) c.destroy();
  }
}
