import { getSystemErrorMap } from 'node:util';
import type { Logger } from '../observability/logger.js';
import { Carried, formatPeer, type ConnectionRegistry, type Owner } from '../runtime/connection-registry.js';
import type { ConnectCallback, ConnectOptions, Connector, StreamOrigin } from '../runtime/connector.js';
import type { Registration, TunnelHub } from './hub.js';

/** Time for an agent to reach its local service for one public-port connection (or UDP session). */
export const CONNECT_TIMEOUT_MS = 10_000;
/** Copy buffer per direction of a public-port connection. */
export const BUFFER = 64 * 1024;

/** What an exposure needs of its tunnel listener (its Binding): its name, the registry, the hub. */
export interface Binding extends Owner {
  readonly registry: ConnectionRegistry;
  readonly tunnels: TunnelHub;
}

/** A connector whose streams carry `origin` (the public port's client), through the registration's connector. */
class OriginConnector implements Connector {
  readonly identity: string;
  constructor(
    private readonly inner: Connector,
    private readonly origin: StreamOrigin,
  ) {
    this.identity = inner.identity;
  }
  connect(options: ConnectOptions, callback: ConnectCallback): () => void {
    return this.inner.connect({ ...options, origin: this.origin }, callback);
  }
}

/** One public port of one registration; its registry entry is a 'tunnel-port'. */
export abstract class PublicPort {
  readonly entry: PortEntry;
  protected closed = false;
  /** It was bound and listed (what `ended` undoes). */
  private listed = false;
  /** Bytes from / to clients of connections (sessions) that ended; live ones are added by `bytesIn`/`bytesOut`. */
  protected doneIn = 0;
  protected doneOut = 0;

  constructor(
    protected readonly binding: Binding,
    readonly r: Registration,
    readonly host: string,
    readonly port: number,
    protected readonly logger: Logger,
  ) {
    this.entry = new PortEntry(binding, this);
  }

  /** Binds the port; null when listening, else why not (the registration is refused). */
  abstract open(): Promise<string | null>;
  abstract bytesIn(): number;
  abstract bytesOut(): number;
  /** Stops listening and closes every connection on it now (idempotent). */
  abstract close(): void;

  /** The agent's connection address (`peer` of the registry entry). */
  get agentPeer(): string {
    return (this.r.opener as { peer?: string }).peer ?? this.r.opener.agentId;
  }

  protected opened(kind: 'tcp' | 'udp'): void {
    this.listed = true;
    this.binding.registry.add(this.entry);
    this.logger.info({ listener: this.binding.name, agent: this.r.opener.agentId, code: this.r.code, port: this.port, protocol: kind }, 'tunnel public port open');
  }

  protected ended(kind: 'tcp' | 'udp'): void {
    if (!this.listed) return;
    this.listed = false;
    this.entry.unregister();
    this.logger.info({ listener: this.binding.name, agent: this.r.opener.agentId, code: this.r.code, port: this.port, protocol: kind }, 'tunnel public port closed');
  }

  /** A new stream through this port's registration for a client at `client` that reached `server` (default: the bound address). */
  protected connector(client: string, server = formatPeer(this.host, this.port)): Connector {
    return new OriginConnector(this.binding.tunnels.connector(this.r.identity), { client, server });
  }
}

/** A public port as GET /connections lists it: closing it closes the port and every connection on it. */
class PortEntry extends Carried {
  readonly kind = 'tunnel-port' as const;
  constructor(
    owner: Owner,
    private readonly port: PublicPort,
  ) {
    super(owner);
    this.target = port.r.identity;
  }
  peer(): string {
    return this.port.agentPeer;
  }
  bytesIn(): number {
    return this.port.bytesIn();
  }
  bytesOut(): number {
    return this.port.bytesOut();
  }
  override route(): string {
    return this.port.r.code;
  }
  protected shutdown(): void {
    this.port.close();
  }
}

/** Why a public port could not be bound, as the agent is told: `port 20022 (tcp) is already in use (EADDRINUSE)`. */
export function bindRefusal(kind: 'tcp' | 'udp', host: string, port: number, err: Error): string {
  const { code, errno } = err as NodeJS.ErrnoException;
  const text = typeof errno === 'number' ? getSystemErrorMap().get(errno)?.[1] : undefined;
  return `port ${port} (${kind}) on ${formatPeer(host, port).replace(/:\d+$/, '')} cannot be opened: ${text && code ? `${text} (${code})` : err.message}`;
}
