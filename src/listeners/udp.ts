import type dgram from 'node:dgram';
import type { Binding, Listener } from './listener.js';
import { GatewayError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Upstream } from '../upstream/upstream.js';
import type { RefusalReason } from '../l4/admission.js';
import type { AnyListenerRuntime, L4ListenerRuntime } from '../snapshot/snapshot.js';
import { outcomeOf, refusalError } from '../l4/outcome.js';
import { unmapV4 } from '../l4/proxy-protocol/encode.js';
import type { UdpListenerConfig } from '../config/schemas/l4.js';
import { OPENING_QUEUE, UdpSession, type SessionEnd, type SessionHooks } from '../l4/udp/session.js';
import { UdpConnection } from '../l4/udp/connection.js';

/**
 * Why a datagram was dropped (admin status `dropped`): a connection
 * middleware's refusal; `max-sessions` (a new client beyond `maxSessions`);
 * `no-target` (the upstream has no target to pick); `queue-full` (more than
 * OPENING_QUEUE datagrams while a session's upstream socket was opening or
 * its admission was being checked); `closing` is never counted (stop).
 */
export type DropReason = RefusalReason | 'max-sessions' | 'no-target' | 'queue-full';

type Runtime = L4ListenerRuntime<UdpListenerConfig>;

/** A refused client address gets at most one log line per this many ms; more addresses than DROP_LOG_KEYS reset the memory. */
const DROP_LOG_MS = 1000;
const DROP_LOG_KEYS = 10_000;

/**
 * `protocol: udp`: the gateway's bound datagram socket, read by this
 * listener. The first datagram from a client address (ip:port) that passes
 * the listener's middlewares and `maxSessions` opens a session (session.ts)
 * with a target picked by the upstream's balancer on the client IP; the
 * client's datagrams go to that target, and the target's replies are sent
 * to the client from the listening socket, so the client sees its replies
 * come from the address it sent to. UDP has no connection to refuse: a
 * refused datagram is dropped and counted, never answered.
 *
 * Lifecycle: the listener is made before the socket is bound and owns it
 * from then on: its 'error' handler stays for the socket's life (a socket
 * error is logged, never thrown), and `close` ends the sessions and closes
 * the socket, bound or not.
 */
export class UdpListener implements Listener {
  readonly kind = 'udp' as const;
  private runtime: L4ListenerRuntime<UdpListenerConfig>;
  private readonly binding: Binding;
  private readonly logger: Logger;
  private readonly socket: dgram.Socket;
  /** Live sessions by client address (`address port`). */
  private readonly sessions = new Map<string, UdpSession>();
  /** The registry entry of each live session. */
  private readonly listed = new Map<UdpSession, UdpConnection>();
  /** New clients whose admission is being checked (a shared state store answers asynchronously), with their datagrams so far. */
  private readonly admitting = new Map<string, Buffer[]>();
  private readonly dropped = new Map<DropReason, number>();
  /** Sessions (and refused new clients) ended, by GatewayError code (`ok`: ended normally). */
  private readonly endings = new Map<string, number>();
  /** When each refused client address was last logged, and its drops since (see `drop`). */
  private readonly dropLog = new Map<string, { at: number; n: number }>();
  /** Sessions ended by an upstream socket error (or no socket could be opened). */
  private upstreamErrors = 0;
  private closing: Promise<void> | null = null;
  private readonly hooks: SessionHooks;
  private readonly onError = (err: Error) => this.logger.warn({ listener: this.binding.name, err: err.message }, 'udp listener socket error');

  constructor(binding: Binding, runtime: L4ListenerRuntime<UdpListenerConfig>, logger: Logger, socket: dgram.Socket) {
    this.binding = binding;
    this.runtime = runtime;
    this.logger = logger;
    this.socket = socket;
    this.hooks = {
      reply: (s, d) => this.reply(s, d),
      ended: (s, end) => this.ended(s, end),
      dropped: (_s, reason) => this.drop(reason),
      idleMs: () => this.runtime.config.idleTimeout,
    };
    socket.on('error', this.onError);
    socket.on('message', (msg, rinfo) => {
      try {
        this.onMessage(msg, rinfo);
      } catch (err) {
        // A bug must not take the process down with one datagram.
        this.logger.error({ listener: this.binding.name, err: (err as Error).message }, 'udp datagram handling failed');
      }
    });
  }

  update(runtime: AnyListenerRuntime): void {
    this.runtime = runtime as L4ListenerRuntime<UdpListenerConfig>;
    this.rehome();
  }

  /** Live sessions. */
  get connections(): number {
    return this.sessions.size;
  }

  describe(): Record<string, unknown> {
    return { sessions: this.sessions.size, dropped: Object.fromEntries(this.dropped), upstreamErrors: this.upstreamErrors, ended: Object.fromEntries(this.endings) };
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closing !== null) return;
    const key = `${rinfo.address} ${rinfo.port}`;
    const session = this.sessions.get(key);
    if (session !== undefined) return session.send(msg);
    const waiting = this.admitting.get(key);
    if (waiting !== undefined) {
      if (waiting.length < OPENING_QUEUE) waiting.push(msg);
      else this.drop('queue-full');
      return;
    }
    const runtime = this.runtime;
    if (this.sessions.size + this.admitting.size >= runtime.config.maxSessions) return this.drop('max-sessions', { runtime, rinfo });
    const ip = unmapV4(rinfo.address);
    const verdict = runtime.admission.check(ip);
    if (!(verdict instanceof Promise)) {
      if (verdict !== null) return this.drop(verdict, { runtime, rinfo });
      return this.start(runtime, key, rinfo, ip, [msg]);
    }
    const queue = [msg];
    this.admitting.set(key, queue);
    // As for TCP listeners, a failing shared store admits (fail open) rather than dropping everyone.
    verdict
      .then(
        (reason) => this.admitted(runtime, key, queue, rinfo, ip, reason),
        () => this.admitted(runtime, key, queue, rinfo, ip, null),
      )
      .catch((err: unknown) => this.logger.error({ listener: this.binding.name, err: (err as Error).message }, 'udp session start failed'));
  }

  private admitted(runtime: Runtime, key: string, queue: Buffer[], rinfo: dgram.RemoteInfo, ip: string, reason: RefusalReason | null): void {
    if (this.admitting.get(key) !== queue) return;
    this.admitting.delete(key);
    if (this.closing !== null) return;
    if (reason !== null) return this.drop(reason, { runtime, rinfo }, queue.length);
    this.start(runtime, key, rinfo, ip, queue);
  }

  /**
   * Opens a session for a new client and hands it the client's datagrams
   * so far. The upstream is the one of `runtime`'s snapshot (the runtime
   * the first datagram arrived under), never another snapshot's.
   */
  private start(runtime: Runtime, key: string, rinfo: dgram.RemoteInfo, ip: string, datagrams: Buffer[]): void {
    const upstream = runtime.upstreams.get(runtime.config.upstream);
    if (upstream === undefined) return this.drop('no-target', { runtime, rinfo, error: new GatewayError('UPSTREAM_NOT_FOUND', `no upstream named ${runtime.config.upstream}`) }, datagrams.length);
    const target = upstream.pickForConnection(ip);
    if (target === undefined) return this.drop('no-target', { runtime, rinfo, upstream: upstream.name, error: new GatewayError('NO_TARGET', `upstream ${upstream.name} has no available target`) }, datagrams.length);
    const session = new UdpSession({ address: rinfo.address, port: rinfo.port, ip }, upstream, target, this.hooks);
    this.sessions.set(key, session);
    const entry = new UdpConnection(this.binding, session);
    this.listed.set(session, entry);
    this.binding.registry.add(entry);
    target.inflight++;
    session.open();
    for (const d of datagrams) session.send(d);
  }

  private reply(s: UdpSession, datagram: Buffer): void {
    if (this.closing !== null) return;
    try {
      this.socket.send(datagram, s.clientPort, s.clientAddress, (err) => {
        if (err) this.logger.debug({ listener: this.binding.name, client: s.clientIp, err: err.message }, 'udp reply not sent');
      });
    } catch (err) {
      this.logger.debug({ listener: this.binding.name, client: s.clientIp, err: (err as Error).message }, 'udp reply not sent');
    }
  }

  private ended(s: UdpSession, end: SessionEnd): void {
    const key = `${s.clientAddress} ${s.clientPort}`;
    if (this.sessions.get(key) === s) this.sessions.delete(key);
    this.listed.get(s)?.unregister();
    this.listed.delete(s);
    s.target.inflight--;
    const err = end.error;
    this.count(err, s.upstream.name, s.bytesUp, s.bytesDown);
    if (err !== null) {
      this.upstreamErrors++;
      s.upstream.passive?.failure(s.target, `udp: ${err.message}`);
    }
    const runtime = this.runtime;
    if (runtime.accessLog === null) {
      if (err !== null) this.logger.warn({ listener: this.binding.name, client: s.clientIp, code: err.code, target: s.target.address, err: err.message }, 'udp session ended by an upstream error');
      return;
    }
    runtime.accessLog.writeConnection({
      listener: runtime.name,
      protocol: 'udp',
      client: s.clientIp,
      clientPort: s.clientPort,
      outcome: outcomeOf(err, 'udp'),
      ...(err !== null ? { code: err.code } : {}),
      upstream: s.upstream.name,
      target: s.target.address,
      bytesUp: s.bytesUp,
      bytesDown: s.bytesDown,
      datagramsUp: s.datagramsUp,
      datagramsDown: s.datagramsDown,
      ...(s.datagramsDropped > 0 ? { datagramsDropped: s.datagramsDropped } : {}),
      durationMs: Math.round(Number(process.hrtime.bigint() - s.startedAt) / 1e3) / 1e3,
      closedBy: end.closedBy,
      ...(err !== null ? { error: err.message } : {}),
    });
  }

  /** Counts a session's end (or a refused client) under its code, in `ended` and in the metrics. */
  private count(err: GatewayError | null, upstream?: string, bytesUp?: number, bytesDown?: number): void {
    const code = err === null ? 'ok' : err.code;
    this.endings.set(code, (this.endings.get(code) ?? 0) + 1);
    this.binding.metrics.record(this.runtime.name, upstream, code, bytesUp, bytesDown);
  }

  /**
   * After a reload: a session stays on its target when the listener's
   * upstream (by its new name) still has a target of that address, moved
   * onto the new snapshot's Target (its `inflight` count follows);
   * otherwise it ends, and the client's next datagram opens a session on
   * the new upstream.
   */
  private rehome(): void {
    const upstream: Upstream | undefined = this.runtime.upstreams.get(this.runtime.config.upstream);
    for (const s of [...this.sessions.values()]) {
      if (s.upstream === upstream) continue;
      const next = upstream?.targets.find((t) => t.address === s.target.address && t.weight > 0);
      if (upstream === undefined || next === undefined) {
        s.end({ error: null, closedBy: 'reload' });
        continue;
      }
      s.target.inflight--;
      next.inflight++;
      s.target = next;
      s.upstream = upstream;
    }
  }

  /**
   * Counts `count` dropped datagrams under `reason`. A new client that is
   * refused (`first`: a middleware, maxSessions, no upstream or target)
   * also ends like a session: one count in `ended` under its GatewayError
   * code, and one access-log line (without an access log, a debug line).
   * UDP sources cost nothing to forge, so a client address is logged at
   * most once per DROP_LOG_MS: the datagrams refused in between are
   * carried by its next line's `datagramsDropped`. A datagram dropped
   * inside a live session (`queue-full`) is counted here and in the
   * session's line.
   */
  private drop(reason: DropReason, first?: { runtime: Runtime; rinfo: dgram.RemoteInfo; upstream?: string; error?: GatewayError }, count = 1): void {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + count);
    if (first === undefined) return;
    const { runtime, rinfo } = first;
    const err = first.error ?? (reason === 'max-sessions' ? new GatewayError('SESSION_LIMIT') : refusalError(reason as RefusalReason));
    this.count(err, first.upstream);
    const key = `${rinfo.address} ${rinfo.port}`;
    const now = Date.now();
    const last = this.dropLog.get(key);
    if (last !== undefined && now - last.at < DROP_LOG_MS) {
      last.n += count;
      return;
    }
    if (this.dropLog.size >= DROP_LOG_KEYS) this.dropLog.clear();
    count += last?.n ?? 0;
    this.dropLog.set(key, { at: now, n: 0 });
    const client = unmapV4(rinfo.address);
    if (runtime.accessLog === null) {
      this.logger.debug({ listener: this.binding.name, client, clientPort: rinfo.port, reason, code: err.code }, 'udp datagram dropped');
      return;
    }
    runtime.accessLog.writeConnection({
      listener: runtime.name,
      protocol: 'udp',
      client,
      clientPort: rinfo.port,
      outcome: outcomeOf(err, 'udp'),
      code: err.code,
      upstream: first.upstream,
      datagramsDropped: count,
      durationMs: 0,
      error: err.message,
    });
  }

  /**
   * Ends every session and closes the socket. UDP has nothing in flight to
   * wait for (a reply still on its way is lost, as a datagram may be), so
   * `graceMs` is not used.
   */
  close(_graceMs: number): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closing = new Promise((resolve) => {
      this.admitting.clear();
      for (const s of [...this.sessions.values()]) s.end({ error: null, closedBy: 'gateway' });
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve(); // already closed
      }
    });
    return this.closing;
  }
}
