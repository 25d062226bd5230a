/**
 * The WebSocket upstream of the `websocket` scenario: a `ws` server echoing
 * every message back (no compression). Its own process, pinned with the
 * load generator:
 *
 *   node ws-echo-server.js PORT
 *
 * Plain HTTP requests get 426 (a readiness probe sees the server is up).
 * Stops on SIGTERM/SIGINT.
 */
import http from 'node:http';
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: ws-echo-server.js PORT\n');
  process.exit(2);
}

const server = http.createServer((_req, res) => {
  res.writeHead(426, { 'content-type': 'text/plain', 'content-length': '23', upgrade: 'websocket' });
  res.end('WebSocket echo server\n\n');
});
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => undefined);
});
server.listen(port, '127.0.0.1', 4096);

const stop = (): void => {
  for (const ws of wss.clients) ws.terminate();
  wss.close();
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
