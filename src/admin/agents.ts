import type { TunnelSession } from '../tunnel/session.js';

/**
 * The admin view of tunnel agents and relay services (GET /agents,
 * DELETE /agents/:id): one entry per authenticated connection of every
 * tunnel and relay listener. Made at request time from the live sessions;
 * nothing here is kept.
 */

/** A listener whose connections are agent (or relay service) sessions. */
export interface AgentSessions {
  agents(): readonly TunnelSession[];
}

/** One agent connection as GET /agents shows it. */
export interface AgentInfo {
  /** The agent's id (a relay service's code). */
  id: string;
  listener: string;
  peer: string;
  /** Its id in the connection registry (GET /connections, DELETE /connections/:id). */
  connection: string | null;
  connectedAt: string;
  ageMs: number;
  services: { code: string; type: string; hosts: string[]; remotePort: number | null; up: boolean; identity: string }[];
  refused: { code: string; reason: string }[];
  streams: { open: number; total: number };
  lastPingAt: string | null;
  rttMs: number | null;
}

export function describeAgent(s: TunnelSession, connection: string | null, now = Date.now()): AgentInfo {
  return {
    id: s.agentId,
    listener: s.listener,
    peer: s.peer,
    connection,
    connectedAt: new Date(s.startedAt).toISOString(),
    ageMs: now - s.startedAt,
    services: [...s.registered.values()].map((r) => ({
      code: r.code,
      type: r.service.type,
      hosts: [...r.service.hosts],
      remotePort: r.service.remotePort ?? null,
      up: r.up,
      identity: r.identity,
    })),
    refused: [...s.refused].map(([code, reason]) => ({ code, reason })),
    streams: { open: s.streams, total: s.streamsTotal },
    lastPingAt: s.lastPingAt === 0 ? null : new Date(s.lastPingAt).toISOString(),
    rttMs: s.lastPingAt === 0 ? null : s.lastRttMs,
  };
}

/** Whether a listener object carries agent sessions. */
export function hasAgentSessions(l: unknown): l is AgentSessions {
  return typeof (l as Partial<AgentSessions> | null)?.agents === 'function';
}
