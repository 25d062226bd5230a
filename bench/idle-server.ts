/**
 * The `idle` scenario's `bare` target: a node:http server that answers
 * every GET with `hello, world\n` itself, keep-alive kept for 120 s (longer
 * than the measure). It is what an idle keep-alive connection costs Node.js
 * with no gateway code at all; Portico's figure is compared with it.
 * Run as its own process (so it can be pinned): `node idle-server.js PORT`.
 */
import http from 'node:http';
import { SMALL_BODY } from './nginx.js';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: idle-server.js PORT\n');
  process.exit(2);
}

const body = Buffer.from(SMALL_BODY);
const server = http.createServer((req, res) => {
  if (req.method !== 'GET') {
    res.writeHead(405, { 'content-type': 'text/plain', 'content-length': '19' });
    res.end('method not allowed\n');
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(body.length) });
  res.end(body);
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;
server.listen(port, '127.0.0.1', 4096);

const stop = (): void => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
