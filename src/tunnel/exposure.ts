import type { TunnelListenerConfig } from '../config/schemas/tunnel.js';
import type { Logger } from '../observability/logger.js';
import type { Registration } from './hub.js';
import type { Binding, PublicPort } from './public-port.js';
import type { Exposure } from './session.js';
import { TcpPort } from './tcp-port.js';
import { UdpPort } from './udp-port.js';

export type { Binding } from './public-port.js';

/**
 * What a tunnel listener opens for its agents' registrations (the
 * `Exposure` a TunnelSession asks): a public port per `remotePort` (TCP
 * for tcp/http/grpc services, UDP for udp services), bound on the
 * listener's `portsHost` (default: its own listen host) for as long as the
 * registration lives; and HTTP hosts (`hosts`) claimed on the tunnel's
 * `http.listener` through the gateway's HostClaims.
 *
 * Every connection on a public port becomes a new stream through THAT
 * registration (its agent connection), carrying the client's and the
 * port's addresses (the agent's PROXY header); a refused or timed-out
 * stream closes the client's connection. When the registration leaves,
 * its port closes at once with every connection on it.
 */
export class TunnelExposure implements Exposure {
  private readonly ports = new Map<Registration, PublicPort>();

  constructor(
    private readonly binding: Binding,
    private readonly config: () => TunnelListenerConfig,
    private readonly logger: Logger,
  ) {}

  async expose(r: Registration): Promise<string | null> {
    const config = this.config();
    const s = r.service;
    let port: PublicPort | null = null;
    if (s.remotePort !== undefined) {
      const host = config.portsHost ?? config.listen.host;
      port = s.type === 'udp' ? new UdpPort(this.binding, r, host, s.remotePort, this.logger) : new TcpPort(this.binding, r, host, s.remotePort, this.logger);
      const why = await port.open();
      if (why !== null) return why;
    }
    if (s.hosts.length > 0) {
      const claims = this.binding.tunnels.hosts;
      const why = claims === null || config.http === undefined ? 'this tunnel listener takes no hosts (it has no http: block)' : claims.claim(config.http.listener, r);
      if (why !== null) {
        port?.close();
        return why;
      }
    }
    if (port !== null) this.ports.set(r, port);
    return null;
  }

  withdraw(r: Registration): void {
    const port = this.ports.get(r);
    this.ports.delete(r);
    port?.close();
    this.binding.tunnels.hosts?.release(r);
  }

  /** Public ports open now (admin status, tests). */
  get openPorts(): number {
    return this.ports.size;
  }
}

