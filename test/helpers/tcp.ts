import net from 'node:net';

export interface TcpServer {
  readonly port: number;
  readonly address: string;
  /** Sockets accepted so far, and those still open. */
  readonly accepted: net.Socket[];
  open(): number;
  close(): Promise<void>;
}

/** A real TCP server on 127.0.0.1 port 0 (half-open capable); `onSocket` serves each connection. */
export async function startTcpServer(onSocket: (socket: net.Socket) => void): Promise<TcpServer> {
  const accepted: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    accepted.push(socket);
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    accepted,
    open: () => accepted.filter((s) => !s.destroyed).length,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of accepted) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Echoes everything back and ends its side when the client ends (half-close aware). */
export function echo(socket: net.Socket): void {
  socket.pipe(socket);
}

/** Connects to `port` on 127.0.0.1 with allowHalfOpen; resolves once connected. */
export function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host, allowHalfOpen: true });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Everything the socket sends until it ends (or closes). */
export function readAll(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    const done = () => resolve(Buffer.concat(chunks));
    socket.once('end', done);
    socket.once('close', done);
  });
}

/**
 * `true` if the peer ended the connection (FIN or reset) within `ms`. A
 * half-open socket only gets 'end' on a FIN; it is destroyed here then, so
 * a test leaves nothing open.
 */
export function closedWithin(socket: net.Socket, ms: number): Promise<boolean> {
  if (socket.destroyed || socket.readableEnded) {
    socket.destroy();
    return Promise.resolve(true);
  }
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(t);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      if (ok) socket.destroy();
      resolve(ok);
    };
    const onEnd = () => done(true);
    const t = setTimeout(() => done(false), ms);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.on('error', () => undefined);
    socket.resume();
  });
}

/** A free TCP port on 127.0.0.1 with nothing listening (bound then released). */
export async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
