import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatHostPort, type HostPort } from '../../net/address.js';
import type { Agent } from './agent.js';

/**
 * The agent's loopback admin address: GET /status (connection, services
 * and their health, streams) as JSON.
 */
export async function startAgentAdmin(agent: Agent, listen: HostPort): Promise<{ close(): Promise<void>; address: string }> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/status') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found', code: 'NOT_FOUND' }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(agentStatus(agent)));
  });
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

export function agentStatus(agent: Agent): Record<string, unknown> {
  return {
    connection: agent.conn,
    services: agent.services.all().map((s) => ({ ...s.announcement(), local: formatHostPort(s.config.local), refused: agent.refused.get(s.code) ?? null })),
  };
}
