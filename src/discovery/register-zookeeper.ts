import type { Registration, RegistrationSpec } from './registration.js';

/** Where a ZooKeeper registration goes: an ephemeral child `host:port` of `path`. */
export interface ZookeeperRegistry {
  readonly servers: readonly string[];
  readonly path: string;
  /** Session timeout asked of the ensemble (ms); default 10000. */
  readonly sessionTimeout?: number;
}

/** SKELETON: implemented in its own change. */
export function registerZookeeper(_where: ZookeeperRegistry, _spec: RegistrationSpec): Promise<Registration> {
  return Promise.reject(new Error('not built yet'));
}
