import { z } from 'zod';
import { bool, duration, int, listenAddress, port } from '../values.js';
import { byteSize, heartbeatSchema, serviceCode, windowSchema } from './tunnel.js';
import { TLS_VERSIONS } from './tls.js';
import { isLoopbackHost } from '../../net/loopback.js';

/**
 * The document of `portico agent --config agent.yaml`: which gateways to
 * dial, how to prove who it is, and the local services it exposes
 * (docs/tunnel.md). Validated like the gateway's own document: a bad
 * field exits with its path and why.
 */

const file = z.string('must be a file path').min(1, 'must be a file path');

const localHealth = z
  .strictObject({
    interval: duration(100, 3_600_000, '100ms to 1h, e.g. 5s').default(5_000),
    timeout: duration(50, 600_000, '50ms to 10m, e.g. 2s').default(2_000),
    /** `type: http` services: the path asked with GET (2xx or 3xx is healthy). */
    path: z.string().startsWith('/', 'must start with "/"').default('/'),
    healthyThreshold: int(1, 100).default(1),
    unhealthyThreshold: int(1, 100).default(2),
  })
  .prefault({});

export const AGENT_SERVICE_TYPES = ['tcp', 'http', 'grpc', 'udp'] as const;

const service = z
  .strictObject({
    code: serviceCode,
    /** The local service: `host:port` the agent dials for each stream. */
    local: listenAddress.refine((a) => a.port > 0, 'must have a port from 1 to 65535'),
    type: z.enum(AGENT_SERVICE_TYPES, 'must be tcp, http, grpc or udp').default('tcp'),
    /** HTTP routes on the gateway's tunnel `http.listener` (http and grpc services). */
    hosts: z.array(z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/, 'must be a host name such as app.example.com').transform((h) => h.toLowerCase())).default([]),
    /** A public port the gateway opens for this service while the agent is connected (within the agent's allowPorts). */
    remotePort: port.optional(),
    /** Send a PROXY protocol header to the local service so it sees the real client address. */
    proxyProtocol: z.enum(['none', 'v1', 'v2'], 'must be none, v1 or v2').default('none'),
    /** Bytes per second, each direction, for this service's streams together. */
    bandwidth: byteSize(1_024, 2 ** 40).optional(),
    /** Check the local service; an unhealthy one is withdrawn until it recovers. */
    healthCheck: localHealth.optional(),
    /** Time to connect to the local service. */
    connectTimeout: duration(1, 600_000, '1ms to 10m, e.g. 5s').default(5_000),
  })
  .superRefine((s, ctx) => {
    if (s.hosts.length > 0 && s.type !== 'http' && s.type !== 'grpc') ctx.addIssue({ code: 'custom', path: ['hosts'], message: 'needs type: http or grpc' });
    if (s.type === 'udp' && s.proxyProtocol !== 'none') ctx.addIssue({ code: 'custom', path: ['proxyProtocol'], message: 'is for stream services (tcp, http, grpc), not udp' });
  });

export const agentConfigSchema = z
  .strictObject({
    /** Gateways' tunnel listeners, tried in order (the next on failure). */
    servers: z.array(listenAddress.refine((a) => a.port > 0, 'must have a port from 1 to 65535')).min(1, 'must list at least one server'),
    id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'must be 1-63 letters, digits, "_", "." or "-", starting with a letter or digit'),
    /** Proved by challenge–response, never sent. Absent: authenticate with tls.cert/key (mTLS). */
    token: z.string().min(16, 'must be at least 16 characters (use ${ENV} to keep it out of the file)').optional(),
    tls: z
      .strictObject({
        /** PEM CA bundle the gateway's certificate must chain to; absent = the system's CAs. */
        ca: file.optional(),
        /** The name checked against the gateway's certificate (and sent as SNI); default: the server's host. */
        serverName: z.string().min(1).optional(),
        cert: file.optional(),
        key: file.optional(),
        minVersion: z.enum(TLS_VERSIONS, 'must be TLSv1.2 or TLSv1.3').default('TLSv1.2'),
        /** Do not verify the gateway's certificate. Logged as a warning; never use it in production. */
        insecureSkipVerify: bool.default(false),
      })
      .prefault({}),
    heartbeat: heartbeatSchema,
    /** HTTP/2 receive windows of the agent's side (what the gateway may send ahead per stream, and in all). */
    window: windowSchema,
    reconnect: z
      .strictObject({
        /** First delay, also used for the first few quick retries. */
        initial: duration(10, 60_000, '10ms to 1m, e.g. 200ms').default(200),
        /** Cap of the exponential backoff. */
        max: duration(100, 3_600_000, '100ms to 1h, e.g. 30s').default(30_000),
        /** Give up after this many failed attempts in a row; 0 = never (the default). */
        maxAttempts: int(0, 1_000_000).default(0),
      })
      .prefault({}),
    /** Optional loopback address serving GET /status and GET /metrics. */
    admin: listenAddress.optional(),
    log: z.strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info') }).prefault({}),
    /** Re-read the file when it changes (SIGHUP always does). */
    watch: bool.default(false),
    services: z.array(service).default([]),
  })
  .superRefine((c, ctx) => {
    if (c.token === undefined && (c.tls.cert === undefined || c.tls.key === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['token'], message: 'is required unless tls.cert and tls.key are given (mTLS)' });
    }
    if ((c.tls.cert === undefined) !== (c.tls.key === undefined)) ctx.addIssue({ code: 'custom', path: ['tls', c.tls.cert === undefined ? 'cert' : 'key'], message: 'cert and key go together' });
    const codes = new Set<string>();
    const ports = new Set<string>();
    c.services.forEach((s, i) => {
      if (codes.has(s.code)) ctx.addIssue({ code: 'custom', path: ['services', i, 'code'], message: `code "${s.code}" is listed twice` });
      codes.add(s.code);
      if (s.remotePort !== undefined) {
        const key = `${s.type === 'udp' ? 'udp' : 'tcp'}:${s.remotePort}`;
        if (ports.has(key)) ctx.addIssue({ code: 'custom', path: ['services', i, 'remotePort'], message: `${key} is used by another service` });
        ports.add(key);
      }
    });
    if (c.admin !== undefined && !isLoopbackHost(c.admin.host)) ctx.addIssue({ code: 'custom', path: ['admin'], message: 'must be a loopback address (127.0.0.1, ::1 or localhost)' });
  });

export type AgentConfig = z.output<typeof agentConfigSchema>;
export type AgentServiceConfig = AgentConfig['services'][number];
