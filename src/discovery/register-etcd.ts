import type { Registration, RegistrationSpec } from './registration.js';

/** Where an etcd registration goes: the key `prefix/host:port`, held by a lease. */
export interface EtcdRegistry {
  readonly endpoints: readonly string[];
  readonly prefix: string;
  /** The lease's TTL (ms, whole seconds at etcd); default 10000. */
  readonly ttl?: number;
}

/** SKELETON: implemented in its own change. */
export function registerEtcd(_where: EtcdRegistry, _spec: RegistrationSpec): Promise<Registration> {
  return Promise.reject(new Error('not built yet'));
}
