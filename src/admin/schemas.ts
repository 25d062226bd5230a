import { z } from 'zod';
import { CONNECTION_KINDS } from '../runtime/connection-registry.js';

/**
 * The admin API's response bodies, as zod schemas: the OpenAPI description
 * (openapi.ts) is generated from them, and its test validates real
 * responses against what it generates. Request bodies and resources use
 * the config's own schemas (config/schema.ts).
 */

const isoTime = z.string().describe('ISO 8601 date and time (UTC)');

/** `{ path, message }`: one problem of a document, `path` in dotted form (`routes[2].upstream`). */
export const problemSchema = z.object({ path: z.string(), message: z.string() });

/** One process's part in POST /config/reload: its worker index (0 for a single process), whether it applied the document, and why not. */
const workerReload = z.looseObject({ index: z.number().int(), ok: z.boolean(), error: z.string().optional() });

/**
 * Every error: `{ error, code }`, with `errors` (invalid documents),
 * `referencedBy` (a resource still in use) and `workers` (POST
 * /config/reload refused by some process) where they apply.
 */
export const errorSchema = z.object({
  error: z.string().describe('What went wrong, for people'),
  code: z.string().describe('Stable, for programs: NOT_FOUND, BAD_REQUEST, ADMIN_UNAUTHORIZED, PROFILE_RUNNING…'),
  requestId: z.string().optional(),
  errors: z.array(problemSchema).optional(),
  referencedBy: z.array(z.object({ kind: z.string(), name: z.string(), path: z.string() })).optional(),
  workers: z.array(workerReload).optional(),
});

export const healthSchema = z.object({ status: z.literal('ok') });

export const readySchema = z.object({
  status: z.string().describe('ready; degraded (with 200) while a config store cannot be reached and the last good config serves; draining or stopping (with 503) once a graceful stop began'),
  source: z
    .object({
      origin: z.string(),
      state: z.enum(['ok', 'error', 'degraded']),
      revision: z.string(),
      error: z.string().optional(),
    })
    .optional()
    .describe('The config source and whether its last document was applied'),
});

const targetStatus = z.looseObject({ address: z.string(), healthy: z.boolean(), inflight: z.number() });

export const statusSchema = z.object({
  version: z.number().int().describe('Snapshot version: 1 for the first config, +1 per applied change'),
  listeners: z.array(
    z.looseObject({
      name: z.string(),
      protocol: z.string(),
      address: z.string().nullable().describe('The bound host:port, null while not bound'),
      connections: z.number().int(),
    }),
  ),
  upstreams: z.array(
    z.object({
      name: z.string(),
      balancer: z.string(),
      panic: z.boolean(),
      circuitBreaker: z.unknown(),
      targets: z.array(targetStatus),
      discovery: z
        .object({
          type: z.string(),
          origin: z.string(),
          state: z.enum(['starting', 'ok', 'error', 'holding-empty']),
          targets: z.number().int(),
          skipped: z.array(z.object({ entry: z.string(), reason: z.string() })),
          error: z.string().optional(),
          changedAt: z.string().optional(),
          failures: z.number().int(),
        })
        .optional()
        .describe('The discovery block\'s state: where it looks, whether it answers, entries left out'),
    }),
  ),
});

const statsView = z.looseObject({
  requests: z.number(),
  statusClasses: z.array(z.number()),
  bytesReceived: z.number(),
  bytesSent: z.number(),
  latency: z.object({ buckets: z.array(z.number()), counts: z.array(z.number()), sumMs: z.number() }),
  today: z.number(),
});

export const statsSchema = z.object({
  route: z.record(z.string(), statsView),
  upstream: z.record(z.string(), statsView),
  target: z.record(z.string(), statsView),
  consumer: z.record(z.string(), statsView),
});

export const connectionsSchema = z.object({
  connections: z.array(
    z.object({
      id: z.string(),
      kind: z.enum(CONNECTION_KINDS),
      listener: z.string(),
      peer: z.string(),
      route: z.string().optional(),
      upstream: z.string().optional(),
      target: z.string().optional(),
      startedAt: isoTime,
      ageMs: z.number(),
      bytesIn: z.number().nullable(),
      bytesOut: z.number().nullable(),
    }),
  ),
});

export const closingSchema = z.object({ id: z.string(), status: z.literal('closing'), connections: z.number().int().optional() });

export const agentsSchema = z.object({
  agents: z.array(
    z.object({
      id: z.string(),
      listener: z.string(),
      peer: z.string(),
      connection: z.string().nullable(),
      connectedAt: isoTime,
      ageMs: z.number(),
      services: z.array(
        z.object({ code: z.string(), type: z.string(), hosts: z.array(z.string()), remotePort: z.number().nullable(), up: z.boolean(), identity: z.string() }),
      ),
      refused: z.array(z.object({ code: z.string(), reason: z.string() })),
      streams: z.object({ open: z.number(), total: z.number() }),
      lastPingAt: isoTime.nullable(),
      rttMs: z.number().nullable(),
    }),
  ),
});

const bucketUsage = z.object({ key: z.string(), remaining: z.number().int(), limit: z.number().nullable(), resetAt: isoTime });
const usage = <T extends z.ZodType>(key: T) => ({ keys: z.array(key), truncated: z.boolean() });

export const limitsSchema = z.object({
  maxKeys: z.number().int().describe('The most keys listed per limit'),
  routes: z.array(
    z.object({
      route: z.string(),
      middleware: z.literal('rate-limit'),
      policy: z.string(),
      per: z.string(),
      rate: z.number(),
      burst: z.number(),
      ...usage(bucketUsage),
    }),
  ),
  consumerQuota: z.object({
    middleware: z.literal('consumer-quota'),
    routes: z.array(z.string()),
    qps: z.object(usage(bucketUsage)),
    qpd: z.object(usage(z.object({ key: z.string(), day: z.string(), count: z.number().int(), limit: z.number().nullable(), resetAt: isoTime }))),
  }),
  listeners: z.array(
    z.object({
      listener: z.string(),
      middleware: z.literal('rate-limit'),
      index: z.number().int(),
      per: z.enum(['ip', 'listener']),
      rate: z.number(),
      burst: z.number(),
      ...usage(bucketUsage),
    }),
  ),
});

/** A `.cpuprofile` (Chrome DevTools' format, the inspector's Profiler.Profile). */
export const cpuProfileSchema = z.looseObject({
  nodes: z.array(z.looseObject({ id: z.number().int(), callFrame: z.looseObject({ functionName: z.string() }) })),
  startTime: z.number(),
  endTime: z.number(),
  samples: z.array(z.number().int()),
  timeDeltas: z.array(z.number()),
});

/** A `.heapsnapshot` (V8's format). */
export const heapSnapshotSchema = z.looseObject({
  snapshot: z.looseObject({ meta: z.looseObject({}), node_count: z.number().int(), edge_count: z.number().int() }),
  nodes: z.array(z.number()),
  edges: z.array(z.number()),
  strings: z.array(z.string()),
});

export const revisionSchema = z.object({ revision: z.string(), version: z.number().int() });
/** POST /config/reload: the admin-serving process's revision (null when not known) and snapshot version, and every process's part. */
export const reloadSchema = z.object({ revision: z.string().nullable(), version: z.number().int(), workers: z.array(workerReload) });
export const validationSchema = z.object({ valid: z.boolean(), errors: z.array(problemSchema) });
export const deletedSchema = z.object({ deleted: z.string() });
