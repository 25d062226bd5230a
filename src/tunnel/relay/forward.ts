import net from 'node:net';
import { splice } from '../../l4/splice.js';
import type { HostPort } from '../../net/address.js';
import { formatPeer } from '../../runtime/connection-registry.js';
import type { Logger } from '../../observability/logger.js';
import { connectByCode, relayAddress, RelayRefusedError, type ConnectByCodeOptions } from './connect.js';
import { formatRelayRequest } from './handshake.js';
import { CLOSE_GRACE_MS } from '../../l4/stream-connection.js';

export interface ForwarderOptions extends ConnectByCodeOptions {
  /** The local address to accept connections on (port 0: any free port). */
  listen: HostPort;
  relay: string | HostPort;
  code: string;
  logger: Logger;
}

export interface Forwarder {
  /** The bound local address. */
  readonly address: HostPort;
  /** Stops accepting and destroys the connections in flight. */
  close(): Promise<void>;
}

/**
 * A local TCP forwarder to a service code (`portico connect`, docs/relay.md):
 * every connection accepted on `listen` is carried to `code` at the relay
 * (connectByCode) and spliced with half-close both ways. A refusal (401, 404,
 * 503…) or an unreachable relay closes that local connection and is logged
 * (warn); the forwarder keeps accepting: a relay that is down now may be up
 * for the next connection.
 *
 * Throws a RangeError for an invalid code, token or relay address before
 * binding anything; rejects with the bind error (EADDRINUSE…).
 */
export async function startForwarder(o: ForwarderOptions): Promise<Forwarder> {
  formatRelayRequest(o.code, o.token);
  const relay = relayAddress(o.relay);
  const open = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (local) => {
    open.add(local);
    local.once('close', () => open.delete(local));
    local.on('error', () => undefined);
    const peer = formatPeer(local.remoteAddress, local.remotePort);
    const started = Date.now();
    connectByCode(relay, o.code, { ...o, allowHalfOpen: true }).then(
      (remote) => {
        const socket = remote as net.Socket;
        if (local.destroyed) {
          socket.destroy();
          return;
        }
        open.add(socket);
        socket.once('close', () => open.delete(socket));
        splice(local, socket, { idleMs: 0 }, (r) => {
          o.logger.debug({ peer, code: o.code, bytesUp: r.bytesUp, bytesDown: r.bytesDown, closedBy: r.closedBy, durationMs: Date.now() - started, error: r.error }, 'connect: connection ended');
        });
      },
      (err: Error) => {
        closeQuietly(local);
        if (err instanceof RelayRefusedError) o.logger.warn({ peer, code: o.code, status: err.status, reason: err.reason }, 'connect: the relay refused the connection');
        else o.logger.warn({ peer, code: o.code, error: err.message }, 'connect: the relay is unreachable');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.listen.port, o.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as net.AddressInfo;
  return {
    address: { host: a.address, port: a.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of open) s.destroy();
      }),
  };
}

/**
 * Ends a local connection the relay would not carry: FIN (RFC 9293 §3.6),
 * what it still sends is read and dropped (closing with unread bytes would
 * reset), destroyed after a grace if it does not end too.
 */
function closeQuietly(local: net.Socket): void {
  if (local.destroyed) return;
  local.on('data', () => undefined);
  local.resume();
  local.end();
  const grace = setTimeout(() => local.destroy(), CLOSE_GRACE_MS);
  grace.unref();
  local.once('close', () => clearTimeout(grace));
}
