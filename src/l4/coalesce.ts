import type { Readable, Writable } from 'node:stream';

/**
 * Writes what `source` delivers in one turn of the event loop to `sink`
 * as one write. A stream that is not a kernel socket can deliver many
 * small chunks per turn: a tunnel stream gets its bytes as `data` events
 * of about 8 KiB (16 KiB HTTP/2 DATA frames cut by TLS records) and,
 * written one by one, each is a syscall on the sink. Here the
 * sink is corked at the first chunk of a turn and uncorked when the turn
 * ends (setImmediate), so the turn's chunks leave in one writev. Measured
 * on one upload through a tunnel: +27% throughput (median of 4 pairs), the
 * agent's CPU per byte −27% (docs/performance.md). Nothing waits on a timer: the flush is at the end
 * of the same turn.
 *
 * Call it before the code that pipes `source` into `sink` adds its own
 * `data` listener, so the cork comes first.
 */
export function coalescePerTurn(source: Readable, sink: Writable): void {
  let corked = false;
  const flush = (): void => {
    corked = false;
    sink.uncork();
  };
  source.on('data', () => {
    if (corked || sink.destroyed) return;
    corked = true;
    sink.cork();
    setImmediate(flush);
  });
}
