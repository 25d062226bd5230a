import { z } from 'zod';
import { configSchema, listenerSchema, routeSchema, upstreamSchema } from '../config/schema.js';
import { consumerSchema } from '../config/schemas/consumers.js';
import { certificateResourceSchema } from '../config/schemas/tls.js';
import { CONNECTION_KINDS } from '../runtime/connection-registry.js';
import { PROFILE_SECONDS } from './diagnostics.js';
import {
  agentsSchema,
  closingSchema,
  connectionsSchema,
  cpuProfileSchema,
  deletedSchema,
  errorSchema,
  healthSchema,
  heapSnapshotSchema,
  limitsSchema,
  readySchema,
  reloadSchema,
  revisionSchema,
  statsSchema,
  statusSchema,
  validationSchema,
} from './schemas.js';

/**
 * GET /openapi.json: an OpenAPI 3.1 description of every admin endpoint.
 * Its schemas are generated from the zod schemas the gateway itself uses:
 * the config's (request bodies and resources, as written: `io: 'input'`,
 * so defaults are optional) and admin/schemas.ts (response bodies). What
 * zod cannot express in JSON Schema (transforms, refinements) is left
 * open (`unrepresentable: 'any'`): the document is never stricter than
 * the validator, and the validator has the last word.
 */
export function openApiDocument(): Record<string, unknown> {
  cached ??= build();
  return cached;
}

let cached: Record<string, unknown> | undefined;

type JsonSchema = Record<string, unknown>;

/** Resource kinds of the admin API: path segment → component name, identity field and schema. */
const RESOURCES = {
  listeners: { one: 'Listener', key: 'name', schema: listenerSchema },
  routes: { one: 'Route', key: 'name', schema: routeSchema },
  upstreams: { one: 'Upstream', key: 'name', schema: upstreamSchema },
  consumers: { one: 'Consumer', key: 'id', schema: consumerSchema },
  certificates: { one: 'Certificate', key: 'name', schema: certificateResourceSchema },
} as const;

/**
 * A zod schema as a JSON Schema (2020-12) to sit at `#/components/schemas/NAME`:
 * its own `$defs` references (and `#`, itself) are rewritten to point there,
 * since inside an OpenAPI document they resolve against the document root.
 */
function component(name: string, schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _, ...json } = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as JsonSchema;
  const base = `#/components/schemas/${name}`;
  const rewrite = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(rewrite);
    if (v === null || typeof v !== 'object') return v;
    const out: JsonSchema = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === '$ref' && typeof x === 'string' && (x === '#' || x.startsWith('#/'))) out[k] = base + x.slice(1);
      else out[k] = rewrite(x);
    }
    return out;
  };
  return rewrite(json) as JsonSchema;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const body = (schema: unknown, description: string, headers?: Record<string, unknown>) => ({
  description,
  ...(headers !== undefined ? { headers } : {}),
  content: { 'application/json': { schema } },
});
const error = (description: string) => body(ref('Error'), description);
const etag = { ETag: { $ref: '#/components/headers/ETag' } };
const ifMatch = { $ref: '#/components/parameters/IfMatch' };

const UNAUTHORIZED = { '401': error('ADMIN_UNAUTHORIZED: `admin.token` is set and the request does not carry it as `Authorization: Bearer TOKEN`') };

/** The errors every write of the config answers, besides its own. */
const WRITE_ERRORS = {
  '400': error('INVALID_JSON, INVALID_YAML, INVALID_NAME, NAME_MISMATCH, BAD_REQUEST, or INVALID_CONFIG with `errors: [{ path, message }]`'),
  ...UNAUTHORIZED,
  '403': error('CONFIG_READ_ONLY: `admin.writeBack: false`, or the config file cannot be written'),
  '409': error('DANGLING_REFERENCE with `errors`, APPLY_FAILED (say, a port in use), ALREADY_EXISTS, or IN_USE with `referencedBy`'),
  '412': error('PRECONDITION_FAILED: `If-Match` names another revision than the current one'),
  '413': error('BODY_TOO_LARGE'),
  '415': error('UNSUPPORTED_MEDIA_TYPE'),
  '500': error('WRITE_FAILED (applied but not stored, so undone), SOURCE_UNAVAILABLE or INTERNAL'),
};

/** A whole document: JSON, or YAML text (`application/yaml`). */
const documentBody = { required: true, content: { 'application/json': { schema: ref('Config') }, 'application/yaml': { schema: { type: 'string' } } } };

function resourcePaths(): Record<string, unknown> {
  const paths: Record<string, unknown> = {};
  for (const [kind, r] of Object.entries(RESOURCES)) {
    const tags = ['resources'];
    const name = { name: 'name', in: 'path', required: true, description: `The ${r.one.toLowerCase()}'s \`${r.key}\``, schema: { type: 'string' } };
    const item = body(ref(r.one), `The ${r.one.toLowerCase()} as written in the document (\`\${ENV}\` placeholders kept, defaults not filled in)`, etag);
    const input = { required: true, content: { 'application/json': { schema: ref(r.one) } } };
    paths[`/${kind}`] = {
      get: {
        operationId: `list-${kind}`,
        tags,
        summary: `Every ${r.one.toLowerCase()} of the document`,
        responses: { '200': body({ type: 'object', required: ['items'], properties: { items: { type: 'array', items: ref(r.one) } } }, `The ${kind}`, etag), ...UNAUTHORIZED },
      },
      post: {
        operationId: `create-${kind.slice(0, -1)}`,
        tags,
        summary: `Adds a ${r.one.toLowerCase()} (its \`${r.key}\` in the body)`,
        parameters: [ifMatch],
        requestBody: input,
        responses: {
          '201': body(ref(r.one), 'Created and applied', { ...etag, Location: { description: `/${kind}/{name}`, schema: { type: 'string' } } }),
          ...WRITE_ERRORS,
         
        },
      },
    };
    paths[`/${kind}/{name}`] = {
      parameters: [name],
      get: {
        operationId: `get-${kind.slice(0, -1)}`,
        tags,
        summary: `One ${r.one.toLowerCase()}`,
        responses: { '200': item, '400': error('INVALID_NAME'), ...UNAUTHORIZED, '404': error('RESOURCE_NOT_FOUND') },
      },
      put: {
        operationId: `put-${kind.slice(0, -1)}`,
        tags,
        summary: `Replaces the ${r.one.toLowerCase()}, or creates it`,
        parameters: [ifMatch],
        requestBody: input,
        responses: { '200': body(ref(r.one), 'Replaced and applied', etag), '201': body(ref(r.one), 'Created and applied', etag), ...WRITE_ERRORS },
      },
      patch: {
        operationId: `patch-${kind.slice(0, -1)}`,
        tags,
        summary: `Changes the ${r.one.toLowerCase()} by a JSON merge patch (RFC 7396)`,
        parameters: [ifMatch],
        requestBody: { required: true, content: { 'application/merge-patch+json': { schema: ref('MergePatch') }, 'application/json': { schema: ref('MergePatch') } } },
        responses: { '200': body(ref(r.one), 'Changed and applied', etag), ...WRITE_ERRORS, '404': error('RESOURCE_NOT_FOUND') },
      },
      delete: {
        operationId: `delete-${kind.slice(0, -1)}`,
        tags,
        summary: `Removes the ${r.one.toLowerCase()}; 409 IN_USE while something refers to it`,
        parameters: [ifMatch],
        responses: { '200': body(ref('Deleted'), 'Removed and applied', etag), ...WRITE_ERRORS, '404': error('RESOURCE_NOT_FOUND') },
      },
    };
  }
  return paths;
}

function build(): Record<string, unknown> {
  const schemas: Record<string, JsonSchema> = {
    Error: component('Error', errorSchema, 'output'),
    Health: component('Health', healthSchema, 'output'),
    Ready: component('Ready', readySchema, 'output'),
    Status: component('Status', statusSchema, 'output'),
    Stats: component('Stats', statsSchema, 'output'),
    Connections: component('Connections', connectionsSchema, 'output'),
    Closing: component('Closing', closingSchema, 'output'),
    Agents: component('Agents', agentsSchema, 'output'),
    Limits: component('Limits', limitsSchema, 'output'),
    CpuProfile: component('CpuProfile', cpuProfileSchema, 'output'),
    HeapSnapshot: component('HeapSnapshot', heapSnapshotSchema, 'output'),
    Config: component('Config', configSchema, 'input'),
    Revision: component('Revision', revisionSchema, 'output'),
    Reload: component('Reload', reloadSchema, 'output'),
    Validation: component('Validation', validationSchema, 'output'),
    Deleted: component('Deleted', deletedSchema, 'output'),
    MergePatch: { type: 'object', description: 'A JSON merge patch (RFC 7396): members set to null are removed, objects merge, anything else replaces' },
    OpenApi: { type: 'object', required: ['openapi', 'info', 'paths'], properties: { openapi: { type: 'string' } } },
  };
  for (const r of Object.values(RESOURCES)) schemas[r.one] = component(r.one, r.schema, 'input');

  const kinds = { name: 'kind', in: 'query', required: false, description: 'Only connections of this kind', schema: { type: 'string', enum: [...CONNECTION_KINDS] } };
  const listener = { name: 'listener', in: 'query', required: false, description: 'Only connections of this listener', schema: { type: 'string' } };
  const id = (what: string) => ({ name: 'id', in: 'path', required: true, description: what, schema: { type: 'string' } });
  const attachment = { 'Content-Disposition': { description: 'attachment; filename="portico-PID-TIME.EXT"', schema: { type: 'string' } } };

  const paths: Record<string, unknown> = {
    '/health': {
      get: { operationId: 'health', tags: ['process'], summary: 'Liveness: 200 while the process runs', security: [], responses: { '200': body(ref('Health'), 'Alive') } },
    },
    '/ready': {
      get: {
        operationId: 'ready',
        tags: ['process'],
        summary: 'Readiness for load balancers',
        security: [],
        responses: { '200': body(ref('Ready'), 'Taking traffic'), '503': body(ref('Ready'), 'A graceful stop began (draining, stopping)') },
      },
    },
    '/status': {
      get: { operationId: 'status', tags: ['observe'], summary: 'Snapshot version, listeners and their bound addresses, upstreams and target health', responses: { '200': body(ref('Status'), 'The running gateway'), ...UNAUTHORIZED } },
    },
    '/stats': {
      get: { operationId: 'stats', tags: ['observe'], summary: 'Request statistics per route, upstream, target and consumer', responses: { '200': body(ref('Stats'), 'Statistics'), ...UNAUTHORIZED, '500': error('INTERNAL') } },
    },
    '/metrics': {
      get: {
        operationId: 'metrics',
        tags: ['observe'],
        summary: 'Prometheus metrics (text exposition format 0.0.4)',
        responses: { '200': { description: 'Every metric of every worker', content: { 'text/plain': { schema: { type: 'string' } } } }, ...UNAUTHORIZED },
      },
    },
    '/connections': {
      get: {
        operationId: 'connections',
        tags: ['observe'],
        summary: 'Live connections, streams and sessions',
        parameters: [kinds, listener],
        responses: { '200': body(ref('Connections'), 'The connections'), '400': error('BAD_REQUEST: an unknown or repeated filter'), ...UNAUTHORIZED, '500': error('INTERNAL') },
      },
    },
    '/connections/{id}': {
      delete: {
        operationId: 'close-connection',
        tags: ['observe'],
        summary: 'Closes one connection, stream or session its own way',
        parameters: [id('The id GET /connections gave')],
        responses: { '202': body(ref('Closing'), 'Being closed'), ...UNAUTHORIZED, '404': error('CONNECTION_NOT_FOUND'), '500': error('INTERNAL') },
      },
    },
    '/agents': {
      get: { operationId: 'agents', tags: ['observe'], summary: 'Connected tunnel agents and relay services', responses: { '200': body(ref('Agents'), 'The agents'), ...UNAUTHORIZED } },
    },
    '/agents/{id}': {
      delete: {
        operationId: 'disconnect-agent',
        tags: ['observe'],
        summary: 'Closes every connection of one agent',
        parameters: [id("The agent's id")],
        responses: { '202': body(ref('Closing'), 'Being closed'), '400': error('BAD_REQUEST: bad percent-encoding'), ...UNAUTHORIZED, '404': error('UNKNOWN_AGENT') },
      },
    },
    '/limits': {
      get: {
        operationId: 'limits',
        tags: ['observe'],
        summary: 'The keys every rate limit and consumer quota tracks, with their usage (at most `maxKeys` per limit)',
        responses: { '200': body(ref('Limits'), 'Usage per limit and key'), ...UNAUTHORIZED, '500': error('INTERNAL') },
      },
    },
    '/debug/profile': {
      post: {
        operationId: 'cpu-profile',
        tags: ['diagnostics'],
        summary: `A CPU profile of the process serving the admin API, for \`seconds\` (with \`admin.diagnostics: true\`)`,
        parameters: [
          {
            name: 'seconds',
            in: 'query',
            required: false,
            schema: { type: 'integer', minimum: PROFILE_SECONDS.min, maximum: PROFILE_SECONDS.max, default: PROFILE_SECONDS.default },
          },
        ],
        responses: {
          '200': body(ref('CpuProfile'), 'A .cpuprofile (Chrome DevTools)', attachment),
          '400': error('BAD_REQUEST: seconds is not a whole number from 1 to 60'),
          ...UNAUTHORIZED,
          '404': error('NOT_FOUND: admin.diagnostics is off'),
         
          '409': error('PROFILE_RUNNING: one profile or heap snapshot at a time'),
        },
      },
    },
    '/debug/heap': {
      post: {
        operationId: 'heap-snapshot',
        tags: ['diagnostics'],
        summary: 'A heap snapshot of the process serving the admin API, streamed (with `admin.diagnostics: true`; the process pauses while V8 writes it)',
        responses: {
          '200': body(ref('HeapSnapshot'), 'A .heapsnapshot (Chrome DevTools)', attachment),
          '400': error('BAD_REQUEST: a query parameter was given'),
          ...UNAUTHORIZED,
          '404': error('NOT_FOUND: admin.diagnostics is off'),
         
          '409': error('PROFILE_RUNNING: one profile or heap snapshot at a time'),
        },
      },
    },
    '/openapi.json': {
      get: { operationId: 'openapi', tags: ['process'], summary: 'This document', responses: { '200': body(ref('OpenApi'), 'OpenAPI 3.1'), ...UNAUTHORIZED } },
    },
    '/config': {
      get: {
        operationId: 'get-config',
        tags: ['config'],
        summary: 'The whole document as written (`${ENV}` placeholders kept)',
        responses: { '200': body(ref('Config'), 'The document', etag), ...UNAUTHORIZED, '404': error('NOT_FOUND: no config source'), '500': error('SOURCE_UNAVAILABLE') },
      },
      put: {
        operationId: 'put-config',
        tags: ['config'],
        summary: 'Replaces the whole document: validated, applied, then written back',
        parameters: [ifMatch],
        requestBody: documentBody,
        responses: { '200': body(ref('Revision'), 'Applied', etag), ...WRITE_ERRORS },
      },
    },
    '/config/validate': {
      post: {
        operationId: 'validate-config',
        tags: ['config'],
        summary: 'Validates a document without applying it',
        requestBody: documentBody,
        responses: { '200': body(ref('Validation'), 'Whether it is valid, and why not'), '400': error('INVALID_JSON, INVALID_YAML'), ...UNAUTHORIZED, '413': error('BODY_TOO_LARGE'), '415': error('UNSUPPORTED_MEDIA_TYPE') },
      },
    },
    '/config/reload': {
      post: {
        operationId: 'reload-config',
        tags: ['config'],
        summary: 'Loads the document from the config source again, in every worker',
        responses: {
          '200': body(ref('Reload'), 'Every process applied it'),
          ...UNAUTHORIZED,
          '409': error('APPLY_FAILED with `workers`: some process refused it (each refusing one keeps its running config)'),
          '500': error('INTERNAL'),
        },
      },
    },
    ...resourcePaths(),
  };

  return {
    openapi: '3.1.0',
    info: {
      title: 'Portico admin API',
      version: '1',
      description:
        'Observe and change a running Portico gateway. Every endpoint but /health and /ready needs `Authorization: Bearer TOKEN` when `admin.token` is set. Errors are `{ error, code }` JSON (components/schemas/Error); a method an endpoint does not have answers 405 METHOD_NOT_ALLOWED with `Allow`, an unknown path 404 NOT_FOUND. Resources and /config are the document as written: a value given as a `${ENV}` placeholder is served as that string.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    security: [{ bearer: [] }],
    tags: [
      { name: 'process', description: 'Liveness, readiness, this description' },
      { name: 'observe', description: 'Read the running gateway' },
      { name: 'diagnostics', description: 'Live profiling (admin.diagnostics)' },
      { name: 'config', description: 'The whole document' },
      { name: 'resources', description: 'listeners, routes, upstreams, consumers, certificates' },
    ],
    paths,
    components: {
      schemas,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'admin.token' } },
      headers: { ETag: { description: 'The config revision, quoted: `"REVISION"`', schema: { type: 'string' } } },
      parameters: {
        IfMatch: { name: 'If-Match', in: 'header', required: false, description: 'Write only if the config is still at this revision (the ETag of a read)', schema: { type: 'string' } },
      },
    },
  };
}
