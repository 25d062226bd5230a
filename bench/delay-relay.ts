/**
 * A long link in user space, for the tunnel bench's `long link` measure: a
 * TCP forwarder that holds every chunk it reads for DELAY_MS before writing
 * it on, in each direction independently, so a round trip through it takes
 * 2 × DELAY_MS more (25 ms per direction: a 50 ms RTT link).
 *
 *   node delay-relay.js LISTEN_PORT TARGET_PORT [DELAY_MS=25] [CAP_BYTES=67108864]
 *
 * Contract, per direction of each connection:
 * - a chunk read at time t is written at t + DELAY_MS or later, in order;
 * - backpressure: reading pauses while more than CAP_BYTES are held (queued
 *   for their delay, or handed to a socket that has not flushed them), and
 *   resumes when that falls to half of it. CAP_BYTES (64 MiB by default)
 *   is far above what one direction holds at loopback speed × 25 ms, so
 *   the relay itself never limits throughput: what limits a transfer is the
 *   flow control of the protocols that cross it (TCP's window is not
 *   end-to-end here, since the relay terminates TCP; HTTP/2's and SSH's
 *   channel windows are, so their WINDOW_UPDATEs take the delay);
 * - half-close is forwarded after the data before it (end() once the queue
 *   is empty); an error on either side destroys both.
 * No limits, no logging; SIGTERM exits at once.
 */
import net from 'node:net';

const [listenPort, targetPort, delayArg, capArg] = process.argv.slice(2);
const LISTEN = Number(listenPort);
const TARGET = Number(targetPort);
const DELAY_MS = delayArg !== undefined ? Number(delayArg) : 25;
const CAP = capArg !== undefined ? Number(capArg) : 64 * 1024 * 1024;
if (!Number.isInteger(LISTEN) || !Number.isInteger(TARGET) || !(DELAY_MS >= 0) || !(CAP > 0)) {
  process.stderr.write('usage: delay-relay.js LISTEN_PORT TARGET_PORT [DELAY_MS] [CAP_BYTES]\n');
  process.exit(2);
}

/** One direction: bytes read from `from` are written to `to` DELAY_MS later. */
function delayed(from: net.Socket, to: net.Socket): void {
  const queue: { due: number; chunk: Buffer }[] = [];
  let held = 0;
  let ended = false;
  let timer: NodeJS.Timeout | undefined;
  const release = (n: number): void => {
    held -= n;
    if (from.isPaused() && held <= CAP / 2) from.resume();
  };
  const flush = (): void => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.due <= now) {
      const { chunk } = queue.shift()!;
      // The write callback runs once the chunk has left the socket's buffer: only then is it not held.
      to.write(chunk, () => release(chunk.length));
    }
    if (queue.length > 0) timer = setTimeout(flush, Math.max(0, queue[0]!.due - performance.now()));
    else if (ended) to.end();
  };
  from.on('data', (chunk: Buffer) => {
    queue.push({ due: performance.now() + DELAY_MS, chunk });
    held += chunk.length;
    if (held > CAP) from.pause();
    timer ??= setTimeout(flush, DELAY_MS);
  });
  from.on('end', () => {
    ended = true;
    if (queue.length === 0 && timer === undefined) to.end();
  });
  // `from` closing leaves its queued bytes to deliver; only `to` closing makes them undeliverable.
  to.on('close', () => {
    if (timer !== undefined) clearTimeout(timer);
    queue.length = 0;
  });
}

const server = net.createServer({ allowHalfOpen: true }, (client) => {
  const target = net.connect({ port: TARGET, host: '127.0.0.1', allowHalfOpen: true });
  client.setNoDelay(true);
  target.setNoDelay(true);
  const kill = (): void => {
    client.destroy();
    target.destroy();
  };
  client.on('error', kill);
  target.on('error', kill);
  // A clean close of one side is a half-close already forwarded (or queued); only a reset kills both.
  client.on('close', (hadError) => {
    if (hadError) target.destroy();
  });
  target.on('close', (hadError) => {
    if (hadError) client.destroy();
  });
  delayed(client, target);
  delayed(target, client);
});
server.listen(LISTEN, '127.0.0.1', 1024);
process.on('SIGTERM', () => process.exit(0));
