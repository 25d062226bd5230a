/**
 * Direct target of the `h2` scenario when nginx is not installed: a
 * node:http2 secure server (TLS, ALPN h2) answering GET /small with the same
 * 13-byte body as the fast upstream. Its own process, pinned with the load
 * generator:
 *
 *   node h2-server.js PORT CERT_FILE KEY_FILE
 *
 * Stops on SIGTERM/SIGINT.
 */
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import { SMALL_BODY } from './nginx.js';

const [portArg, certFile, keyFile] = process.argv.slice(2);
const port = Number(portArg);
if (!Number.isInteger(port) || port <= 0 || certFile === undefined || keyFile === undefined) {
  process.stderr.write('usage: h2-server.js PORT CERT_FILE KEY_FILE\n');
  process.exit(2);
}

const small = Buffer.from(SMALL_BODY);
const server = http2.createSecureServer({
  cert: readFileSync(certFile),
  key: readFileSync(keyFile),
  settings: { maxConcurrentStreams: 128, initialWindowSize: 1 << 20 },
});
server.on('stream', (stream, headers) => {
  if (headers[':method'] === 'GET' && headers[':path'] === '/small') {
    stream.respond({ ':status': 200, 'content-type': 'text/plain', 'content-length': small.length });
    stream.end(small);
  } else {
    stream.respond({ ':status': 404, 'content-type': 'text/plain', 'content-length': 10 });
    stream.end('not found\n');
  }
  stream.on('error', () => undefined);
});
server.on('sessionError', () => undefined);
server.listen(port, '127.0.0.1', 4096);

const stop = (): void => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
