import type http from 'node:http';
import { json } from './reply.js';

/** What GET /metrics serves: the registry's content type and text exposition. */
export type MetricsSource = () => Promise<{ contentType: string; body: string }>;

/**
 * GET /metrics (HEAD too): the Prometheus text exposition of the process's
 * registry (or, with `workers: N`, of every worker's, aggregated by the
 * source given), with the registry's content type. Any other method is
 * 405 with `Allow: GET, HEAD`; a source that fails is 500 INTERNAL, and
 * never takes the admin API down.
 */
export function serveMetrics(req: http.IncomingMessage, res: http.ServerResponse, source: MetricsSource): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return plainError(res, 405, `${req.method} is not allowed on /metrics (use GET)`, 'METHOD_NOT_ALLOWED');
  }
  let pending: Promise<{ contentType: string; body: string }>;
  try {
    pending = source();
  } catch {
    return plainError(res, 500, 'metrics unavailable', 'INTERNAL');
  }
  pending.then(
    ({ contentType, body }) => {
      if (res.destroyed) return;
      res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    },
    () => plainError(res, 500, 'metrics unavailable', 'INTERNAL'),
  );
}

function plainError(res: http.ServerResponse, status: number, error: string, code: string): void {
  if (res.destroyed || res.headersSent) return;
  json(res, status, { error, code });
}
