import { z } from 'zod';
import { parseHostPort } from '../../net/address.js';
import { duration } from '../values.js';

/**
 * How Portico reaches an etcd cluster or a ZooKeeper ensemble: shared by
 * `configSource` (config stores) and upstream `discovery`.
 */

/** An etcd v3 client URL: `http://host:port` (or https). */
export const etcdEndpoints = z
  .array(z.string().regex(/^https?:\/\/[^/\s]+\/?$/, 'must be an etcd client URL such as http://127.0.0.1:2379'), 'must be a list of etcd client URLs')
  .min(1, 'needs at least one endpoint');

/** A ZooKeeper server as `host:port`. */
export const zookeeperServers = z
  .array(
    z.string().refine((v) => parseHostPort(v) !== undefined && parseHostPort(v)!.port > 0, 'must be host:port, e.g. 127.0.0.1:2181'),
    'must be a list of host:port',
  )
  .min(1, 'needs at least one server');

/** An absolute key prefix or znode path: `/portico`, `/services/orders` (no trailing `/`, no empty segment). */
export const storePath = z.string().regex(/^(\/[^/\s]+)+$/, 'must be an absolute path such as /portico (no trailing "/")');

/** Longest wait for the store when connecting or for one request. */
const storeTimeout = duration(100, 60_000, '100ms to 1m').default(5_000);
/** ZooKeeper session timeout: how long the ensemble keeps the session (and its ephemeral nodes) of a client it no longer hears. */
export const sessionTimeout = duration(1_000, 60_000, '1s to 1m').default(10_000);

/** The prefix's default. */
export const DEFAULT_STORE_PREFIX = '/portico';

/**
 * `configSource:` — where the shared sections of the config (`upstreams`,
 * `routes`, `consumers`, `certificates`) live. `file` (the default): this
 * file. `etcd` / `zookeeper`: one document at PREFIX/config, watched; this
 * file keeps the rest (listeners, admin, log…). See docs/config-stores.md.
 */
export const configSourceSchema = z
  .discriminatedUnion(
    'type',
    [
      z.strictObject({ type: z.literal('file') }),
      z.strictObject({
        type: z.literal('etcd'),
        endpoints: etcdEndpoints,
        prefix: storePath.default(DEFAULT_STORE_PREFIX),
        timeout: storeTimeout,
        /** The local copy of the last good document (read when the store is down at start); default: next to this file. */
        cache: z.string().min(1, 'must be a file path').optional(),
      }),
      z.strictObject({
        type: z.literal('zookeeper'),
        servers: zookeeperServers,
        path: storePath.default(DEFAULT_STORE_PREFIX),
        timeout: storeTimeout,
        sessionTimeout,
        cache: z.string().min(1, 'must be a file path').optional(),
      }),
    ],
    { error: (iss) => (iss.code === 'invalid_union' ? 'type must be file, etcd or zookeeper' : undefined) },
  )
  .default({ type: 'file' });

export type ConfigSourceConfig = z.output<typeof configSourceSchema>;
export type StoreConfigSource = Exclude<ConfigSourceConfig, { type: 'file' }>;
