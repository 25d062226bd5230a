import http from 'node:http';
import { timingSafeEqual, createHash } from 'node:crypto';
import { CONNECTION_KINDS, isConnectionKind, type ConnectionFilter, type ConnectionInfo } from '../runtime/connection-registry.js';
import type { AgentInfo } from './agents.js';
import { serveConfig, type ConfigAccess } from './config-api.js';
import { json, methodNotAllowed } from './reply.js';
import { serveMetrics } from './metrics.js';
import { diagnostics } from './diagnostics.js';
import { openApiDocument } from './openapi.js';
import { configReload, type ReloadReport } from './config-reload.js';

export interface AdminOptions {
  /** When set, every endpoint but /health and /ready requires `Authorization: Bearer <token>`. */
  token?: string;
  /** Describes the running gateway for GET /status (with `workers: N`, every worker: it may answer later). */
  status: () => unknown;
  /** Request statistics for GET /stats. */
  stats: () => Promise<unknown>;
  /** Whether the gateway takes new traffic (GET /ready): false while it drains or stops. */
  ready: () => { ready: boolean; status: string };
  /** The config source: GET/PUT /config, POST /config/validate and the resources; absent: those answer 404. */
  config?: ConfigAccess;
  /** The process's connection registry, or a view across workers (GET /connections, DELETE /connections/:id); absent: those answer 404. */
  connections?: ConnectionsView;
  /** Tunnel agents and relay services (GET /agents, DELETE /agents/:id); absent: those answer 404. */
  agents?: {
    list(): AgentInfo[];
    /** Disconnects every connection of agent `id`; how many there were. */
    disconnect(id: string): number;
  };
  /** GET /metrics: the Prometheus text exposition (with `workers: N`, every worker's metrics aggregated; admin/metrics.ts); absent: 404. */
  metrics?: () => Promise<{ contentType: string; body: string }>;
  /** Rate-limit and quota usage per key (GET /limits, admin/limits.ts); absent: 404. */
  limits?: () => Promise<unknown>;
  /** Serve POST /debug/profile and /debug/heap (diagnostics.ts); off or absent: they answer 404 NOT_FOUND. Read per request. */
  diagnostics?: boolean;
  /**
   * Reloads the config from its source in every process serving this
   * gateway (POST /config/reload). Never rejects. Absent: POST /config/reload answers 404.
   */
  reloadEverywhere?: (reason: string) => Promise<ReloadReport>;
}

/**
 * What GET and DELETE /connections read: a ConnectionRegistry, or a view
 * across workers that answers later. `close` answers 'unavailable' when the
 * owner of `id` cannot be asked (→ 503).
 */
export interface ConnectionsView {
  list(filter: ConnectionFilter): ConnectionInfo[] | Promise<ConnectionInfo[]>;
  close(id: string): CloseOutcome | Promise<CloseOutcome>;
}
export type CloseOutcome = 'closing' | 'already-closing' | 'unknown' | 'unavailable';


/**
 * The admin listener's protection against slow and idle clients, the same
 * kinds of limits a listener has (fixed: the admin API serves small JSON
 * to operators and tools, never slow uploads).
 */
export interface AdminLimits {
  /** Time to receive a request head, from the connection or the previous response (→ 408, closed). */
  headersTimeout: number;
  /** Time to receive a whole request, body included (→ 408, closed). */
  requestTimeout: number;
  /** How long an idle keep-alive connection stays open between requests. */
  keepAliveTimeout: number;
  /** Most bytes in a request head (→ 431, closed). */
  maxHeaderSize: number;
  /** How often the two timeouts above are checked; they fire up to this late. */
  connectionsCheckingInterval: number;
}

export const ADMIN_LIMITS: Readonly<AdminLimits> = {
  headersTimeout: 5_000,
  requestTimeout: 30_000,
  keepAliveTimeout: 5_000,
  maxHeaderSize: 16 * 1024,
  connectionsCheckingInterval: 1_000,
};

/**
 * The admin API. It binds to loopback unless a token is configured
 * (enforced by config validation). Slow and idle clients are cut by
 * `limits` (ADMIN_LIMITS). Endpoints:
 *   GET /health → 200 {"status":"ok"} while the process runs (no auth: liveness)
 *   GET /ready  → 200 {"status":"ready"}, or 503 {"status":"draining"|"stopping"}
 *                 once a graceful stop began (no auth: readiness for load balancers)
 *   GET /status → snapshot version, listeners and their bound addresses
 *   GET /stats  → request statistics per route, upstream, target and consumer
 *   GET /metrics → Prometheus text exposition (docs/observability.md, Metrics)
 *   GET /connections[?kind=…&listener=…] → live connections, streams and sessions
 *   DELETE /connections/:id → 202, the entry is being closed its kind's way; 404 for an unknown id
 *   GET /agents → connected tunnel agents and relay services, their codes, refusals, streams, heartbeat
 *   DELETE /agents/:id → 202, every connection of that agent id is being closed; 404 UNKNOWN_AGENT when none
 *   GET /openapi.json → an OpenAPI 3.1 description of every endpoint (openapi.ts)
 *   GET /limits → the keys each rate limit and consumer quota tracks, with their usage (limits.ts)
 *   POST /debug/profile?seconds=N, POST /debug/heap → a CPU profile or heap snapshot, with `diagnostics` on (diagnostics.ts)
 *   GET /metrics → Prometheus text exposition
 *   POST /config/reload → 200 {revision, version, workers}: every process reloaded its config source;
 *                 409 APPLY_FAILED {error, code, workers} when any refused (those keep their running config)
 *   GET|PUT /config, POST /config/validate, and /listeners, /routes, /upstreams, /consumers,
 *                 /certificates with /{name} → the config through its source (config-api.ts)
 */
export function createAdminServer(options: () => AdminOptions, limits: Readonly<AdminLimits> = ADMIN_LIMITS): http.Server {
  return http.createServer({ ...limits }, (req, res) => {
    const url = req.url ?? '/';
    const path = url.split('?', 1)[0];
    const opts = options();
    if (path === '/health' && (req.method === 'GET' || req.method === 'HEAD')) {
      return json(res, 200, { status: 'ok' });
    }
    if (path === '/ready' && (req.method === 'GET' || req.method === 'HEAD')) {
      const r = opts.ready();
      const source = opts.config?.source.health();
      // A config store that cannot be reached leaves the instance serving its last good config: degraded, still ready.
      const status = r.ready && source?.state === 'degraded' ? 'degraded' : r.status;
      return json(res, r.ready ? 200 : 503, { status, ...(source !== undefined ? { source } : {}) });
    }
    if (opts.token !== undefined && !authorized(req.headers.authorization, opts.token)) {
      res.setHeader('www-authenticate', 'Bearer realm="portico-admin"');
      return json(res, 401, { error: 'missing or wrong admin token', code: 'ADMIN_UNAUTHORIZED' });
    }
    if (path === '/status' && req.method === 'GET') return settle(opts.status, (body) => json(res, 200, body), () => json(res, 500, { error: 'status unavailable', code: 'INTERNAL' }));
    if (path === '/openapi.json' && req.method === 'GET') return json(res, 200, openApiDocument());
    if (path === '/stats' && req.method === 'GET') {
      opts.stats().then(
        (body) => json(res, 200, body),
        () => json(res, 500, { error: 'statistics unavailable', code: 'INTERNAL' }),
      );
      return;
    }
    if (path === '/metrics' && opts.metrics !== undefined) return serveMetrics(req, res, opts.metrics);
    if (path === '/limits' && opts.limits !== undefined) {
      if (req.method !== 'GET') return methodNotAllowed(res, req.method, path, ['GET']);
      opts.limits().then(
        (body) => json(res, 200, body),
        () => json(res, 500, { error: 'limits unavailable', code: 'INTERNAL' }),
      );
      return;
    }
    if (opts.connections !== undefined && (path === '/connections' || path.startsWith('/connections/'))) return connections(req, res, url, path, opts.connections);
    if (opts.agents !== undefined && (path === '/agents' || path.startsWith('/agents/'))) return agents(req, res, path, opts.agents);
    if (opts.diagnostics === true && path.startsWith('/debug/')) return diagnostics(req, res, url, path);
    if (opts.reloadEverywhere !== undefined && path === '/config/reload') return configReload(req, res, opts.reloadEverywhere, (status, body) => json(res, status, body));
    if (opts.config !== undefined && serveConfig(req, res, path, opts.config)) return;
    return json(res, 404, { error: 'no such admin endpoint', code: 'NOT_FOUND' });
  });
}

/** GET /connections (with `kind` and `listener` filters) and DELETE /connections/:id, on the running process's registry. */
function connections(req: http.IncomingMessage, res: http.ServerResponse, url: string, path: string, registry: ConnectionsView): void {
  if (path === '/connections') {
    if (req.method !== 'GET') {
      res.setHeader('allow', 'GET');
      return json(res, 405, { error: `${req.method} is not allowed on /connections (use GET)`, code: 'METHOD_NOT_ALLOWED' });
    }
    const q = url.indexOf('?');
    const filter = parseFilter(new URLSearchParams(q < 0 ? '' : url.slice(q + 1)));
    if (typeof filter === 'string') return json(res, 400, { error: filter, code: 'BAD_REQUEST' });
    // A socket torn down between its destroy and its 'close' must not take the admin API down.
    settle(
      () => registry.list(filter),
      (listed) => json(res, 200, { connections: listed }),
      () => json(res, 500, { error: 'connections unavailable', code: 'INTERNAL' }),
    );
    return;
  }
  if (req.method !== 'DELETE') {
    res.setHeader('allow', 'DELETE');
    return json(res, 405, { error: `${req.method} is not allowed on /connections/:id (use DELETE)`, code: 'METHOD_NOT_ALLOWED' });
  }
  const id = path.slice('/connections/'.length);
  settle(
    () => registry.close(id),
    (outcome) => {
      if (outcome === 'unknown') return json(res, 404, { error: `no live connection with id "${id.slice(0, 64)}"`, code: 'CONNECTION_NOT_FOUND' });
      if (outcome === 'unavailable') return json(res, 503, { error: `the worker owning "${id.slice(0, 64)}" did not answer`, code: 'WORKER_UNAVAILABLE' });
      json(res, 202, { id, status: 'closing' });
    },
    () => json(res, 500, { error: 'closing the connection failed', code: 'INTERNAL' }),
  );
}

/** Runs `f` (sync or async); its value to `ok`, a throw or rejection to `failed`. */
function settle<T>(f: () => T | Promise<T>, ok: (value: T) => void, failed: () => void): void {
  let p: Promise<T>;
  try {
    p = Promise.resolve(f());
  } catch {
    return failed();
  }
  p.then(ok, failed);
}

/** GET /agents and DELETE /agents/:id. */
function agents(req: http.IncomingMessage, res: http.ServerResponse, path: string, a: NonNullable<AdminOptions['agents']>): void {
  if (path === '/agents') {
    if (req.method !== 'GET') {
      res.setHeader('allow', 'GET');
      return json(res, 405, { error: `${req.method} is not allowed on /agents (use GET)`, code: 'METHOD_NOT_ALLOWED' });
    }
    return json(res, 200, { agents: a.list() });
  }
  if (req.method !== 'DELETE') {
    res.setHeader('allow', 'DELETE');
    return json(res, 405, { error: `${req.method} is not allowed on /agents/:id (use DELETE)`, code: 'METHOD_NOT_ALLOWED' });
  }
  let id: string;
  try {
    id = decodeURIComponent(path.slice('/agents/'.length));
  } catch {
    return json(res, 400, { error: 'the agent id is not valid percent-encoding', code: 'BAD_REQUEST' });
  }
  const closed = id === '' ? 0 : a.disconnect(id);
  if (closed === 0) return json(res, 404, { error: `no connected agent with id "${id.slice(0, 64)}"`, code: 'UNKNOWN_AGENT' });
  return json(res, 202, { id, connections: closed, status: 'closing' });
}

/** The `kind` and `listener` filters of GET /connections, or why they are refused. */
function parseFilter(params: URLSearchParams): ConnectionFilter | string {
  const filter: ConnectionFilter = {};
  const seen = new Set<string>();
  for (const [name, value] of params) {
    if (seen.has(name)) return `query parameter "${name.slice(0, 64)}" is given more than once`;
    seen.add(name);
    if (name === 'kind') {
      if (!isConnectionKind(value)) return `unknown connection kind "${value.slice(0, 64)}" (one of: ${CONNECTION_KINDS.join(', ')})`;
      filter.kind = value;
    } else if (name === 'listener') {
      filter.listener = value;
    } else {
      return `unknown query parameter "${name.slice(0, 64)}" (the filters are kind and listener)`;
    }
  }
  return filter;
}

/**
 * Whether `Authorization` carries `Bearer <key>`. The scheme name is
 * case-insensitive and separated from the token by one or more spaces
 * (RFC 9110 §11.1, §11.4); the token is compared in constant time
 * (hashing first makes the lengths equal).
 */
export function authorized(header: string | undefined, key: string): boolean {
  if (!header || header.length < 7 || header.slice(0, 6).toLowerCase() !== 'bearer' || header.charCodeAt(6) !== 32) return false;
  let start = 7;
  while (header.charCodeAt(start) === 32) start++;
  const a = createHash('sha256').update(header.slice(start)).digest();
  const b = createHash('sha256').update(key).digest();
  return timingSafeEqual(a, b);
}
