import { z } from 'zod';
import { bool, cidr, duration, int, listenAddress, port, resourceName } from '../values.js';
import { listenerTlsSchema } from './tls.js';
import { ipRestrictionOptions } from './middlewares.js';
import { l4AccessLogSchema } from './access-log.js';

/**
 * Schemas of the connection-level (L4) listeners: `tcp`, `tls`, `udp`,
 * `sealed` and `forward-proxy`. The HTTP listeners' schema is in
 * config/schema.ts; the document's `listeners:` is the union of both,
 * told apart by `protocol`.
 */

const accessLog = l4AccessLogSchema;

/** `proxyProtocol:` on a listener: whether clients (a load balancer in front) send a PROXY protocol header. */
export const PROXY_PROTOCOL_ACCEPT = ['none', 'accept', 'require'] as const;

/**
 * Connection middlewares: checked when a connection is accepted (after
 * the PROXY protocol header, if any), before anything is dialled. A
 * rejected connection is closed at once and counted.
 */
const connectionRateLimit = z
  .strictObject({
    /** New connections per second (sustained). */
    rate: z.preprocess((v) => (typeof v === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : v), z.number('must be a number').gt(0, 'must be > 0')),
    /** Connections that may open at once after a quiet period; default ceil(rate). */
    burst: int(1, 1e12).optional(),
    /** `ip`: one bucket per client IP; `listener`: one for the whole listener. */
    key: z.enum(['ip', 'listener'], 'must be ip or listener').default('ip'),
  })
  .transform((o) => ({ ...o, burst: o.burst ?? Math.max(1, Math.ceil(o.rate)) }));

const connectionMiddleware = z.union(
  [z.strictObject({ 'ip-restriction': ipRestrictionOptions }), z.strictObject({ 'rate-limit': connectionRateLimit })],
  'must be { ip-restriction: {...} } or { rate-limit: {...} }',
);

export type ConnectionRateLimitConfig = z.output<typeof connectionRateLimit>;
export type ConnectionMiddlewareConfig = z.output<typeof connectionMiddleware>;

/** Settings every stream (TCP-based) L4 listener has. */
const streamCommon = {
  name: resourceName,
  listen: listenAddress,
  accessLog: accessLog.default(true),
  proxyProtocol: z.enum(PROXY_PROTOCOL_ACCEPT, 'must be none, accept or require').default('none'),
  /**
   * Peers whose PROXY protocol header is believed (addresses/CIDRs). Empty:
   * any peer's (the listener should then only be reachable from the load balancer).
   */
  trustedProxies: z.array(cidr).default([]),
  limits: z
    .strictObject({
      /** Open connections on this listener; 0 = no limit. */
      maxConnections: int(0, 10_000_000).default(0),
      /** Open connections from one client IP; 0 = no limit. */
      maxConnectionsPerIp: int(0, 10_000_000).default(0),
    })
    .prefault({}),
  middlewares: z.array(connectionMiddleware).default([]),
  timeouts: z
    .strictObject({
      /** Longest silence in both directions before the connection is closed; 0 = never. */
      idle: duration(0, 7 * 24 * 3_600_000, '0 (off) to 7d, e.g. 1h').default(3_600_000),
      /** Time for the client's opening bytes: PROXY header, TLS handshake, sealed line, proxy request head. */
      handshake: duration(1, 600_000, '1ms to 10m, e.g. 5s').default(5_000),
    })
    .prefault({}),
  /** TCP keep-alive probes after this much idle time on both sides; 0 = off. */
  tcpKeepAlive: duration(0, 7_200_000, '0 (off) to 2h, e.g. 60s').default(60_000),
  /** Per-direction copy buffer (socket high-water mark), bytes: what one slow side can make Portico hold. */
  buffer: int(4_096, 16 * 1024 * 1024).default(64 * 1024),
};

/** `protocol: tcp`: every connection to a target of `upstream`. */
export const tcpListenerSchema = z.strictObject({
  ...streamCommon,
  protocol: z.literal('tcp'),
  upstream: resourceName,
  /** Dial attempts, each on another target when there is one (≥ 1). */
  retry: int(1, 10).default(2),
});

const sniPattern = z
  .string('must be a host name or *.suffix')
  .regex(/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/, 'must be a host name such as db.example.com or *.example.com')
  .transform((v) => v.toLowerCase());

/**
 * `protocol: tls`: terminate TLS and forward plain TCP (`tls:` certificates
 * as for https), or with `passthrough: true` route by the ClientHello's SNI
 * without terminating. `routes` pick an upstream by SNI (exact, then
 * `*.suffix`); `upstream` is the default when no route matches.
 */
export const tlsListenerSchema = z
  .strictObject({
    ...streamCommon,
    protocol: z.literal('tls'),
    passthrough: bool.default(false),
    tls: listenerTlsSchema.optional(),
    routes: z.array(z.strictObject({ sni: sniPattern, upstream: resourceName })).default([]),
    upstream: resourceName.optional(),
    retry: int(1, 10).default(2),
  })
  .superRefine((l, ctx) => {
    if (!l.passthrough && l.tls === undefined) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'is required unless passthrough: true' });
    if (l.passthrough && l.tls !== undefined) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'must be left out with passthrough: true (TLS is not terminated)' });
    if (l.routes.length === 0 && l.upstream === undefined) ctx.addIssue({ code: 'custom', path: ['upstream'], message: 'is required when there are no routes' });
  });

/** `protocol: udp`: datagrams to a target chosen per client address. */
export const udpListenerSchema = z.strictObject({
  name: resourceName,
  protocol: z.literal('udp'),
  listen: listenAddress,
  upstream: resourceName,
  accessLog: accessLog.default(false),
  middlewares: z.array(z.strictObject({ 'ip-restriction': ipRestrictionOptions })).default([]),
  /** A client's session (its upstream socket and target) ends after this long without a datagram either way. */
  idleTimeout: duration(100, 3_600_000, '100ms to 1h, e.g. 30s').default(30_000),
  /** Most client sessions at once; datagrams from new clients beyond it are dropped (and counted). */
  maxSessions: int(1, 1_000_000).default(10_000),
});

/** A `sealed` listener's `allow` entry: backend addresses it may dial. */
const sealedAllow = z.strictObject({
  cidr,
  /** Ports allowed in this range; absent = every port. */
  ports: z.array(port).min(1, 'must list at least one port (leave it out for all ports)').optional(),
});

/**
 * `protocol: sealed`: the client's first line is a sealed (encrypted)
 * backend address; see docs/sealed.md for the wire protocol and codes.
 * `handshakeTimeout` is an alias of `timeouts.handshake` (the time for the
 * PROXY header and the line); give one or the other.
 */
export const sealedListenerSchema = z
  .strictObject({
    ...streamCommon,
    protocol: z.literal('sealed'),
    timeouts: z
      .strictObject({
        idle: streamCommon.timeouts.unwrap().shape.idle,
        handshake: duration(1, 600_000, '1ms to 10m, e.g. 5s').optional(),
      })
      .prefault({}),
    handshakeTimeout: duration(1, 600_000, '1ms to 10m, e.g. 5s').optional(),
    secret: z.string('must be a string (use ${ENV} to keep it out of the file)').min(1, 'must not be empty'),
    kdf: z.enum(['md5', 'sha256', 'pbkdf2', 'auto'], 'must be md5, sha256, pbkdf2 or auto').default('auto'),
    /** Formats accepted: `v1` (OpenSSL enc AES-256-CBC, the original clients) and `v2` (AES-256-GCM with expiry). */
    formats: z.array(z.enum(['v1', 'v2'], 'must be v1 or v2')).min(1, 'must accept at least one format').default(['v1', 'v2']),
    /** Backend addresses that may be dialled (checked on the resolved IP). Empty = none: default deny. */
    allow: z.array(sealedAllow).default([]),
    /** Dial attempts (≥ 1). */
    retry: int(1, 10).default(1),
    /** Timeout of each dial attempt. */
    timeout: duration(1, 600_000, '1ms to 10m, e.g. 3s').default(3_000),
    /** Longest accepted line, newline excluded. */
    lineLimit: int(64, 4_096).default(1_024),
    /** Answer every failure with the same code after the same delay (padding-oracle and port-scan defence). */
    uniformErrors: bool.default(false),
    /** With uniformErrors: time from the line's arrival to a failure's answer; must cover retry × timeout. */
    uniformDelay: duration(1, 600_000, '1ms to 10m, e.g. 5s').optional(),
  })
  .transform((l, ctx) => {
    const { handshakeTimeout, timeouts, ...rest } = l;
    if (handshakeTimeout !== undefined && timeouts.handshake !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['handshakeTimeout'], message: 'is an alias of timeouts.handshake: give one or the other' });
      return z.NEVER;
    }
    const handshake = handshakeTimeout ?? timeouts.handshake ?? 5_000;
    return { ...rest, timeouts: { idle: timeouts.idle, handshake }, uniformDelay: l.uniformDelay ?? l.retry * l.timeout + 500 };
  })
  .superRefine((l, ctx) => {
    if (l.uniformErrors && l.uniformDelay < l.retry * l.timeout) {
      ctx.addIssue({ code: 'custom', path: ['uniformDelay'], message: `must be at least retry × timeout (${l.retry * l.timeout} ms), or a slow dial would answer late and stand out` });
    }
  });

/** A `forward-proxy` listener's `allow` entry. */
const forwardAllow = z
  .strictObject({
    /** Host name, or `*.suffix` for any name under it (matched against the requested name). */
    host: sniPattern.optional(),
    /** Destination address range (checked against the resolved address). */
    cidr: cidr.optional(),
    /** Allowed ports; absent = every port. */
    ports: z.array(port).min(1, 'must list at least one port (leave it out for all ports)').optional(),
  })
  .refine((a) => (a.host === undefined) !== (a.cidr === undefined), 'needs exactly one of host or cidr');

/**
 * `protocol: forward-proxy`: an HTTP proxy for clients (absolute-form
 * requests and CONNECT tunnels).
 */
export const forwardProxyListenerSchema = z.strictObject({
  ...streamCommon,
  protocol: z.literal('forward-proxy'),
  /** Destinations allowed. Empty = every public destination (private, loopback and link-local ranges are denied). */
  allow: z.array(forwardAllow).default([]),
  /** Destinations denied (checked first). */
  deny: z.array(forwardAllow).default([]),
  /** `basic`: clients must send `Proxy-Authorization: Basic` with a consumer's name and secret (407 otherwise). */
  auth: z.enum(['none', 'basic'], 'must be none or basic').default('none'),
  /** Time to resolve a destination's name, and then to connect to it (each). */
  connectTimeout: duration(1, 600_000, '1ms to 10m, e.g. 5s').default(5_000),
  /** Time from a forwarded request to the destination's response head; 0 = none. */
  responseTimeout: duration(0, 3_600_000, '0 (off) to 1h, e.g. 60s').default(60_000),
  /** Largest request head from clients, and response head from destinations, in bytes. */
  maxHeaderSize: int(1024, 1_048_576).default(16_384),
});

export type TcpListenerConfig = z.output<typeof tcpListenerSchema>;
export type TlsListenerConfig = z.output<typeof tlsListenerSchema>;
export type UdpListenerConfig = z.output<typeof udpListenerSchema>;
export type SealedListenerConfig = z.output<typeof sealedListenerSchema>;
export type ForwardProxyListenerConfig = z.output<typeof forwardProxyListenerSchema>;
/** Every TCP-based L4 listener (they share accept, limits and splicing). */
export type StreamListenerConfig = TcpListenerConfig | TlsListenerConfig | SealedListenerConfig | ForwardProxyListenerConfig;
