import type net from 'node:net';
import { GatewayError } from '../errors.js';
import type { Binding, ListenerKind, StreamListener } from './listener.js';
import type { Logger } from '../observability/logger.js';
import type { RefusalReason } from '../l4/admission.js';
import { ListenerConnections } from '../l4/connections.js';
import { L4Context } from '../l4/context.js';
import { outcomeOf, refusalError, refusalReasonOf } from '../l4/outcome.js';
import type { AnyListenerRuntime, L4ListenerRuntime } from '../snapshot/snapshot.js';
import { readProxyHeader, ProxyProtocolError } from '../l4/proxy-protocol/read.js';
import { unmapV4, type ProxiedAddresses } from '../l4/proxy-protocol/encode.js';
import type { StreamListenerConfig } from '../config/schemas/l4.js';
import { listSocket } from '../runtime/connection-registry.js';
import { StreamConnection, type StreamKind } from '../l4/stream-connection.js';

/** An admitted connection, as the protocols' `serve` gets it. */
export type Accepted<C extends StreamListenerConfig> = L4Context<C>;

/** How a forward-proxy request ended, for its access-log line (the other protocols log their L4Context). */
export interface ConnectionEnd {
  client: ProxiedAddresses;
  startedAt: bigint;
  /** `ok` or the answered outcome (forward-proxy codes). */
  outcome: string;
  upstream?: string;
  target?: string;
  bytesUp?: number;
  bytesDown?: number;
  closedBy?: string;
  error?: string;
  /** Protocol-specific fields (method, status…). */
  extra?: Record<string, string | number | boolean>;
}

/**
 * What every TCP-based L4 listener does with a new connection, before its
 * own protocol: creates its L4Context (pinning the listener runtime), TCP
 * keep-alive; the PROXY protocol header (`accept`, `require`), believed
 * only from `trustedProxies`; the connection middlewares and limits on the
 * client's address. A refused connection is reset at once. The subclass's
 * `serve` gets the rest, and ends every connection through `finish`: one
 * access-log line (or, without an access log, a logger line for a failed
 * one) and one count in `ended`, per connection, whatever the path.
 */
export abstract class L4StreamListener<C extends StreamListenerConfig> implements StreamListener {
  abstract readonly kind: ListenerKind;
  protected runtime: L4ListenerRuntime<C>;
  protected readonly open = new ListenerConnections();
  /** Connections still sending their PROXY header or being admitted (not yet in the registry). */
  private readonly pending = new Set<net.Socket>();
  /** Connections ended, by GatewayError code (`ok`: relayed and ended normally). Admin status. */
  private readonly ended = new Map<string, number>();
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

  /** True once `close` was called: connections still being served end as GATEWAY_CLOSING. */
  get isClosing(): boolean {
    return this.closing;
  }

  get connections(): number {
    return this.open.size + this.pending.size;
  }

  describe(): Record<string, unknown> {
    return { refused: Object.fromEntries(this.open.refused), ended: Object.fromEntries(this.ended) };
  }

  accept(socket: net.Socket): void {
    const startedAt = process.hrtime.bigint();
    // Errors are handled by whoever owns the socket next; this keeps an early reset from throwing.
    socket.on('error', () => undefined);
    const ctx = new L4Context(this.runtime, socket, new SocketAddresses(socket), startedAt);
    if (this.closing) return this.refuse(ctx, new GatewayError('GATEWAY_CLOSING'));
    const config = ctx.runtime.config;
    // TCP_NODELAY is already set: the gateway's server is created with noDelay.
    if (config.tcpKeepAlive > 0) socket.setKeepAlive(true, config.tcpKeepAlive);
    const trusted = ctx.runtime.trustedProxies === null || ctx.runtime.trustedProxies.has(ctx.client.sourceAddress);
    if (config.proxyProtocol === 'none' || !trusted) {
      if (config.proxyProtocol === 'require') return this.refuse(ctx, refusalError('proxy-protocol', 'peer not in trustedProxies'));
      this.admit(ctx);
      return;
    }
    this.pending.add(socket);
    socket.once('close', () => this.pending.delete(socket));
    readProxyHeader(socket, { required: config.proxyProtocol === 'require', timeoutMs: config.timeouts.handshake }).then(
      (r) => {
        if (r.addresses != null) ctx.client = r.addresses;
        ctx.head = r.rest;
        this.admit(ctx);
      },
      (err: unknown) => {
        this.pending.delete(socket);
        if (this.closing) return this.refuse(ctx, new GatewayError('GATEWAY_CLOSING'));
        if (err instanceof ProxyProtocolError && err.reason === 'closed') return this.refuse(ctx, new GatewayError('DOWNSTREAM_ABORTED', err.message));
        const detail = err instanceof ProxyProtocolError ? `${err.reason}: ${err.message}` : String(err);
        this.refuse(ctx, refusalError('proxy-protocol', detail));
      },
    );
  }

  /** Phase 3: the connection middlewares, then the limits (registering the connection). */
  private admit(ctx: L4Context<C>): void {
    const ip = ctx.client.sourceAddress;
    const verdict = ctx.runtime.admission.check(ip);
    const go = (reason: RefusalReason | null) => {
      this.pending.delete(ctx.socket);
      if (this.closing) return this.refuse(ctx, new GatewayError('GATEWAY_CLOSING'));
      // The client left while its header or admission was pending: nothing more to do but log it.
      if (ctx.socket.destroyed) return this.refuse(ctx, new GatewayError('DOWNSTREAM_ABORTED', 'the client closed before it was admitted'));
      const refused = reason ?? this.open.add(ctx.socket, ip, ctx.runtime.config.limits);
      if (refused !== null) return this.refuse(ctx, refusalError(refused));
      listSocket(this.binding.registry, ctx.socket, new StreamConnection(this.kind as StreamKind, this.binding, ctx.socket, ctx.client));
      this.serve(ctx);
    };
    if (verdict instanceof Promise) {
      // Kept in `pending` while a shared store answers, so a close() destroys it and it is still counted.
      this.pending.add(ctx.socket);
      // As for UDP listeners, a failing shared store admits (fail open) rather than refusing everyone.
      verdict.then(go, () => go(null));
    } else go(verdict);
  }

  /** Resets a connection refused before it was served, and ends it (log line, count; refusals counted by reason too). */
  private refuse(ctx: L4Context<C>, err: GatewayError): void {
    const reason = refusalReasonOf(err);
    if (reason !== undefined) this.open.refuse(reason);
    const socket = ctx.socket;
    if (socket.resetAndDestroy !== undefined && !socket.destroyed) socket.resetAndDestroy();
    else socket.destroy();
    this.logger.debug({ listener: this.binding.name, client: ctx.client.sourceAddress, code: err.code, detail: err.message }, 'connection refused');
    this.finish(ctx, err);
  }

  /** Handles an admitted connection: the listener's own protocol. It must end in `finish`. */
  protected abstract serve(ctx: L4Context<C>): void;

  /**
   * The log phase, exactly once per connection (later calls are ignored):
   * records `err` (null: ended normally), counts the connection under its
   * code in `ended` and in the metrics, and writes its access-log line: `outcome` (outcomeOf,
   * the values the log always had) and `code` (the GatewayError code). A
   * listener without an access log reports failures to the logger
   * instead: upstream and internal ones at warn, the client's own at debug.
   */
  finish(ctx: L4Context<C>, err: GatewayError | null = ctx.error): void {
    if (ctx.logged) return;
    ctx.logged = true;
    ctx.error = err;
    const code = err === null ? 'ok' : err.code;
    this.ended.set(code, (this.ended.get(code) ?? 0) + 1);
    const runtime = ctx.runtime;
    this.binding.metrics.record(runtime.name, ctx.upstream?.name, code, ctx.bytesUp, ctx.bytesDown);
    const error = ctx.detail ?? err?.message;
    if (runtime.accessLog === null) {
      if (err === null) return;
      const fields = { listener: runtime.name, client: ctx.client.sourceAddress, code, source: err.source, upstream: ctx.upstream?.name, target: ctx.target?.address, err: error };
      if (err.source === 'downstream') this.logger.debug(fields, 'connection ended');
      else this.logger.warn(fields, 'connection failed');
      return;
    }
    runtime.accessLog.writeConnection({
      listener: runtime.name,
      protocol: runtime.config.protocol,
      client: ctx.client.sourceAddress,
      clientPort: ctx.client.sourcePort,
      durationMs: Math.round(Number(process.hrtime.bigint() - ctx.startedAt) / 1e3) / 1e3,
      outcome: outcomeOf(err, runtime.config.protocol),
      ...(err !== null ? { code: err.code } : {}),
      upstream: ctx.upstream?.name,
      target: ctx.target?.address,
      bytesUp: ctx.bytesUp,
      bytesDown: ctx.bytesDown,
      closedBy: ctx.closedBy,
      error,
      ...ctx.extra,
    });
  }

  /** Writes a forward-proxy request's access-log line, if the listener logs. */
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
    return this.open.close(graceMs);
  }
}


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
