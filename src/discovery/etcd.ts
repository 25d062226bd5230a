import type { DiscoveryConfig } from '../config/schemas/discovery.js';
import type { Logger } from '../observability/logger.js';
import type { DiscoveryBackend, DiscoveryUpdate } from './backend.js';

/** SKELETON: implemented in its own change. */
export class EtcdDiscovery implements DiscoveryBackend {
  readonly type = 'etcd';
  readonly origin: string;
  constructor(
    readonly config: Extract<DiscoveryConfig, { type: 'etcd' }>,
    readonly logger: Logger,
  ) {
    this.origin = 'etcd';
  }
  start(onUpdate: (update: DiscoveryUpdate) => void): void {
    onUpdate({ ok: false, error: 'etcd discovery is not built yet' });
  }
  close(): void {}
}
