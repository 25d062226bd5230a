/**
 * Bulk TCP throughput without iperf3, in two processes:
 *
 *   node tcp-bulk.js sink PORT                       accepts connections, reads and drops everything
 *   node tcp-bulk.js send PORT DURATION_S WARMUP_S   one connection to PORT, writes 128 KiB chunks as
 *                                                    fast as the socket takes them (backpressure honoured)
 *
 * The sender counts the bytes the kernel accepted (bytesWritten minus what
 * is still queued in Node) between the end of the warm-up and the end of
 * the run, and prints one JSON line: {"bytes":N,"seconds":S,"bitsPerSecond":B}.
 * The loopback socket buffers hold a few MiB at most, against gigabytes sent.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';

const [mode, portArg, durationArg, warmupArg] = process.argv.slice(2);
const port = Number(portArg);
if ((mode !== 'sink' && mode !== 'send') || !Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: tcp-bulk.js sink PORT | tcp-bulk.js send PORT DURATION_S WARMUP_S\n');
  process.exit(2);
}

if (mode === 'sink') {
  const server = net.createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.resume();
  });
  server.listen(port, '127.0.0.1', 4096);
  process.on('SIGTERM', () => process.exit(0));
} else {
  const durationMs = Number(durationArg) * 1000;
  const warmupMs = Number(warmupArg ?? 0) * 1000;
  const chunk = Buffer.alloc(128 * 1024, 'x');
  const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
  const sent = (): number => socket.bytesWritten - socket.writableLength;
  let startBytes = 0;
  let startAt = 0;
  let stopAt = Number.POSITIVE_INFINITY;
  let finished = false;
  const finish = (err?: Error): void => {
    if (finished) return;
    finished = true;
    const now = performance.now();
    const seconds = (Math.min(now, stopAt) - startAt) / 1000;
    const bytes = sent() - startBytes;
    socket.destroy();
    if (err !== undefined || startAt === 0) {
      process.stderr.write(`tcp-bulk send: ${err?.message ?? 'the connection ended during the warm-up'}\n`);
      process.exit(1);
    }
    process.stdout.write(JSON.stringify({ bytes, seconds, bitsPerSecond: (bytes * 8) / seconds }) + '\n');
    process.exit(0);
  };
  const pump = (): void => {
    while (!finished && socket.write(chunk));
  };
  socket.on('connect', () => {
    setTimeout(() => {
      startBytes = sent();
      startAt = performance.now();
      setTimeout(() => {
        stopAt = performance.now();
        finish();
      }, durationMs);
    }, warmupMs);
    pump();
  });
  socket.on('drain', pump);
  socket.on('error', (err) => finish(err));
  socket.on('close', () => finish(new Error('the connection closed before the end of the run')));
}
