import type net from 'node:net';
import type { AgentServiceConfig } from '../../config/schemas/agent.js';
import type { Logger } from '../../observability/logger.js';
import { TokenBucket } from '../bandwidth.js';
import type { ServiceAnnouncement } from '../protocol.js';
import { LocalHealth } from './health.js';

/** A service's byte counts: `in` = gateway → local service, `out` = local service → gateway (PROXY headers not counted). */
export interface ServiceBytes {
  in: number;
  out: number;
}

/**
 * One local service the agent exposes, as configured, with what lives as
 * long as it does: its health check (when `healthCheck:` is set), the two
 * token buckets its streams share (when `bandwidth:` is set), and its
 * stream and byte counts.
 */
export class LocalService {
  up = true;
  /** The health check, or null (none configured, or a udp service: never checked). */
  readonly health: LocalHealth | null;
  /** Shared by every stream of this service, one per direction; null without `bandwidth:`. */
  readonly bucketIn: TokenBucket | null;
  readonly bucketOut: TokenBucket | null;
  /** Streams open now and since the service was (re)created. */
  streams = 0;
  streamsTotal = 0;
  /** Bytes of closed streams; open ones are read live from `locals`. */
  private readonly closed: ServiceBytes = { in: 0, out: 0 };
  /** The open local sockets, each with the PROXY header length written first. */
  private readonly locals = new Map<net.Socket, number>();

  constructor(
    public config: AgentServiceConfig,
    onHealth: (s: LocalService, up: boolean, reason: string) => void = () => undefined,
  ) {
    const h = config.healthCheck;
    // A service that expects a PROXY header refuses a plain HTTP or gRPC request (the header must come
    // first): such a service is checked by a TCP connect, which needs no byte from either side.
    const checkType = config.proxyProtocol !== 'none' ? 'tcp' : config.type;
    this.health =
      h === undefined || config.type === 'udp'
        ? null
        : new LocalHealth(
            { type: checkType, address: config.local, interval: h.interval, timeout: h.timeout, path: h.path, healthyThreshold: h.healthyThreshold, unhealthyThreshold: h.unhealthyThreshold },
            (up, reason) => onHealth(this, up, reason),
          );
    const rate = config.bandwidth;
    this.bucketIn = rate === undefined ? null : new TokenBucket({ rate });
    this.bucketOut = rate === undefined ? null : new TokenBucket({ rate });
  }

  get code(): string {
    return this.config.code;
  }

  announcement(): ServiceAnnouncement {
    const c = this.config;
    return { code: c.code, type: c.type, hosts: c.hosts, ...(c.remotePort !== undefined ? { remotePort: c.remotePort } : {}), up: this.up };
  }

  /** Counts a connected stream to the local service until its socket closes. */
  track(local: net.Socket, headerBytes: number): void {
    this.streams++;
    this.streamsTotal++;
    this.locals.set(local, headerBytes);
    local.once('close', () => {
      this.streams--;
      this.closed.in += Math.max(0, local.bytesWritten - headerBytes);
      this.closed.out += local.bytesRead;
      this.locals.delete(local);
    });
  }

  /** Bytes carried so far, open streams included. */
  bytes(): ServiceBytes {
    let { in: i, out: o } = this.closed;
    for (const [s, header] of this.locals) {
      i += Math.max(0, s.bytesWritten - header);
      o += s.bytesRead;
    }
    return { in: i, out: o };
  }

  start(): void {
    this.health?.start();
  }

  /** Stops what runs for it (its health check); its open streams carry on to their end. */
  stop(): void {
    this.health?.stop();
  }
}

/**
 * The agent's services by code. A reload replaces the table's entries in
 * place: unchanged services keep their object (and health), changed ones
 * are replaced, and `onChange` announces the new set on the open
 * connection, which stays up.
 */
export class ServiceTable {
  private readonly byCode = new Map<string, LocalService>();
  onChange: () => void = () => undefined;

  constructor(
    configs: readonly AgentServiceConfig[],
    private readonly logger: Logger,
  ) {
    for (const c of configs) this.byCode.set(c.code, this.make(c));
  }

  get(code: string): LocalService | undefined {
    return this.byCode.get(code);
  }

  all(): LocalService[] {
    return [...this.byCode.values()];
  }

  announcements(): ServiceAnnouncement[] {
    return this.all().map((s) => s.announcement());
  }

  update(configs: readonly AgentServiceConfig[]): void {
    const next = new Map(configs.map((c) => [c.code, c]));
    let changed = false;
    for (const [code, s] of this.byCode) {
      const c = next.get(code);
      if (c !== undefined && JSON.stringify(c) === JSON.stringify(s.config)) continue;
      s.stop();
      this.byCode.delete(code);
      changed = true;
    }
    for (const c of configs) {
      if (this.byCode.has(c.code)) continue;
      this.byCode.set(c.code, this.make(c));
      changed = true;
    }
    if (changed) {
      this.logger.info({ services: [...this.byCode.keys()] }, 'agent: services reloaded');
      this.onChange();
    }
  }

  /** A service's health changed: announce it (withdrawn services are listed with up: false). */
  setUp(s: LocalService, up: boolean, reason: string): void {
    if (s.up === up || this.byCode.get(s.code) !== s) return;
    s.up = up;
    if (up) this.logger.info({ code: s.code, reason }, 'agent: local service is healthy again');
    else this.logger.warn({ code: s.code, reason }, 'agent: local service is unhealthy, withdrawn');
    this.onChange();
  }

  /** (Re)starts every service's health check (after stop(), when the agent starts again). */
  start(): void {
    for (const s of this.byCode.values()) s.start();
  }

  stop(): void {
    for (const s of this.byCode.values()) s.stop();
  }

  /** Makes a service and starts its health check (whose changes come back through setUp). */
  protected make(c: AgentServiceConfig): LocalService {
    const s = new LocalService(c, (service, up, reason) => this.setUp(service, up, reason));
    s.start();
    return s;
  }
}
