import dgram from 'node:dgram';
import net from 'node:net';

/**
 * How a process binds the listener sockets it may share with sibling
 * Portico processes (`workers: N`):
 *
 * - `exclusive`: one process (`workers: 1`, or the admin API): the socket is
 *   this process's own (`exclusive: true`; outside node:cluster it changes nothing).
 * - `reuse-port`: every worker binds its own socket with SO_REUSEPORT and the
 *   kernel spreads connections (and UDP flows, by 4-tuple hash) over them.
 *   Linux ≥ 3.9 with Node ≥ 22.12 / 23.1 (`reusePort` of net and dgram).
 * - `cluster`: node:cluster's shared handle: the primary binds once; TCP
 *   connections are accepted by the primary and handed to workers round-robin
 *   (cluster.SCHED_RR); a UDP socket is one descriptor read by every worker.
 */
export type PortSharing = 'exclusive' | 'reuse-port' | 'cluster';

/** Options for one listener socket under `sharing`. */
export interface BindOptions {
  /** `net.Server.listen` options (besides host and port). */
  readonly listen: { exclusive: boolean; reusePort?: true };
  /** `dgram.createSocket` options (besides type). */
  readonly createDatagram: { reusePort?: true };
  /** `dgram.Socket.bind` options (besides address and port). */
  readonly bindDatagram: { exclusive: boolean };
}

export function bindOptions(sharing: PortSharing): BindOptions {
  // exclusive: false is what makes a cluster worker ask the primary for the shared handle.
  const exclusive = sharing !== 'cluster';
  const reuse = sharing === 'reuse-port' ? { reusePort: true as const } : {};
  return { listen: { exclusive, ...reuse }, createDatagram: reuse, bindDatagram: { exclusive } };
}

/** What this process is among its siblings: set once by a worker (main.ts) before its gateway binds. */
let role: { sharing: PortSharing; admin: boolean } = { sharing: 'exclusive', admin: true };

/**
 * Makes this process a worker: listener sockets are bound for `sharing`,
 * and the admin API is served only when `admin` (one worker answers it; its
 * socket is always bound `exclusive`).
 */
export function setProcessRole(next: { sharing: PortSharing; admin: boolean }): void {
  role = { ...next };
}

/** How this process binds listener sockets (the gateway asks at each bind). */
export function listenerBindOptions(): BindOptions {
  return bindOptions(role.sharing);
}

/** Whether this process serves the admin API: true unless it is a worker other than the first. */
export function servesAdmin(): boolean {
  return role.admin;
}

/**
 * Whether this Node and platform honour `reusePort` for both TCP and UDP:
 * two sockets of each kind are bound to one loopback port. Where the option
 * is unknown (Node < 22.12) it is ignored, so the second bind fails with
 * EADDRINUSE; where the platform lacks SO_REUSEPORT the first one fails.
 */
export async function reusePortAvailable(): Promise<boolean> {
  return (await probeTcp()) && (await probeUdp());
}

type ReuseListenOptions = net.ListenOptions & { reusePort?: boolean };
type ReuseSocketOptions = dgram.SocketOptions & { reusePort?: boolean };

async function probeTcp(): Promise<boolean> {
  const servers: net.Server[] = [];
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      servers.push(server);
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port, exclusive: true, reusePort: true } as ReuseListenOptions, () =>
        resolve((server.address() as net.AddressInfo).port),
      );
    });
  try {
    await listen(await listen(0));
    return true;
  } catch {
    return false;
  } finally {
    for (const s of servers) if (s.listening) s.close();
  }
}

async function probeUdp(): Promise<boolean> {
  const sockets: dgram.Socket[] = [];
  const bind = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const socket = dgram.createSocket({ type: 'udp4', reusePort: true } as ReuseSocketOptions);
      sockets.push(socket);
      socket.once('error', reject);
      socket.bind({ address: '127.0.0.1', port, exclusive: true }, () => resolve(socket.address().port));
    });
  try {
    await bind(await bind(0));
    return true;
  } catch {
    return false;
  } finally {
    for (const s of sockets) {
      try {
        s.close();
      } catch {
        // never bound
      }
    }
  }
}
