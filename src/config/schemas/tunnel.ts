import { z } from 'zod';
import { duration, int, listenAddress, resourceName } from '../values.js';
import { listenerTlsSchema } from './tls.js';
import { l4AccessLogSchema } from './access-log.js';

/**
 * Schemas of the listeners that services behind NAT dial into: `tunnel`
 * (agents expose local services, docs/tunnel.md) and `relay` (services
 * register under a service code and clients reach them by it,
 * docs/relay.md). Both speak TLS; what runs inside is described there.
 */

/** A service code: what a service registers under and clients name. */
export const SERVICE_CODE = /^[A-Za-z0-9_.-]{1,63}$/;
export const serviceCode = z.string('must be a service code').regex(SERVICE_CODE, 'must be 1-63 letters, digits, "_", "." or "-"');

/** A code pattern: an exact code, a prefix ending in `*` (`device-*`), or `*` (every code). */
export const codePattern = z
  .string('must be a service code or a pattern such as device-*')
  .regex(/^([A-Za-z0-9_.-]{1,63}|[A-Za-z0-9_.-]{0,62}\*)$/, 'must be a service code, a prefix ending in * (device-*), or *');

const secret = z.string('must be a string (use ${ENV} to keep it out of the file)').min(16, 'must be at least 16 characters (use ${ENV} to keep it out of the file)');

/** A port or a range, written `20000`, `"20000"` or `"20000-20100"`. */
const portRange = z.union([z.number(), z.string()], 'must be a port or a range such as "20000-20100"').transform((v, ctx) => {
  const m = /^\s*(\d{1,5})(?:\s*-\s*(\d{1,5}))?\s*$/.exec(String(v));
  const from = m ? Number(m[1]) : NaN;
  const to = m?.[2] !== undefined ? Number(m[2]) : from;
  if (!m || from < 1 || to > 65_535 || from > to) {
    ctx.issues.push({ code: 'custom', input: v, message: 'must be a port or a range such as "20000-20100" (ports 1-65535, low-high)' });
    return z.NEVER;
  }
  return { from, to };
});

/** Byte sizes: a number of bytes, or `64KiB`, `8MiB`, `1GiB` (also kB/MB/GB as 1000s). */
export const byteSize = (min: number, max: number) =>
  z.union([z.number(), z.string()], 'must be a size such as 65536, 64KiB or 8MiB').transform((v, ctx) => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|kB|KB|MB|GB)?\s*$/.exec(String(v));
    const unit = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, kB: 1e3, KB: 1e3, MB: 1e6, GB: 1e9 }[m?.[2] ?? 'B'] ?? 1;
    const n = m ? Math.floor(Number(m[1]) * unit) : NaN;
    if (!(n >= min && n <= max)) {
      ctx.issues.push({ code: 'custom', input: v, message: `must be a size from ${min} to ${max} bytes, e.g. 65536, 64KiB or 8MiB` });
      return z.NEVER;
    }
    return n;
  });

/** Pings on an agent connection, both ways: a missing answer ends it (and every registration on it). */
export const heartbeatSchema = z
  .strictObject({
    interval: duration(100, 3_600_000, '100ms to 1h, e.g. 10s').default(10_000),
    timeout: duration(100, 3_600_000, '100ms to 1h, e.g. 5s').default(5_000),
  })
  .prefault({});

/** HTTP/2 receive windows of the multiplexed connection (RFC 9113 §6.9.2): what one stream, and one agent, may have in flight. */
export const windowSchema = z
  .strictObject({
    stream: byteSize(65_535, 2 ** 31 - 1).default(8 * 1024 * 1024),
    connection: byteSize(65_535, 2 ** 31 - 1).default(64 * 1024 * 1024),
  })
  .prefault({});

const agentPolicy = z.strictObject({
  id: resourceName,
  /** Proved by challenge–response, never sent. Absent: the agent must present a client certificate whose subject CN is its id. */
  token: secret.optional(),
  /** Codes this agent may register. */
  codes: z.array(codePattern).min(1, 'must allow at least one code'),
  /** Ports this agent may ask the gateway to open (`remotePort`); none when absent. */
  allowPorts: z.array(portRange).default([]),
});

/** Per-connection limits of agents and relay services. */
const tunnelLimits = z
  .strictObject({
    /** Services one connection may register. */
    maxServices: int(1, 10_000).default(64),
    /** Streams open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS of the agent's side is what it accepts). */
    maxStreams: int(1, 100_000).default(1_024),
    /** From TCP accept to an authenticated control stream. */
    handshakeTimeout: duration(100, 600_000, '100ms to 10m, e.g. 10s').default(10_000),
    /** Connections not yet authenticated at once (a flood of half-open handshakes is refused beyond it). */
    maxPending: int(1, 100_000).default(256),
  })
  .prefault({});

/** `protocol: tunnel`: agents behind NAT dial in and expose their local services. */
export const tunnelListenerSchema = z
  .strictObject({
    name: resourceName,
    protocol: z.literal('tunnel'),
    listen: listenAddress,
    tls: listenerTlsSchema,
    agents: z.array(agentPolicy).min(1, 'must list at least one agent'),
    /** Where agents' `hosts` become HTTP routes: the `http`/`https` listener, and the host patterns agents may claim there. */
    http: z
      .strictObject({
        listener: resourceName,
        hosts: z.array(z.string().regex(/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/, 'must be a host name such as app.example.com or *.example.com').transform((h) => h.toLowerCase())).min(1, 'must list at least one host pattern'),
      })
      .optional(),
    /** Address the agents' `remotePort` listeners bind to; default: this listener's host. */
    portsHost: z.string().min(1).optional(),
    heartbeat: heartbeatSchema,
    window: windowSchema,
    limits: tunnelLimits,
    accessLog: l4AccessLogSchema.default(true),
  })
  .superRefine((l, ctx) => {
    const ids = new Set<string>();
    l.agents.forEach((a, i) => {
      if (ids.has(a.id)) ctx.addIssue({ code: 'custom', path: ['agents', i, 'id'], message: `agent "${a.id}" is listed twice` });
      ids.add(a.id);
      if (a.token === undefined && l.tls.clientAuth === 'none') {
        ctx.addIssue({ code: 'custom', path: ['agents', i, 'token'], message: 'is required unless tls.clientAuth is set (the agent then proves its id with a client certificate)' });
      }
    });
    if (l.heartbeat.timeout > l.heartbeat.interval * 10) ctx.addIssue({ code: 'custom', path: ['heartbeat', 'timeout'], message: 'must be at most 10 × interval' });
  });

/** `protocol: relay`: services register by code; clients name a code in a one-line handshake and are spliced to it. */
export const relayListenerSchema = z
  .strictObject({
    name: resourceName,
    protocol: z.literal('relay'),
    listen: listenAddress,
    tls: listenerTlsSchema,
    /** Who may register which codes. */
    services: z.array(z.strictObject({ code: codePattern, token: secret })).min(1, 'must list at least one service entry'),
    /** Who may connect to which codes. */
    clients: z.array(z.strictObject({ token: secret, codes: z.array(codePattern).min(1, 'must allow at least one code') })).min(1, 'must list at least one client entry'),
    heartbeat: heartbeatSchema,
    window: windowSchema,
    limits: tunnelLimits,
    /** Copy buffer per direction of a relayed pair (bytes). */
    buffer: int(4_096, 16 * 1024 * 1024).default(64 * 1024),
    /** A relayed pair idle this long in both directions is closed; 0 = never. */
    idleTimeout: duration(0, 7 * 24 * 3_600_000, '0 (off) to 7d, e.g. 1h').default(3_600_000),
    accessLog: l4AccessLogSchema.default(true),
  });

export type TunnelListenerConfig = z.output<typeof tunnelListenerSchema>;
export type RelayListenerConfig = z.output<typeof relayListenerSchema>;
export type AgentPolicyConfig = z.output<typeof agentPolicy>;
export type HeartbeatConfig = z.output<typeof heartbeatSchema>;
export type WindowConfig = z.output<typeof windowSchema>;
