import { z } from 'zod';
import { parseDuration } from './duration.js';
import { parseHostPort } from '../net/address.js';
import { bool, headerName, headerValue, listenAddress } from './values.js';
export { listenAddress } from './values.js';
import { stateSchema } from './schemas/state.js';
import { consumerSchema, tokenEndpointSchema } from './schemas/consumers.js';
import { MIDDLEWARE_SCHEMAS } from './schemas/middlewares.js';
import { BALANCERS, circuitBreakerSchema, healthCheckSchema, retriesSchema } from './schemas/upstream-policy.js';
import { configSourceSchema } from './schemas/stores.js';
import { discoverySchema } from './schemas/discovery.js';
import { certificateResourceSchema, listenerTlsSchema, upstreamTlsSchema } from './schemas/tls.js';
import { websocketSchema } from './schemas/websocket.js';
import { grpcMetadataSchema } from './schemas/grpc.js';
import { httpAccessLogSchema } from './schemas/access-log.js';
import { adminSchema } from './schemas/admin.js';
import { tracingSchema } from './schemas/tracing.js';
import { relayListenerSchema, serviceCode, tunnelListenerSchema } from './schemas/tunnel.js';
import { forwardProxyListenerSchema, sealedListenerSchema, tcpListenerSchema, tlsListenerSchema, udpListenerSchema } from './schemas/l4.js';

/**
 * The config document's schema. Every object is strict (unknown keys are
 * errors) and every leaf says what it accepts in its error message, because
 * that message is what `portico validate` prints beside the field's path.
 * Cross-references (a route naming a listener) are checked in validate.ts.
 */

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const name = z.string().regex(NAME, 'must be 1-63 letters, digits, "_", "." or "-", starting with a letter or digit');

/** Integers may be written as numbers or, after `${ENV}` interpolation, as digit strings. */
const int = (min: number, max: number) =>
  z.preprocess(
    (v) => (typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v),
    z.number().int(`must be a whole number`).min(min, `must be >= ${min}`).max(max, `must be <= ${max}`),
  );


/** The longest timer Node can set (2^31-1 ms, about 24.8 days); a longer one would fire at once. */
const MAX_TIMER_MS = 2_147_483_647;

export const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined) {
    ctx.issues.push({ code: 'custom', input: v, message: 'must be a duration such as 500ms, 2s, 1m or 1h' });
    return z.NEVER;
  }
  if (ms > MAX_TIMER_MS) {
    ctx.issues.push({ code: 'custom', input: v, message: 'must be at most 596h (about 24.8 days, the longest timer Node.js can set)' });
    return z.NEVER;
  }
  return ms;
});

/** A target's `host:port`; a URL gets a hint, as it is the most common slip. */
const targetAddress = z.string().superRefine((v, ctx) => {
  const hp = parseHostPort(v);
  if (hp !== undefined && hp.port > 0) return;
  const url = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)/i.exec(v);
  const hint = url
    ? ` (write "${url[2]}${/:\d+$/.test(url[2]!) ? '' : `:${url[1]!.toLowerCase() === 'https' ? 443 : 80}`}"; the scheme is the upstream's protocol and tls keys, not part of the address)`
    : '';
  ctx.addIssue({ code: 'custom', message: `must be host:port with a port from 1 to 65535${hint}` });
});

/** A JavaScript regular expression; an invalid one says why (the engine's own message). */
const regex = z.string().superRefine((v, ctx) => {
  try {
    new RegExp(v);
  } catch (err) {
    const why = (err as Error).message.replace(/^Invalid regular expression: /, '');
    ctx.addIssue({ code: 'custom', message: `must be a valid regular expression: ${why}` });
  }
});

/** Headers the gateway itself owns on the upstream request; rules may not set or add them. */
const RESERVED = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'expect', 'x-request-id']);
const settableHeader = headerName.refine(
  (n) => !RESERVED.has(n.toLowerCase()),
  'is managed by the gateway (Host: use preserveHost; framing and hop-by-hop headers are set per connection)',
);
const headerRules = z.strictObject({
  set: z.record(settableHeader, headerValue).optional(),
  add: z.record(settableHeader, headerValue).optional(),
  remove: z.array(headerName).optional(),
});

const cidr = z.string().refine((v) => {
  // Checked precisely by net/ip-set.ts at compile time; this catches the obvious.
  return /^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(v);
}, 'must be an IP address or CIDR such as 10.0.0.0/8 or 2001:db8::/32');

const accessLog = httpAccessLogSchema;

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'CONNECT'] as const;

const headerMatch = z.union([
  z.string(),
  z.strictObject({ regex }),
  z.strictObject({ present: bool }),
]);

const match = z.strictObject({
  host: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  path: z.string().startsWith('/', 'must start with "/"').optional(),
  pathPrefix: z.string().startsWith('/', 'must start with "/"').optional(),
  pathRegex: regex.optional(),
  methods: z.array(z.preprocess((v) => (typeof v === 'string' ? v.toUpperCase() : v), z.enum(METHODS))).min(1).optional(),
  headers: z.record(headerName, headerMatch).optional(),
});

const httpListener = z.strictObject({
  name,
  /** `http`: HTTP/1.1 and cleartext HTTP/2 (prior knowledge) on one port. `https`: TLS, HTTP/1.1 and HTTP/2 by ALPN. */
  protocol: z.enum(['http', 'https']),
  listen: listenAddress,
  tls: listenerTlsSchema.optional(),
  http2: z
    .strictObject({
      /** Serve HTTP/2 (h2 by ALPN on https, h2c prior knowledge on http). */
      enabled: bool.default(true),
      /** Streams a client may open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS). */
      maxConcurrentStreams: int(1, 10_000).default(128),
    })
    .prefault({}),
  accessLog: accessLog.default(true),
  trustedProxies: z.array(cidr).default([]),
  timeouts: z
    .strictObject({
      /** Time to receive the complete request head. */
      headers: duration.default(30_000),
      /** Time to receive the whole request, body included; 0 disables. */
      request: duration.default(0),
      /** How long an idle downstream keep-alive connection is kept. */
      keepAlive: duration.default(60_000),
    })
    .prefault({})
    .refine((t) => t.request === 0 || t.request >= t.headers, {
      message: 'request must be 0 (off) or at least the headers timeout',
      path: ['request'],
    }),
  maxHeaderSize: int(1024, 1_048_576).default(16_384),
}).superRefine((l, ctx) => {
  if (l.protocol === 'https' && l.tls === undefined) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'is required with protocol: https' });
  if (l.protocol === 'http' && l.tls !== undefined) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'needs protocol: https' });
});

export const LISTENER_PROTOCOLS = ['http', 'https', 'tcp', 'tls', 'udp', 'sealed', 'forward-proxy', 'tunnel', 'relay'] as const;

/** A listener: HTTP (`http`, `https`: routes pick upstreams) or connection-level (schemas/l4.ts), by `protocol`. */
const listener = z.discriminatedUnion(
  'protocol',
  [httpListener, tcpListenerSchema, tlsListenerSchema, udpListenerSchema, sealedListenerSchema, forwardProxyListenerSchema, tunnelListenerSchema, relayListenerSchema],
  { error: (iss) => (iss.code === 'invalid_union' ? `must be one of ${LISTENER_PROTOCOLS.join(', ')}` : undefined) },
);

const upstream = z.strictObject({
  name,
  /** How Portico talks to the targets: `http1` (HTTP/1.1, TLS with `tls:`), `h2` (HTTP/2 over TLS), `h2c` (cleartext HTTP/2, prior knowledge). */
  protocol: z.enum(['http1', 'h2', 'h2c'], 'must be http1, h2 or h2c').default('http1'),
  tls: upstreamTlsSchema.optional(),
  balancer: z.enum(BALANCERS).default('weighted-round-robin'),
  hashKey: z
    .string()
    .regex(/^(ip|uri|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+|cookie:[^\s;=]+)$/, 'must be ip, uri, header:NAME or cookie:NAME')
    .default('ip'),
  /** `weight: 0` drains a target: it stays configured but is never picked. */
  /**
   * `{ address: host:port }`, or `{ tunnel: CODE }`: every live registration of that service
   * code (agents, relay services) is a target, joining and leaving as they connect.
   */
  targets: z
    .array(
      z.union(
        [
          z.strictObject({ address: targetAddress, weight: int(0, 10_000).default(1) }),
          z.strictObject({ tunnel: serviceCode, weight: int(0, 10_000).default(1) }),
        ],
        { error: (iss) => (iss.code === 'invalid_union' ? 'must be { address: host:port } or { tunnel: CODE }' : undefined) },
      ),
    )
    .default([]),
  /** A live source of targets (ZooKeeper, etcd, DNS), besides or instead of `targets`. */
  discovery: discoverySchema.optional(),
  timeouts: z
    .strictObject({
      connect: duration.refine((v) => v > 0, 'must be more than 0').default(5_000),
      /** Until the response head arrives; 0 = no limit. */
      response: duration.default(60_000),
      /** Longest silence while a body is transferred, and longest a pooled connection idles; 0 = no body limit. */
      idle: duration.default(60_000),
    })
    .prefault({}),
  /** Most pooled connections per target; 0 = no limit. */
  maxConnections: int(0, 100_000).default(0),
  /** L4 listeners: send a PROXY protocol header (v1 text, v2 binary) to the targets so they see the client's address. */
  proxyProtocol: z.enum(['none', 'v1', 'v2'], 'must be none, v1 or v2').default('none'),
  healthCheck: healthCheckSchema.optional(),
  circuitBreaker: circuitBreakerSchema.optional(),
  retries: retriesSchema.optional(),
}).superRefine((u, ctx) => {
  if (u.protocol === 'h2c' && u.tls !== undefined) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'h2c is cleartext: use protocol: h2 for HTTP/2 over TLS' });
  if (u.targets.length === 0 && u.discovery === undefined) ctx.addIssue({ code: 'custom', path: ['targets'], message: 'needs at least one target (or a discovery)' });
});

/**
 * One `middlewares:` entry: `{ <name>: <options> }` with exactly one known
 * name; the options are validated by that middleware's schema and the entry
 * becomes `{ name, options }`.
 */
const middlewareEntry = z.record(z.string(), z.unknown()).transform((entry, ctx) => {
  const keys = Object.keys(entry);
  const known = Object.keys(MIDDLEWARE_SCHEMAS);
  if (keys.length !== 1) {
    ctx.issues.push({ code: 'custom', input: entry, message: `must have exactly one key, the middleware name (${known.join(', ')})` });
    return z.NEVER;
  }
  const name = keys[0]!;
  const schema = MIDDLEWARE_SCHEMAS[name];
  if (!schema) {
    ctx.issues.push({ code: 'custom', input: entry, path: [name], message: `unknown middleware; known: ${known.join(', ')}` });
    return z.NEVER;
  }
  const parsed = schema.safeParse(entry[name] ?? {});
  if (!parsed.success) {
    for (const issue of parsed.error.issues) ctx.issues.push({ ...issue, path: [name, ...issue.path] } as never);
    return z.NEVER;
  }
  return { name, options: parsed.data as unknown };
});

const respond = z.strictObject({
  status: int(200, 599).default(200),
  headers: z.record(headerName, headerValue).default({}),
  body: z.union([z.string(), z.record(z.string(), z.unknown()), z.array(z.unknown())]).default(''),
});

const route = z
  .strictObject({
    name,
    listener: name,
    priority: int(-1_000_000, 1_000_000).default(0),
    match: match.prefault({}),
    stripPrefix: bool.default(false),
    rewrite: z.array(z.strictObject({ pattern: regex, replacement: z.string() })).default([]),
    requestHeaders: headerRules.optional(),
    responseHeaders: headerRules.optional(),
    preserveHost: bool.default(true),
    upstream: name.optional(),
    respond: respond.optional(),
    'token-endpoint': tokenEndpointSchema.optional(),
    middlewares: z.array(middlewareEntry).default([]),
    retries: retriesSchema.optional(),
    websocket: websocketSchema.prefault({}),
    grpcMetadata: grpcMetadataSchema.optional(),
  })
  .superRefine((r, ctx) => {
    const kinds = [r.match.path, r.match.pathPrefix, r.match.pathRegex].filter((v) => v !== undefined).length;
    if (kinds > 1) ctx.addIssue({ code: 'custom', path: ['match'], message: 'use only one of path, pathPrefix and pathRegex' });
    const ends = [r.upstream, r.respond, r['token-endpoint']].filter((v) => v !== undefined).length;
    if (ends !== 1) {
      ctx.addIssue({ code: 'custom', path: ['upstream'], message: 'a route needs exactly one of upstream, respond or token-endpoint' });
    }
    if (r.stripPrefix && r.match.pathPrefix === undefined) {
      ctx.addIssue({ code: 'custom', path: ['stripPrefix'], message: 'needs match.pathPrefix' });
    }
  });

export const configSchema = z.strictObject({
  /** Where upstreams, routes, consumers and certificates live: this file (default), etcd or ZooKeeper. */
  configSource: configSourceSchema,
  admin: adminSchema.optional(),
  tracing: tracingSchema.prefault({}),
  log: z
    .strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info') })
    .prefault({}),
  watch: bool.default(false),
  /** How long a graceful stop waits for in-flight requests before closing their connections. */
  shutdownTimeout: duration.default(10_000),
  /**
   * On SIGTERM, how long the admin API's /ready answers 503 while the
   * listeners still accept (so load balancers take the instance out first);
   * then the listeners close and in-flight work finishes. 0 = stop at once.
   */
  drain: duration.refine((v) => v <= 3_600_000, 'must be at most 1h').default(0),
  /**
   * Processes serving the listeners: 1 = this process; N > 1 = a primary
   * supervising N worker processes that share each port (SO_REUSEPORT where
   * the platform and Node have it, else node:cluster's shared handle); the
   * admin API is served by the first worker. Read at start only; see docs/workers.md.
   */
  workers: int(1, 256).default(1),
  /**
   * Where `portico start` writes its process id (the primary's with
   * `workers: N`), removed on exit. A file naming a live process refuses the
   * start; a stale one is replaced. Relative to the working directory. Read at start only.
   */
  pidFile: z.string('must be a file path').min(1, 'must be a file path').optional(),
  listeners: z.array(listener).default([]),
  upstreams: z.array(upstream).default([]),
  routes: z.array(route).default([]),
  consumers: z.array(consumerSchema).default([]),
  /** Named certificates that listeners' `tls.certificates` use as `{ certificate: NAME }`. */
  certificates: z.array(certificateResourceSchema).default([]),
  state: stateSchema,
});

export type Config = z.output<typeof configSchema>;
export type ListenerConfig = Config['listeners'][number];
export type HttpListenerConfig = Extract<ListenerConfig, { protocol: 'http' | 'https' }>;
export type L4ListenerConfig = Exclude<ListenerConfig, HttpListenerConfig>;

/** An `http` or `https` listener (routes pick its upstreams), as opposed to a connection-level one. */
export function isHttpListener(l: ListenerConfig): l is HttpListenerConfig {
  return l.protocol === 'http' || l.protocol === 'https';
}
export type UpstreamConfig = Config['upstreams'][number];
export type RouteConfig = Config['routes'][number];
export type HeaderRulesConfig = z.output<typeof headerRules>;
export type HeaderMatchConfig = z.output<typeof headerMatch>;

/** The per-resource schemas (one entry of `listeners`, `upstreams`, `routes`), for the admin API and its OpenAPI description. */
export { listener as listenerSchema, upstream as upstreamSchema, route as routeSchema };
