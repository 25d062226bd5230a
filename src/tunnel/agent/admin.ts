import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatHostPort, type HostPort } from '../../net/address.js';
import type { Agent } from './agent.js';
import { agentMetrics } from './metrics.js';

/**
 * The agent's loopback admin address (the schema refuses any other):
 * - GET /status: the connection (server, session, state, last ping, last
 *   error, streams), and each service with its health, its refusal by the
 *   gateway (null when accepted), its streams and bytes, as JSON.
 * - GET /metrics: Prometheus text (metrics.ts).
 * Anything else is 404 (405 for another method on those paths).
 */
export async function startAgentAdmin(agent: Agent, listen: HostPort): Promise<{ close(): Promise<void>; address: string }> {
  const registry = agentMetrics(agent);
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/status' && path !== '/metrics') return json(res, 404, { error: 'not found', code: 'NOT_FOUND' });
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'method not allowed', code: 'METHOD_NOT_ALLOWED' }, { allow: 'GET, HEAD' });
    if (path === '/status') return json(res, 200, agentStatus(agent));
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: Error) => json(res, 500, { error: `metrics failed: ${err.message}`, code: 'INTERNAL' }),
    );
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return {
    address: formatHostPort({ host: a.address, port: a.port }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve()).closeAllConnections()),
  };
}

function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

export function agentStatus(agent: Agent): Record<string, unknown> {
  return {
    connection: agent.conn,
    services: agent.services.all().map((s) => ({
      ...s.announcement(),
      local: formatHostPort(s.config.local),
      proxyProtocol: s.config.proxyProtocol,
      bandwidth: s.config.bandwidth ?? null,
      health: s.health === null ? null : { up: s.health.up, reason: s.health.reason, checks: s.health.checks },
      refused: agent.refused.get(s.code) ?? null,
      streams: s.streams,
      streamsTotal: s.streamsTotal,
      bytes: s.bytes(),
    })),
  };
}
