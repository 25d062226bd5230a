import { Carried, formatPeer, type Owner } from '../../runtime/connection-registry.js';
import type { UdpSession } from './session.js';

/**
 * A UDP session in the connection registry (`udp`): one client address
 * and its upstream socket, listed while the session lives. Bytes are the
 * session's datagram payloads. Closing it drops the session (its upstream
 * socket is closed, logged as `closedBy: gateway`); the client's next
 * datagram starts a new session.
 */
export class UdpConnection extends Carried {
  readonly kind = 'udp' as const;
  readonly session: UdpSession;

  constructor(owner: Owner, session: UdpSession) {
    super(owner);
    this.session = session;
  }

  peer(): string {
    return formatPeer(this.session.clientIp, this.session.clientPort);
  }

  bytesIn(): number {
    return this.session.bytesUp;
  }

  bytesOut(): number {
    return this.session.bytesDown;
  }

  override upstreamName(): string {
    return this.session.upstream.name;
  }

  override targetAddress(): string {
    return this.session.target.address;
  }

  protected shutdown(): void {
    this.session.end({ error: null, closedBy: 'gateway' });
  }
}
