/**
 * Fallback fast upstream when nginx is not installed: a node:http server
 * answering GET /small (13 bytes) and GET /large (64 KiB), keep-alive on.
 * Run as its own process (so it can be pinned): `node upstream-server.js PORT`.
 */
import http from 'node:http';
import { largeBody, SMALL_BODY } from './nginx.js';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: upstream-server.js PORT\n');
  process.exit(2);
}

const small = Buffer.from(SMALL_BODY);
const large = largeBody();

const server = http.createServer((req, res) => {
  const body = req.method === 'GET' ? (req.url === '/small' ? small : req.url === '/large' ? large : undefined) : undefined;
  if (body === undefined) {
    res.writeHead(404, { 'content-type': 'text/plain', 'content-length': '10' });
    res.end('not found\n');
    return;
  }
  res.writeHead(200, {
    'content-type': body === small ? 'text/plain' : 'application/octet-stream',
    'content-length': String(body.length),
  });
  res.end(body);
});
server.keepAliveTimeout = 75_000;
server.headersTimeout = 80_000;
server.maxRequestsPerSocket = 0;
server.listen(port, '127.0.0.1', 4096);

const stop = (): void => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
