/**
 * The yardstick for Portico's `protocol: tcp` listener: the smallest
 * correct-enough TCP proxy Node.js can run, every connection piped to one
 * target with stream.pipe() and default socket options. No limits, no
 * timeouts, no logging. `node tcp-pipe.js LISTEN_PORT TARGET_PORT`.
 */
import net from 'node:net';

const [listenPort, targetPort] = process.argv.slice(2).map(Number);
if (!Number.isInteger(listenPort) || !Number.isInteger(targetPort)) {
  process.stderr.write('usage: tcp-pipe.js LISTEN_PORT TARGET_PORT\n');
  process.exit(2);
}
const server = net.createServer((client) => {
  const upstream = net.connect(targetPort!, '127.0.0.1');
  client.pipe(upstream).pipe(client);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
});
server.listen(listenPort, '127.0.0.1', 4096);
process.on('SIGTERM', () => process.exit(0));
