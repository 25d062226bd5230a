import type net from 'node:net';
import tls from 'node:tls';
import { GatewayError } from '../errors.js';
import type { ListenerTls, L4ListenerRuntime } from '../snapshot/snapshot.js';
import type { TlsListenerConfig } from '../config/schemas/l4.js';
import { connectAndSplice } from './tcp.js';
import type { L4Context } from '../l4/context.js';
import { L4StreamListener } from './stream.js';
import type { Upstream } from '../upstream/upstream.js';
import { ClientHelloError, peekClientHello } from '../l4/tls/peek.js';
import { SniRouter } from '../l4/tls/sni-router.js';
import { tagSocket } from '../runtime/connection-registry.js';

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
export class TlsListener extends L4StreamListener<TlsListenerConfig> {
  readonly kind = 'tls' as const;
  /** One router per compiled listener (a reload brings a new runtime). */
  private readonly routers = new WeakMap<L4ListenerRuntime<TlsListenerConfig>, SniRouter<string>>();
  /** The node:tls server template (never listening) of the current certificates; rebuilt when they change. */
  private template: { certificates: ListenerTls; handshakeMs: number; server: tls.Server } | null = null;
  /** Connections in their TLS handshake (termination), by accepted socket. */
  private readonly handshaking = new Map<net.Socket, L4Context<TlsListenerConfig>>();

  protected serve(ctx: L4Context<TlsListenerConfig>): void {
    if (ctx.runtime.config.passthrough) this.passthrough(ctx);
    else this.terminate(ctx);
  }

  private passthrough(ctx: L4Context<TlsListenerConfig>): void {
    const config = ctx.runtime.config;
    peekClientHello(ctx.socket, ctx.head, { timeoutMs: config.timeouts.handshake, maxBytes: MAX_CLIENT_HELLO_BYTES }).then(
      ({ hello, bytes }) => {
        if (ctx.socket.destroyed) return this.finish(ctx, new GatewayError('DOWNSTREAM_ABORTED', 'the client closed after its ClientHello'));
        ctx.head = bytes;
        this.route(ctx, hello.serverName, ctx.socket);
      },
      (err: unknown) => {
        const e = err instanceof ClientHelloError ? err : new ClientHelloError('malformed', String(err));
        ctx.socket.destroy();
        const code = e.reason === 'timeout' ? 'HANDSHAKE_TIMEOUT' : e.reason === 'closed' ? 'DOWNSTREAM_ABORTED' : 'BAD_CLIENT_HELLO';
        this.logger.debug({ listener: this.binding.name, client: ctx.client.sourceAddress, reason: e.reason, detail: e.message }, 'ClientHello refused');
        this.finish(ctx, new GatewayError(code, `${e.reason}: ${e.message}`));
      },
    );
  }

  /**
   * Hands the socket to the TLS template. Every handshake ends in exactly
   * one of the template's events: 'secureConnection' (then `secured`), or
   * 'tlsClientError' (refused, timed out, or the client left first: node:tls
   * reports a close before the handshake completed as a hang-up).
   */
  private terminate(ctx: L4Context<TlsListenerConfig>): void {
    const server = this.templateFor(ctx.runtime);
    if (server === null) {
      ctx.socket.destroy();
      this.finish(ctx, new GatewayError('INTERNAL', 'the listener has no certificates to terminate TLS with'));
      return;
    }
    const raw = ctx.socket;
    this.handshaking.set(raw, ctx);
    // A safety net: a socket closed without either event must not stay in the map.
    raw.once('close', () => setImmediate(() => this.handshakeFailed(raw, 'closed during the handshake')));
    // node:tls feeds a TLSSocket the bytes already buffered in the socket it wraps, so the head goes back there.
    if (ctx.head.length > 0) raw.unshift(ctx.head);
    ctx.head = Buffer.alloc(0);
    server.emit('connection', raw);
  }

  /** The handshake is done: route by the accepted SNI and splice the plaintext. */
  private secured(secure: tls.TLSSocket): void {
    const raw = wrapped(secure);
    const ctx = raw === undefined ? undefined : this.handshaking.get(raw);
    if (ctx === undefined) {
      // Not handed over by `terminate` (cannot happen: the template never listens); nothing to log it under.
      secure.destroy();
      return;
    }
    this.handshaking.delete(raw!);
    tagSocket(secure, raw!);
    const sni = typeof secure.servername === 'string' && secure.servername !== '' ? secure.servername : null;
    this.route(ctx, sni, secure);
  }

  /** Logs a failed handshake once (TLS_HANDSHAKE_FAILED) and forgets the connection. */
  private handshakeFailed(raw: net.Socket | undefined, reason: string): void {
    const ctx = raw === undefined ? undefined : this.handshaking.get(raw);
    if (ctx === undefined) return;
    this.handshaking.delete(raw!);
    raw!.destroy();
    this.logger.debug({ listener: this.binding.name, client: ctx.client.sourceAddress, reason }, 'TLS handshake refused');
    this.finish(ctx, new GatewayError('DOWNSTREAM_TLS_ERROR', reason));
  }

  /**
   * Dials the upstream that `sni` routes to (in the connection's pinned
   * snapshot) and splices `socket` (the accepted one, or the TLS socket
   * that terminates it) with it.
   */
  private route(ctx: L4Context<TlsListenerConfig>, sni: string | null, socket: net.Socket): void {
    if (sni !== null) ctx.extra.sni = sni;
    const raw = ctx.socket;
    ctx.socket = socket;
    const name = this.routerFor(ctx.runtime).pick(sni);
    const upstream: Upstream | undefined = name === undefined ? undefined : ctx.upstreamNamed(name);
    if (upstream === undefined) {
      socket.destroy();
      raw.destroy();
      const error = name === undefined ? (sni === null ? 'no SNI and no default upstream' : 'no route for this SNI and no default upstream') : `no upstream named ${name}`;
      this.finish(ctx, new GatewayError('ROUTE_NOT_FOUND', error));
      return;
    }
    connectAndSplice(this, ctx, upstream);
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
export function wrapped(secure: tls.TLSSocket): net.Socket | undefined {
  return (secure as unknown as { _parent?: net.Socket | null })._parent ?? undefined;
}
