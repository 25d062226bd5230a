import { agentConfigSchema } from '../../src/config/schemas/agent.js';
import { createLogger } from '../../src/observability/logger.js';
import { Agent } from '../../src/tunnel/agent/agent.js';
import { createPki, type Pki } from './certs.js';

/** A PKI with a gateway certificate for 127.0.0.1 / localhost, made once per test file. */
export async function tunnelPki(): Promise<{ pki: Pki; gw: { cert: string; key: string } }> {
  const pki = await createPki();
  const gw = await pki.issue('gateway.test', { sans: ['gateway.test', 'localhost', 'IP:127.0.0.1'] });
  return { pki, gw };
}

export const TEST_TOKEN = 'office-1-token-0123456789';

/** A tunnel listener entry (port 0) with one agent `office-1` allowed `codes` and `ports`. */
export function tunnelListener(gw: { cert: string; key: string }, extra: Record<string, unknown> = {}) {
  return {
    name: 'tunnel',
    protocol: 'tunnel',
    listen: '127.0.0.1:0',
    tls: { certificates: [{ cert: gw.cert, key: gw.key }] },
    agents: [{ id: 'office-1', token: TEST_TOKEN, codes: ['crm', 'ssh', 'device-*'], allowPorts: ['20000-65000'] }],
    heartbeat: { interval: '200ms', timeout: '500ms' },
    ...extra,
  };
}

/** Starts an in-process agent dialling `server` (host:port) with `services`; resolves once it is connected. */
export async function startAgent(server: string, ca: string, services: unknown[], extra: Record<string, unknown> = {}): Promise<Agent> {
  const config = agentConfigSchema.parse({
    servers: [server],
    id: 'office-1',
    token: TEST_TOKEN,
    tls: { ca },
    heartbeat: { interval: '200ms', timeout: '500ms' },
    reconnect: { initial: '50ms', max: '500ms' },
    services,
    ...extra,
  });
  const agent = new Agent(config, createLogger('silent'));
  agent.start();
  await agent.connected();
  return agent;
}
