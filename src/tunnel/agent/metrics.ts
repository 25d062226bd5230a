import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Agent } from './agent.js';

/**
 * The agent's Prometheus metrics, in a Registry of its own (never the
 * global one: a process embedding an agent keeps its own metrics apart).
 * Every value is read from the agent when scraped, so counting costs
 * nothing on the data path. Labels are bounded: `code` is a configured
 * service code (a service removed by a reload leaves the output), and
 * `direction` is `in` (gateway → local service) or `out` (local service →
 * gateway).
 *
 * - portico_agent_connected: 1 while authenticated to a gateway.
 * - portico_agent_reconnects_total: dials after the first one (attempts to
 *   reconnect, successful or not).
 * - portico_agent_streams / portico_agent_streams_total: data streams open
 *   now / served since start.
 * - portico_agent_service_up{code}: 1 healthy (announced up), 0 withdrawn.
 * - portico_agent_bytes_total{code,direction}: bytes carried for each
 *   service since it was (re)configured.
 * - Node's default process metrics (CPU, memory, event loop lag, handles).
 */
export function agentMetrics(agent: Agent): Registry {
  const registry = new Registry();
  new Gauge({
    name: 'portico_agent_connected',
    help: '1 while the agent is connected and authenticated to a gateway, else 0.',
    registers: [registry],
    collect() {
      this.set(agent.conn.state === 'connected' ? 1 : 0);
    },
  });
  new Counter({
    name: 'portico_agent_reconnects_total',
    help: 'Dials to a gateway after the first one (reconnect attempts, successful or not).',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(Math.max(0, agent.conn.attempts - 1));
    },
  });
  new Gauge({
    name: 'portico_agent_streams',
    help: 'Data streams open now.',
    registers: [registry],
    collect() {
      this.set(agent.conn.streams);
    },
  });
  new Counter({
    name: 'portico_agent_streams_total',
    help: 'Data streams the gateway opened since the agent started.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(agent.conn.streamsTotal);
    },
  });
  new Gauge({
    name: 'portico_agent_service_up',
    help: '1 while a configured local service is healthy (announced up), 0 while withdrawn.',
    labelNames: ['code'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of agent.services.all()) this.set({ code: s.code }, s.up ? 1 : 0);
    },
  });
  new Counter({
    name: 'portico_agent_bytes_total',
    help: 'Bytes carried per service: in = gateway to local service, out = local service to gateway.',
    labelNames: ['code', 'direction'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of agent.services.all()) {
        const b = s.bytes();
        this.inc({ code: s.code, direction: 'in' }, b.in);
        this.inc({ code: s.code, direction: 'out' }, b.out);
      }
    },
  });
  collectDefaultMetrics({ register: registry });
  return registry;
}
