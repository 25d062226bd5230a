import type net from 'node:net';
import tls from 'node:tls';
import type { ListenerTls } from '../../listeners/listener-runtime.js';
import type { L4ListenerRuntime } from '../listener-runtime.js';
import type { TlsListenerConfig } from '../schema.js';
import { connectAndSplice } from '../tcp/frontend.js';
import { L4StreamFrontend, type Accepted } from '../stream-frontend.js';
import type { Upstream } from '../../upstream/upstream.js';
import { ClientHelloError, peekClientHello } from './peek.js';
import { SniRouter } from './sni-router.js';
import { tagSocket } from '../../runtime/connection-registry.js';

/** The records carrying a ClientHello may take this many bytes at most (passthrough). */
export const MAX_CLIENT_HELLO_BYTES = 16 * 1024;

/**
 * `protocol: tls`. Two modes, both picking the upstream by SNI with the
 * listener's `routes` and `upstream` (SniRouter) and then dialling and
 * splicing as `tcp` does (connectAndSplice: retries, PROXY header and TLS
 * to the target per the upstream's settings):
 *
 * - termination (default): TLS ends here, with the listener's
 *   certificates chosen by SNI and its client-certificate settings (the
 *   compiled ServerCertificates, as for https); the upstream gets the
 *   plaintext. The name routed on is the SNI the handshake accepted. A
 *   failed handshake (no certificate for the name, client certificate
 *   refused, `timeouts.handshake` passed) is closed and logged with
 *   outcome TLS_HANDSHAKE_FAILED.
 * - `passthrough: true`: TLS is not terminated. The ClientHello is read
 *   (peekClientHello: at most 16 KiB, within `timeouts.handshake`), and
 *   every byte the client sends is relayed unchanged, the peeked ones
 *   first. Bytes that are not a ClientHello are closed without dialling
 *   (BAD_CLIENT_HELLO), as is a hello that is late (HANDSHAKE_TIMEOUT) or a
 *   client that leaves first (CLIENT_CLOSED).
 *
 * In both modes a name no route matches, with no default `upstream`, is
 * closed and logged as NO_ROUTE; access-log lines carry `sni` when the
 * client sent one.
 */
export class TlsFrontend extends L4StreamFrontend<TlsListenerConfig> {
  readonly kind = 'tls' as const;
  /** One router per compiled listener (a reload brings a new runtime). */
  private readonly routers = new WeakMap<L4ListenerRuntime<TlsListenerConfig>, SniRouter<string>>();
  /** The node:tls server template (never listening) of the current certificates; rebuilt when they change. */
  private template: { certificates: ListenerTls; handshakeMs: number; server: tls.Server } | null = null;
  /** Connections in their TLS handshake (termination), by accepted socket. */
  private readonly handshaking = new Map<net.Socket, Accepted<TlsListenerConfig>>();

  protected serve(a: Accepted<TlsListenerConfig>): void {
    if (a.runtime.config.passthrough) this.passthrough(a);
    else this.terminate(a);
  }

  private passthrough(a: Accepted<TlsListenerConfig>): void {
    const config = a.runtime.config;
    peekClientHello(a.socket, a.head, { timeoutMs: config.timeouts.handshake, maxBytes: MAX_CLIENT_HELLO_BYTES }).then(
      ({ hello, bytes }) => {
        if (a.socket.destroyed) return;
        this.route(a, hello.serverName, { ...a, head: bytes });
      },
      (err: unknown) => {
        const e = err instanceof ClientHelloError ? err : new ClientHelloError('malformed', String(err));
        a.socket.destroy();
        const outcome = e.reason === 'timeout' ? 'HANDSHAKE_TIMEOUT' : e.reason === 'closed' ? 'CLIENT_CLOSED' : 'BAD_CLIENT_HELLO';
        this.logger.debug({ listener: this.binding.name, client: a.client.sourceAddress, reason: e.reason, detail: e.message }, 'ClientHello refused');
        this.logConnection(a.runtime, { client: a.client, startedAt: a.startedAt, outcome, error: `${e.reason}: ${e.message}` });
      },
    );
  }

  /**
   * Hands the socket to the TLS template. Every handshake ends in exactly
   * one of the template's events: 'secureConnection' (then `secured`), or
   * 'tlsClientError' (refused, timed out, or the client left first: node:tls
   * reports a close before the handshake completed as a hang-up).
   */
  private terminate(a: Accepted<TlsListenerConfig>): void {
    const server = this.templateFor(a.runtime);
    if (server === null) {
      a.socket.destroy();
      return;
    }
    this.handshaking.set(a.socket, a);
    // A safety net: a socket closed without either event must not stay in the map.
    a.socket.once('close', () => setImmediate(() => this.handshakeFailed(a.socket, 'closed during the handshake')));
    // node:tls feeds a TLSSocket the bytes already buffered in the socket it wraps, so the head goes back there.
    if (a.head.length > 0) a.socket.unshift(a.head);
    server.emit('connection', a.socket);
  }

  /** The handshake is done: route by the accepted SNI and splice the plaintext. */
  private secured(secure: tls.TLSSocket): void {
    const raw = wrapped(secure);
    const a = raw === undefined ? undefined : this.handshaking.get(raw);
    if (a === undefined) {
      secure.destroy();
      return;
    }
    this.handshaking.delete(raw!);
    tagSocket(secure, raw!);
    const sni = typeof secure.servername === 'string' && secure.servername !== '' ? secure.servername : null;
    this.route(a, sni, { ...a, socket: secure, head: Buffer.alloc(0) });
  }

  /** Logs a failed handshake once (TLS_HANDSHAKE_FAILED) and forgets the connection. */
  private handshakeFailed(raw: net.Socket | undefined, reason: string): void {
    const a = raw === undefined ? undefined : this.handshaking.get(raw);
    if (a === undefined) return;
    this.handshaking.delete(raw!);
    raw!.destroy();
    this.logger.debug({ listener: this.binding.name, client: a.client.sourceAddress, reason }, 'TLS handshake refused');
    this.logConnection(a.runtime, { client: a.client, startedAt: a.startedAt, outcome: 'TLS_HANDSHAKE_FAILED', error: reason });
  }

  /** Dials the upstream that `sni` routes to, with `b` as the connection (socket and head) to splice. */
  private route(a: Accepted<TlsListenerConfig>, sni: string | null, b: Accepted<TlsListenerConfig>): void {
    const extra: Record<string, string> = sni === null ? {} : { sni };
    const name = this.routerFor(a.runtime).pick(sni);
    const upstream: Upstream | undefined = name === undefined ? undefined : this.binding.current().upstreams.get(name);
    if (upstream === undefined) {
      b.socket.destroy();
      a.socket.destroy();
      const error = name === undefined ? (sni === null ? 'no SNI and no default upstream' : 'no route for this SNI and no default upstream') : `no upstream named ${name}`;
      this.logConnection(a.runtime, { client: a.client, startedAt: a.startedAt, outcome: 'NO_ROUTE', error, extra });
      return;
    }
    connectAndSplice(this, b, upstream, extra);
  }

  private routerFor(runtime: L4ListenerRuntime<TlsListenerConfig>): SniRouter<string> {
    let router = this.routers.get(runtime);
    if (router === undefined) {
      router = new SniRouter(
        runtime.config.routes.map((r) => ({ sni: r.sni, value: r.upstream })),
        runtime.config.upstream,
      );
      this.routers.set(runtime, router);
    }
    return router;
  }

  private templateFor(runtime: L4ListenerRuntime<TlsListenerConfig>): tls.Server | null {
    const certificates = runtime.certificates;
    if (certificates === null) return null;
    const handshakeMs = runtime.config.timeouts.handshake;
    if (this.template !== null && this.template.certificates === certificates && this.template.handshakeMs === handshakeMs) return this.template.server;
    // Session tickets are keyed per template: after a reload clients fall back to a full handshake.
    const server = tls.createServer({ ...certificates.serverOptions(), handshakeTimeout: handshakeMs, allowHalfOpen: true });
    server.on('secureConnection', (secure: tls.TLSSocket) => this.secured(secure));
    server.on('tlsClientError', (err: Error & { code?: string }, secure: tls.TLSSocket) => {
      // A refused client certificate surfaces as a hang-up; the socket knows the real reason (e.g. CERT_HAS_EXPIRED).
      const reason = String(secure.authorizationError ?? err.code ?? err.message);
      secure.destroy();
      this.handshakeFailed(wrapped(secure), reason);
    });
    this.template = { certificates, handshakeMs, server };
    return server;
  }

  override close(graceMs: number): Promise<void> {
    this.template = null;
    return super.close(graceMs);
  }
}

/**
 * The accepted socket a server-side TLSSocket wraps. node:tls keeps it as
 * `_parent` (lib/_tls_wrap.js); nothing public links a template server's
 * events back to the connection that was handed over.
 */
function wrapped(secure: tls.TLSSocket): net.Socket | undefined {
  return (secure as unknown as { _parent?: net.Socket | null })._parent ?? undefined;
}
