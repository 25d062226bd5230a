import type { DiscoveryConfig } from '../config/schemas/discovery.js';
import type { Logger } from '../observability/logger.js';
import type { DiscoveryBackend, DiscoveryUpdate } from './backend.js';

/** SKELETON: implemented in its own change. */
export class DnsDiscovery implements DiscoveryBackend {
  readonly type = 'dns';
  readonly origin: string;
  constructor(
    readonly config: Extract<DiscoveryConfig, { type: 'dns' }>,
    readonly logger: Logger,
  ) {
    this.origin = 'dns';
  }
  start(onUpdate: (update: DiscoveryUpdate) => void): void {
    onUpdate({ ok: false, error: 'dns discovery is not built yet' });
  }
  close(): void {}
}
