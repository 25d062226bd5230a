import { isIP } from 'node:net';
import { z } from 'zod';
import { parseHostPort } from '../../net/address.js';
import { duration, int } from '../values.js';
import { etcdEndpoints, sessionTimeout, storePath, zookeeperServers } from './stores.js';

/** A DNS server as node:dns setServers takes it: an IP literal, `ip:port` or `[ipv6]:port` (no names: resolving the resolver would need a resolver). */
export function isDnsServer(value: string): boolean {
  if (isIP(value) !== 0) return true;
  const hp = parseHostPort(value);
  return hp !== undefined && isIP(hp.host) !== 0 && hp.port >= 1;
}

/** Settings every kind of discovery has. */
const common = {
  /**
   * An answer with no target at all is applied only once it has lasted this
   * long (the last targets keep serving meanwhile): a guard against a store
   * or DNS wiping every target at once. 0 = apply at once.
   */
  emptyGrace: duration(0, 3_600_000, '0 to 1h').default(5_000),
};

/**
 * An upstream's `discovery:` — a live source of targets besides (or instead
 * of) `targets:`. Discovered targets get the upstream's balancer, health
 * checks and statistics like configured ones. See docs/discovery.md.
 */
export const discoverySchema = z.discriminatedUnion(
  'type',
  [
    /** Each child znode of `path` is a target: `host:port` as its name, or `{"address","weight"}` / `host:port` as its data. */
    z.strictObject({
      type: z.literal('zookeeper'),
      servers: zookeeperServers,
      path: storePath,
      sessionTimeout,
      ...common,
    }),
    /** Each key under `prefix` is a target: `host:port` or `{"address","weight"}` as its value (usually held by a lease). */
    z.strictObject({
      type: z.literal('etcd'),
      endpoints: etcdEndpoints,
      prefix: storePath,
      ...common,
    }),
    /**
     * A DNS name: A/AAAA records (with `port`) or SRV records (their own
     * ports and weights; only the lowest priority is used, RFC 2782).
     * Re-resolved on the records' TTL, kept within [minTtl, maxTtl].
     */
    z.strictObject({
      type: z.literal('dns'),
      name: z.string().regex(/^(?=.{1,253}\.?$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$/, 'must be a DNS name'),
      record: z.enum(['A', 'AAAA', 'SRV'], 'must be A, AAAA or SRV').default('A'),
      /** The targets' port (A/AAAA; SRV records carry their own). */
      port: int(1, 65_535).optional(),
      /** DNS servers as ip or ip:port; default: the system's resolvers. */
      servers: z.array(z.string().refine(isDnsServer, 'must be an IP address: ip, ip:port or [ipv6]:port (port 1-65535)')).min(1, 'needs at least one server').optional(),
      minTtl: duration(100, 3_600_000, '100ms to 1h').default(1_000),
      maxTtl: duration(100, 86_400_000, '100ms to 1d').default(300_000),
      /** Longest wait for one answer. */
      timeout: duration(100, 60_000, '100ms to 1m').default(2_000),
      ...common,
    }),
  ],
  { error: (iss) => (iss.code === 'invalid_union' ? 'type must be zookeeper, etcd or dns' : undefined) },
).superRefine((d, ctx) => {
  if (d.type !== 'dns') return;
  if (d.record !== 'SRV' && d.port === undefined) ctx.addIssue({ code: 'custom', path: ['port'], message: `an ${d.record} record carries no port: set port` });
  if (d.record === 'SRV' && d.port !== undefined) ctx.addIssue({ code: 'custom', path: ['port'], message: 'SRV records carry their own ports: remove port' });
  if (d.minTtl > d.maxTtl) ctx.addIssue({ code: 'custom', path: ['minTtl'], message: 'must not be more than maxTtl' });
});

export type DiscoveryConfig = z.output<typeof discoverySchema>;
