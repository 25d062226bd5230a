import { agentConfigSchema } from '../../src/config/schemas/agent.js';
import { formatHostPort } from '../../src/net/address.js';
import { createLogger } from '../../src/observability/logger.js';
import { Agent } from '../../src/tunnel/agent/agent.js';
import type { TestGateway } from './gateway.js';

export const SERVICE_TOKEN = 'relay-service-token-0123456789';
export const CLIENT_TOKEN = 'relay-client-token-0123456789';
/** A client token allowed the code `other` only. */
export const OTHER_TOKEN = 'relay-other-token-0123456789';

/** A relay listener entry (port 0): services `dev-*` with SERVICE_TOKEN; clients: CLIENT_TOKEN → `dev-*`, OTHER_TOKEN → `other`. */
export function relayListener(gw: { cert: string; key: string }, extra: Record<string, unknown> = {}) {
  return {
    name: 'relay',
    protocol: 'relay',
    listen: '127.0.0.1:0',
    tls: { certificates: [{ cert: gw.cert, key: gw.key }] },
    services: [{ code: 'dev-*', token: SERVICE_TOKEN }],
    clients: [
      { token: CLIENT_TOKEN, codes: ['dev-*'] },
      { token: OTHER_TOKEN, codes: ['other'] },
    ],
    heartbeat: { interval: '200ms', timeout: '500ms' },
    limits: { handshakeTimeout: '1s' },
    accessLog: false,
    ...extra,
  };
}

export function relayAddressOf(gateway: TestGateway, name = 'relay'): string {
  return formatHostPort(gateway.gateway.listenerAddress(name)!);
}

/** An agent registering `code` at the relay as a relay service (id = code), its stream dialling `local`. Not started. */
export function relayServiceAgent(relay: string, ca: string, code: string, local: string, token = SERVICE_TOKEN): Agent {
  const config = agentConfigSchema.parse({
    servers: [relay],
    id: code,
    token,
    tls: { ca },
    heartbeat: { interval: '200ms', timeout: '500ms' },
    reconnect: { initial: '50ms', max: '500ms' },
    services: [{ code, local, type: 'tcp', connectTimeout: '1s' }],
  });
  return new Agent(config, createLogger('silent'));
}
