import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface HoldingUpstream {
  address: string;
  /** Requests (or upgrade requests) that arrived, those whose body was read to its end, and those whose exchange the upstream saw end. */
  arrived(): number;
  bodiesRead(): number;
  ended(): number;
  /** Connections open now, and those of them that never carried a request (HTTP/1.1). */
  open(): number;
  neverUsed(): number;
  close(): Promise<void>;
}

/**
 * An upstream (HTTP/1.1, or h2c) that reads request bodies and never
 * answers, except `GET /warm` (200, to warm the pool before a baseline).
 * Upgrade requests are held too, never answered. An exchange has ended for
 * it when its response closes unanswered (the gateway went away). Idle
 * connections are the gateway's to close (its pool's idle timeout), not
 * this upstream's.
 */
export async function startHoldingUpstream(h2c = false): Promise<HoldingUpstream> {
  let arrived = 0;
  let bodiesRead = 0;
  let ended = 0;
  const sockets = new Set<net.Socket>();
  const used = new WeakSet<object>();
  const onRequest = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
    used.add(req.socket);
    if (req.url === '/warm') {
      res.end('ok');
      return;
    }
    arrived++;
    res.once('close', () => ended++);
    req.on('error', () => undefined);
    req.on('end', () => bodiesRead++);
    req.resume();
  };
  const server = h2c ? http2.createServer(onRequest) : http.createServer(onRequest);
  if (!h2c) (server as http.Server).keepAliveTimeout = 60_000;
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
    used.add(req.socket);
    arrived++;
    bodiesRead++;
    socket.on('error', () => undefined);
    // node:http hands over upgraded sockets half-open capable: the gateway's FIN is the end.
    socket.once('end', () => socket.destroy());
    socket.once('close', () => ended++);
    socket.resume();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    arrived: () => arrived,
    bodiesRead: () => bodiesRead,
    ended: () => ended,
    open: () => sockets.size,
    neverUsed: () => [...sockets].filter((s) => !used.has(s)).length,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
