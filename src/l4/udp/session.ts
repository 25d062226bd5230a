import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { parseHostPort } from '../../net/address.js';
import { GatewayError } from '../../errors.js';
import type { Target } from '../../upstream/target.js';
import type { Upstream } from '../../upstream/upstream.js';

/** Datagrams a session holds while its upstream socket is being opened; more are dropped (`queue-full`). */
export const OPENING_QUEUE = 64;

/** Why a session ended, for its access-log line. */
export interface SessionEnd {
  /**
   * null (ended normally), UPSTREAM_RESET (the target's socket failed, e.g.
   * ICMP port unreachable; logged `UPSTREAM_ERROR`) or
   * UPSTREAM_CONNECT_REFUSED (no socket could be opened: a bad address or a
   * name that does not resolve; logged `DIAL_FAILED`). The message is the
   * socket error's code or text.
   */
  error: GatewayError | null;
  /** `idle` (idleTimeout), `upstream` (an error), `reload` (the target left the upstream) or `gateway` (stop). */
  closedBy: 'idle' | 'upstream' | 'reload' | 'gateway';
}

/** What a session asks of its listener. */
export interface SessionHooks {
  /** A datagram from the target, for the client (sent from the listening socket). */
  reply(session: UdpSession, datagram: Buffer): void;
  /** Called exactly once, when the session has ended and its upstream socket is closed. */
  ended(session: UdpSession, end: SessionEnd): void;
  /** A datagram from the client that could not be queued while opening. */
  dropped(session: UdpSession, reason: 'queue-full'): void;
  /** The idle timeout in force now, ms (read on every check, so a reload applies to live sessions). */
  idleMs(): number;
}

/**
 * One client address (ip:port) of a `udp` listener: its own connected
 * upstream socket to the target chosen when the session began, so every
 * datagram of that client goes to the same target and the kernel only
 * delivers that target's datagrams back (connect(2) on a UDP socket
 * filters by peer). The session ends after `idleMs()` without a datagram
 * either way, or when the upstream socket reports an error (an ICMP port
 * unreachable surfaces as ECONNREFUSED on a connected socket).
 */
export class UdpSession {
  /** The client's address as received (IPv4-mapped on a dual-stack socket) and port: where replies go. */
  readonly clientAddress: string;
  readonly clientPort: number;
  /** The client's IP for logs and hashing (IPv4-mapped addresses unmapped). */
  readonly clientIp: string;
  /** The target and its upstream; a reload may move the session to the same address in the new snapshot. */
  target: Target;
  upstream: Upstream;
  readonly startedAt = process.hrtime.bigint();
  bytesUp = 0;
  bytesDown = 0;
  datagramsUp = 0;
  datagramsDown = 0;
  /** Datagrams from the client dropped because the opening queue was full (logged with the session). */
  datagramsDropped = 0;
  private socket: dgram.Socket | null = null;
  /** Datagrams received before the upstream socket is connected; null once it is. */
  private queue: Buffer[] | null = [];
  private ended = false;
  private lastActivity = Date.now();
  private timer: NodeJS.Timeout | null = null;
  private readonly hooks: SessionHooks;

  constructor(client: { address: string; port: number; ip: string }, upstream: Upstream, target: Target, hooks: SessionHooks) {
    this.clientAddress = client.address;
    this.clientPort = client.port;
    this.clientIp = client.ip;
    this.upstream = upstream;
    this.target = target;
    this.hooks = hooks;
    this.arm(hooks.idleMs());
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /**
   * Opens the upstream socket: resolves the target's host when it is a
   * name (the socket's family follows the address found), binds an
   * ephemeral port and connects; queued datagrams are then sent in order.
   */
  open(): void {
    const hp = parseHostPort(this.target.address);
    if (hp === undefined) return this.end({ error: new GatewayError('UPSTREAM_CONNECT_REFUSED', `bad target address ${this.target.address}`), closedBy: 'upstream' });
    const family = isIP(hp.host);
    const resolved = family !== 0 ? Promise.resolve({ address: hp.host, family }) : lookup(hp.host);
    resolved.then(
      ({ address, family }) => {
        if (this.ended) return;
        const socket = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
        this.socket = socket;
        socket.on('error', (err: NodeJS.ErrnoException) => this.end({ error: new GatewayError('UPSTREAM_RESET', err.code ?? err.message), closedBy: 'upstream' }));
        socket.on('message', (msg) => this.fromTarget(msg));
        try {
          socket.connect(hp.port, address, () => {
            if (this.ended) return;
            const queued = this.queue ?? [];
            this.queue = null;
            for (const d of queued) if (!this.ended) this.sendNow(d);
          });
        } catch (err) {
          // connect throws at once on an unusable port (0); errors after that arrive as 'error'.
          this.end({ error: new GatewayError('UPSTREAM_CONNECT_REFUSED', (err as Error).message), closedBy: 'upstream' });
        }
      },
      (err: NodeJS.ErrnoException) => this.end({ error: new GatewayError('UPSTREAM_CONNECT_REFUSED', `${hp.host}: ${err.code ?? err.message}`), closedBy: 'upstream' }),
    );
  }

  /** A datagram from the client, for the target. */
  send(datagram: Buffer): void {
    if (this.ended) return;
    this.lastActivity = Date.now();
    if (this.queue !== null && this.queue.length >= OPENING_QUEUE) {
      this.datagramsDropped++;
      return this.hooks.dropped(this, 'queue-full');
    }
    this.datagramsUp++;
    this.bytesUp += datagram.length;
    if (this.queue === null) this.sendNow(datagram);
    else this.queue.push(datagram);
  }

  private sendNow(datagram: Buffer): void {
    if (this.socket === null) return;
    try {
      this.socket.send(datagram, (err) => {
        if (err) this.end({ error: new GatewayError('UPSTREAM_RESET', (err as NodeJS.ErrnoException).code ?? err.message), closedBy: 'upstream' });
      });
    } catch (err) {
      this.end({ error: new GatewayError('UPSTREAM_RESET', (err as Error).message), closedBy: 'upstream' });
    }
  }

  private fromTarget(datagram: Buffer): void {
    if (this.ended) return;
    this.lastActivity = Date.now();
    this.datagramsDown++;
    this.bytesDown += datagram.length;
    this.hooks.reply(this, datagram);
  }

  /** One timer per session, re-armed lazily: traffic only moves `lastActivity`. */
  private arm(ms: number): void {
    this.timer = setTimeout(() => {
      const idle = this.hooks.idleMs();
      const left = this.lastActivity + idle - Date.now();
      if (left > 0) this.arm(left);
      else this.end({ error: null, closedBy: 'idle' });
    }, ms);
    this.timer.unref();
  }

  /** Ends the session (idempotent): closes the upstream socket, then tells the listener. */
  end(end: SessionEnd): void {
    if (this.ended) return;
    this.ended = true;
    this.queue = null;
    if (this.timer !== null) clearTimeout(this.timer);
    const socket = this.socket;
    this.socket = null;
    if (socket !== null) {
      // Later errors of a closing socket are of no interest; the handler keeps them from throwing.
      socket.removeAllListeners('message');
      try {
        socket.close();
      } catch {
        /* already closed */
      }
    }
    this.hooks.ended(this, end);
  }
}
