import type { Duplex } from 'node:stream';
import type net from 'node:net';
import { Carried, entryOf, formatPeer, type Owner } from '../runtime/connection-registry.js';
import type { ProxiedAddresses } from './proxy-protocol/encode.js';

/** How long the peers of a connection the gateway ended (FIN sent both ways) may take to close before both sockets are destroyed. */
export const CLOSE_GRACE_MS = 2000;

export type StreamKind = 'tcp' | 'tls' | 'sealed' | 'forward-proxy';

/**
 * A downstream connection of a TCP-based L4 listener (`tcp`, `tls`,
 * `sealed`, `forward-proxy`), listed from its admission until its socket
 * closes. `peer` is the client as the listener sees it (from the PROXY
 * header when there was one). Bytes are the downstream socket's counters.
 *
 * Closing it: each side's write half ends (FIN, RFC 9293 §3.6) — the
 * client's and, once spliced, the upstream's; whatever either still sends
 * is read and dropped (closing with unread data would reset); sockets
 * still open after CLOSE_GRACE_MS are destroyed.
 */
export class StreamConnection extends Carried {
  readonly kind: StreamKind;
  /** The accepted socket (its counters are the connection's bytes). */
  private readonly accepted: net.Socket;
  private readonly client: ProxiedAddresses;
  /** What is spliced to the upstream: the accepted socket, or the TLSSocket over it when TLS is terminated. */
  private downstream: net.Socket;
  private upstreamSocket: net.Socket | null = null;

  constructor(kind: StreamKind, owner: Owner, socket: net.Socket, client: ProxiedAddresses) {
    super(owner);
    this.kind = kind;
    this.accepted = socket;
    this.downstream = socket;
    this.client = client;
  }

  peer(): string {
    return formatPeer(this.client.sourceAddress, this.client.sourcePort);
  }

  bytesIn(): number {
    return this.accepted.bytesRead;
  }

  bytesOut(): number {
    return this.accepted.bytesWritten;
  }

  protected shutdown(): void {
    const sockets = this.upstreamSocket === null ? [this.downstream] : [this.downstream, this.upstreamSocket];
    // Under a terminated TLSSocket the accepted socket goes with it (its close_notify goes first).
    endSpliced(sockets, this.downstream !== this.accepted ? [this.accepted] : []);
  }

  /** The two sockets now spliced: `downstream` (the accepted one or a TLSSocket over it) and the upstream's, for `close`. */
  spliced(downstream: net.Socket, upstream: net.Socket, upstreamName: string | undefined, target: string): void {
    this.downstream = downstream;
    this.upstreamSocket = upstream;
    this.upstream = upstreamName;
    this.target = target;
    // A close asked for while dialling ended the client's side only.
    if (this.closing) {
      this.closing = false;
      this.close();
    }
  }
}

function drop(): void {}

/**
 * Tells the registry entry of a connection what it is now spliced to;
 * `downstream` is the accepted socket or a TLSSocket tagged with its entry
 * (`tagSocket`). A no-op for a connection that is not listed.
 */
export function noteSplice(downstream: net.Socket, upstream: net.Socket, upstreamName: string | undefined, target: string): void {
  const entry = entryOf(downstream);
  if (entry instanceof StreamConnection) entry.spliced(downstream, upstream, upstreamName, target);
}

/**
 * Ends spliced sockets the clean way: each side's write half ends (FIN,
 * RFC 9293 §3.6), what either still sends is read and dropped (closing
 * with unread data would reset), and whatever is still open after
 * CLOSE_GRACE_MS is destroyed, `alsoDestroy` included.
 */
export function endSpliced(sockets: readonly Duplex[], alsoDestroy: readonly Duplex[] = []): void {
  for (const s of sockets) {
    if (s.destroyed) continue;
    // The splice forwards no more: what arrives now is dropped.
    s.removeAllListeners('data');
    s.on('data', drop);
    s.resume();
    if (!s.writableEnded) s.end();
  }
  setTimeout(() => {
    for (const s of [...sockets, ...alsoDestroy]) s.destroy();
  }, CLOSE_GRACE_MS).unref();
}
