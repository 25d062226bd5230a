import type { DiscoveryConfig } from '../config/schemas/discovery.js';
import type { Logger } from '../observability/logger.js';
import type { DiscoveryBackend, DiscoveryUpdate } from './backend.js';

/** SKELETON: implemented in its own change. */
export class ZookeeperDiscovery implements DiscoveryBackend {
  readonly type = 'zookeeper';
  readonly origin: string;
  constructor(
    readonly config: Extract<DiscoveryConfig, { type: 'zookeeper' }>,
    readonly logger: Logger,
  ) {
    this.origin = 'zookeeper';
  }
  start(onUpdate: (update: DiscoveryUpdate) => void): void {
    onUpdate({ ok: false, error: 'zookeeper discovery is not built yet' });
  }
  close(): void {}
}
