import http from 'node:http';
import { timingSafeEqual, createHash } from 'node:crypto';

export interface AdminOptions {
  /** When set, every endpoint but /health requires `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Describes the running gateway for GET /status. */
  status: () => unknown;
  /** Request statistics for GET /stats. */
  stats: () => Promise<unknown>;
  /** Whether the gateway takes new traffic (GET /ready): false while it drains or stops. */
  ready: () => { ready: boolean; status: string };
}

/**
 * The admin API. It binds to loopback unless an API key is configured
 * (enforced by config validation). Endpoints:
 *   GET /health → 200 {"status":"ok"} while the process runs (no auth: liveness)
 *   GET /ready  → 200 {"status":"ready"}, or 503 {"status":"draining"|"stopping"}
 *                 once a graceful stop began (no auth: readiness for load balancers)
 *   GET /status → snapshot version, listeners and their bound addresses
 *   GET /stats  → request statistics per route, upstream, target and consumer
 */
export function createAdminServer(options: () => AdminOptions): http.Server {
  return http.createServer((req, res) => {
    const url = req.url ?? '/';
    const path = url.split('?', 1)[0];
    const opts = options();
    if (path === '/health' && (req.method === 'GET' || req.method === 'HEAD')) {
      return json(res, 200, { status: 'ok' });
    }
    if (path === '/ready' && (req.method === 'GET' || req.method === 'HEAD')) {
      const r = opts.ready();
      return json(res, r.ready ? 200 : 503, { status: r.status });
    }
    if (opts.apiKey !== undefined && !authorized(req.headers.authorization, opts.apiKey)) {
      res.setHeader('www-authenticate', 'Bearer realm="portico-admin"');
      return json(res, 401, { error: 'missing or wrong admin API key', code: 'ADMIN_UNAUTHORIZED' });
    }
    if (path === '/status' && req.method === 'GET') return json(res, 200, opts.status());
    if (path === '/stats' && req.method === 'GET') {
      opts.stats().then(
        (body) => json(res, 200, body),
        () => json(res, 500, { error: 'statistics unavailable', code: 'INTERNAL' }),
      );
      return;
    }
    return json(res, 404, { error: 'no such admin endpoint', code: 'NOT_FOUND' });
  });
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** Constant-time comparison of the bearer token (hashing first makes the lengths equal). */
export function authorized(header: string | undefined, key: string): boolean {
  if (!header || !header.startsWith('Bearer ')) return false;
  const a = createHash('sha256').update(header.slice(7)).digest();
  const b = createHash('sha256').update(key).digest();
  return timingSafeEqual(a, b);
}
