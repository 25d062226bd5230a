import type { DiscoveryConfig } from '../config/schemas/discovery.js';
import type { Logger } from '../observability/logger.js';
import type { DiscoveryBackend } from './backend.js';
import { DnsDiscovery } from './dns.js';
import { EtcdDiscovery } from './etcd.js';
import { ZookeeperDiscovery } from './zookeeper.js';

/** The backend an upstream's `discovery:` block names (not started). */
export function createDiscoveryBackend(config: DiscoveryConfig, logger: Logger): DiscoveryBackend {
  switch (config.type) {
    case 'zookeeper':
      return new ZookeeperDiscovery(config, logger);
    case 'etcd':
      return new EtcdDiscovery(config, logger);
    case 'dns':
      return new DnsDiscovery(config, logger);
  }
}
