import type { AgentServiceConfig } from '../../config/schemas/agent.js';
import type { Logger } from '../../observability/logger.js';
import type { ServiceAnnouncement } from '../protocol.js';

/** One local service the agent exposes, as configured, with its current health. */
export class LocalService {
  up = true;
  constructor(public config: AgentServiceConfig) {}

  get code(): string {
    return this.config.code;
  }

  announcement(): ServiceAnnouncement {
    const c = this.config;
    return { code: c.code, type: c.type, hosts: c.hosts, ...(c.remotePort !== undefined ? { remotePort: c.remotePort } : {}), up: this.up };
  }

  /** Stops what runs for it (its health check). */
  stop(): void {}
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
    if (up) this.logger.info({ code: s.code }, 'agent: local service is healthy again');
    else this.logger.warn({ code: s.code, reason }, 'agent: local service is unhealthy, withdrawn');
    this.onChange();
  }

  stop(): void {
    for (const s of this.byCode.values()) s.stop();
  }

  protected make(c: AgentServiceConfig): LocalService {
    return new LocalService(c);
  }
}
