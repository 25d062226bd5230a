import type net from 'node:net';
import type tls from 'node:tls';
import { wrapped } from './tls.js';

/**
 * Accepted connections of a tunnel or relay listener that have not
 * settled yet (TLS handshake, then authentication or the request line),
 * capped so a flood of half-open handshakes costs a bounded amount. A
 * connection counts from accept until it settles or closes.
 */
export class PendingHandshakes {
  /** Accepted socket → when it was accepted (deadlines run from there). */
  private readonly sockets = new Map<net.Socket, number>();
  /** Connections refused because `max` were pending. */
  refused = 0;

  get size(): number {
    return this.sockets.size;
  }

  /** Counts `socket` as pending; false (and counted as refused) when `max` already are. */
  admit(socket: net.Socket, max: number): boolean {
    if (this.sockets.size >= max) {
      this.refused++;
      return false;
    }
    this.sockets.set(socket, Date.now());
    socket.once('close', () => this.sockets.delete(socket));
    return true;
  }

  /** The connection over `secure` settled (authenticated, read its line) or ended: it no longer counts. */
  settle(secure: tls.TLSSocket): void {
    const raw = wrapped(secure);
    if (raw !== undefined) this.sockets.delete(raw);
  }

  /** When the connection under `secure` was accepted (now, if it is not pending). */
  acceptedAt(secure: tls.TLSSocket): number {
    const raw = wrapped(secure);
    return (raw === undefined ? undefined : this.sockets.get(raw)) ?? Date.now();
  }

  /** Destroys every pending connection (the listener is closing). */
  destroyAll(): void {
    for (const s of this.sockets.keys()) s.destroy();
    this.sockets.clear();
  }
}
