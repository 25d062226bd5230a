import type net from 'node:net';
import type { RefusalReason } from './admission.js';

export interface ConnectionLimits {
  /** 0 = no limit. */
  maxConnections: number;
  maxConnectionsPerIp: number;
}

/**
 * The open connections of one L4 listener, kept by its listener across
 * reloads: the client sockets, how many each client IP has open, and how
 * many were refused. `close(grace)` lets them finish for up to `grace` ms,
 * then destroys what is left (their upstream sockets follow, see splice).
 */
export class ListenerConnections {
  private readonly sockets = new Set<net.Socket>();
  private readonly perIp = new Map<string, number>();
  /** Connections refused, by reason (admin status). */
  readonly refused = new Map<RefusalReason, number>();

  get size(): number {
    return this.sockets.size;
  }

  /**
   * Registers a client connection if the limits allow it, counted under
   * `ip`; returns why not otherwise (the caller closes it at once and
   * counts it with `refuse`).
   */
  add(socket: net.Socket, ip: string, limits: ConnectionLimits): RefusalReason | null {
    if (limits.maxConnections > 0 && this.sockets.size >= limits.maxConnections) return 'max-connections';
    const n = this.perIp.get(ip) ?? 0;
    if (limits.maxConnectionsPerIp > 0 && n >= limits.maxConnectionsPerIp) return 'max-connections-per-ip';
    this.sockets.add(socket);
    this.perIp.set(ip, n + 1);
    socket.once('close', () => {
      this.sockets.delete(socket);
      const left = (this.perIp.get(ip) ?? 1) - 1;
      if (left <= 0) this.perIp.delete(ip);
      else this.perIp.set(ip, left);
    });
    return null;
  }

  /** Counts a connection refused for `reason`. */
  refuse(reason: RefusalReason): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1);
  }

  /** Waits up to `graceMs` for the connections to end, then destroys the rest. */
  close(graceMs: number): Promise<void> {
    return new Promise((resolve) => {
      const deadline = Date.now() + graceMs;
      const sweep = () => {
        if (this.sockets.size > 0 && Date.now() < deadline) return;
        clearInterval(timer);
        for (const s of this.sockets) s.destroy();
        resolve();
      };
      const timer = setInterval(sweep, 50);
      sweep();
    });
  }
}
