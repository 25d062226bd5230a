import net from 'node:net';
import { coalescePerTurn } from './coalesce.js';

/** Which side ended a spliced connection, as the access log reports it. */
export type ClosedBy = 'client' | 'upstream' | 'idle' | 'error' | 'gateway';

export interface SpliceResult {
  /** Bytes client → upstream (`head` included) and upstream → client. */
  bytesUp: number;
  bytesDown: number;
  closedBy: ClosedBy;
  /** The first error seen on either side (ECONNRESET…), if any. */
  error?: string;
}

export interface SpliceOptions {
  /** Longest silence in both directions, ms; 0 = none. */
  idleMs: number;
  /** Bytes already read from the client (after a header or line) to send upstream first. */
  head?: Buffer;
}

/**
 * Relays bytes both ways between a client and an upstream socket until
 * both directions are done, and calls `done` once, after both sockets
 * closed.
 *
 * - Backpressure: the reading side is paused while the other side's
 *   buffer is over its high-water mark, so a slow reader holds at most
 *   about one buffer per direction in Portico.
 * - Half-close (RFC 9293 §3.6): a FIN from one side ends the other side's
 *   write half only; the opposite direction keeps flowing until it ends
 *   too. Both sockets must be `allowHalfOpen`.
 * - A side that closes abnormally (reset, error, destroyed) destroys the
 *   other at once, so nothing is left in CLOSE_WAIT.
 * - A side that is not a kernel socket (a tunnel stream) has each turn's
 *   chunks written to the other side at once (coalesce.ts).
 * - Idle: one timer on the client socket sees traffic in both directions
 *   (reads of one are writes of the other); on expiry both are destroyed.
 */
export function splice(client: net.Socket, upstream: net.Socket, o: SpliceOptions, done: (r: SpliceResult) => void): void {
  let closedBy: ClosedBy | undefined;
  let error: string | undefined;
  let open = 2;
  const upBase = upstream.bytesWritten;
  const downBase = client.bytesWritten;

  const onClose = (side: net.Socket, other: net.Socket, name: 'client' | 'upstream') => () => {
    // A clean close has read the peer's FIN and flushed everything written to it.
    const clean = side.readableEnded && side.writableFinished;
    closedBy ??= clean ? name : 'error';
    if (!clean && !other.destroyed) other.destroy();
    if (--open === 0) {
      client.setTimeout(0);
      done({ bytesUp: upstream.bytesWritten - upBase, bytesDown: client.bytesWritten - downBase, closedBy, ...(error !== undefined ? { error } : {}) });
    }
  };
  const onError = (name: 'client' | 'upstream') => (err: Error & { code?: string }) => {
    error ??= `${name}: ${err.code ?? err.message}`;
  };
  client.on('error', onError('client'));
  upstream.on('error', onError('upstream'));
  client.once('close', onClose(client, upstream, 'client'));
  upstream.once('close', onClose(upstream, client, 'upstream'));
  // The first FIN names who ended the connection, unless an error or the idle timer came first.
  if (client.readableEnded) closedBy = 'client';
  client.once('end', () => (closedBy ??= 'client'));
  upstream.once('end', () => (closedBy ??= 'upstream'));
  if (o.idleMs > 0) {
    client.setTimeout(o.idleMs, () => {
      closedBy ??= 'idle';
      client.destroy();
      upstream.destroy();
    });
  }
  if (o.head !== undefined && o.head.length > 0) upstream.write(o.head);
  // A side that is not a kernel socket (a tunnel stream) reads in small chunks: its turn's chunks go out as one write.
  if (!(client instanceof net.Socket)) coalescePerTurn(client, upstream);
  if (!(upstream instanceof net.Socket)) coalescePerTurn(upstream, client);
  relay(client, upstream);
  relay(upstream, client);
}

/**
 * One direction: what `from` reads is written to `to`; `from` pauses while
 * `to`'s buffer is over its high-water mark and resumes on 'drain'; its FIN
 * ends `to`'s write half. The same contract as `from.pipe(to)`, without
 * pipe()'s per-call bookkeeping (unpipe, cleanup listeners), measurable on
 * a path that runs once per connection.
 */
function relay(from: net.Socket, to: net.Socket): void {
  from.on('data', (chunk: Buffer) => {
    if (!to.write(chunk)) from.pause();
  });
  to.on('drain', () => from.resume());
  // A FIN that came before the splice (the client sent its line and ended) is passed on too.
  if (from.readableEnded) to.end();
  else from.once('end', () => to.end());
  // As pipe() does: start reading even if the socket was paused before.
  from.resume();
}
