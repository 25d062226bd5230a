import type { Readable } from 'node:stream';
import tls from 'node:tls';
import { Pool, errors, type Dispatcher, type buildConnector } from 'undici';
import { ConnectTimeoutError, type Connector, type ReadInto } from '../runtime/connector.js';
import { H1Connection } from './h1-connection.js';
import { parseHostPort } from '../net/address.js';
import { H2Pool } from './h2-pool.js';
import { H1Pool } from './h1/pool.js';

export interface PoolOptions {
  /** How targets are spoken to: HTTP/1.1 (h1/pool.ts), or HTTP/2 over TLS / cleartext (node:http2, see h2-pool.ts). */
  protocol: 'http1' | 'h2' | 'h2c';
  /** TLS client options (https for http1; required for h2) and their digest; undefined for cleartext. */
  tls: { options: tls.ConnectionOptions; key: string } | undefined;
  connectTimeout: number;
  responseTimeout: number;
  idleTimeout: number;
  /** 0 = no limit. */
  maxConnections: number;
}

/** The key of a pool's options: a target keeps one pool per distinct key (upstreams with the same settings share it). */
export function poolKey(o: PoolOptions): string {
  return `${o.protocol}|${o.tls?.key ?? '-'}|${o.connectTimeout}|${o.responseTimeout}|${o.idleTimeout}|${o.maxConnections}`;
}

/** What the proxy sends through a pool: the subset of undici's dispatch options both pool kinds take. */
export interface ProxyDispatchOptions {
  path: string;
  method: Dispatcher.HttpMethod;
  headers: string[];
  body?: Buffer | Readable | null;
  headersTimeout?: number;
  /** TLS server name (SNI and certificate check) for https HTTP/1.1 targets; undici otherwise takes it from Host. */
  servername?: string;
  /** An HTTP/1.1 upgrade (`websocket`); the handler's onUpgrade gets the socket. HTTP/1.1 pools only. */
  upgrade?: string;
}

/** A keep-alive connection pool to one target: an H1Pool (HTTP/1.1, h1/pool.ts) or an H2Pool. */
export interface TargetPool {
  dispatch(opts: ProxyDispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * A keep-alive pool to the target `connector` reaches. `host` is the
 * target's host name or IP: what a TLS certificate is checked against
 * when no server name is sent (an IP target: its IP SANs, RFC 6125).
 */
export function createPool(connector: Connector, host: string, o: PoolOptions): TargetPool {
  return o.protocol === 'http1' ? http1Pool(connector, host, o) : h2Pool(connector, host, o);
}

/** The read buffer per upstream socket: a 64 KiB read must not stop and restart the socket's reading. */
const SOCKET_BUFFER = 256 * 1024;

/**
 * HTTP/1.1 targets: the gateway's own client (h1/pool.ts), which hands
 * upgrades (WebSocket) and CONNECT to an undici Pool it creates on first use.
 */
function http1Pool(connector: Connector, host: string, o: PoolOptions): TargetPool {
  return new H1Pool({
    connect: undiciConnect(connector, host, o),
    tls: o.tls !== undefined,
    responseTimeout: o.responseTimeout,
    idleTimeout: o.idleTimeout,
    maxConnections: o.maxConnections,
    fallback: () => undiciPool(connector, host, o),
  });
}

/** undici's Pool: what the H1Pool hands upgrades and CONNECT to. */
function undiciPool(connector: Connector, host: string, o: PoolOptions): TargetPool {
  // The origin names the scheme only: every connection is opened by `connect` (the target's connector).
  return new Pool(originOf(o.tls === undefined ? 'http' : 'https', connector.identity), {
    connections: o.maxConnections > 0 ? o.maxConnections : null,
    pipelining: 1,
    connect: undiciConnect(connector, host, o),
    headersTimeout: o.responseTimeout,
    bodyTimeout: o.idleTimeout,
    keepAliveTimeout: o.idleTimeout || 60_000,
    keepAliveMaxTimeout: o.idleTimeout || 60_000,
    // Let the upstream's own Keep-Alive hint shorten our idle time, with a
    // margin so we never reuse a connection it is about to close.
    keepAliveTimeoutThreshold: 1000,
    // Each connection knows its socket, so an aborted request closes it as failed (h1-connection.ts).
    factory: (origin, opts) => new H1Connection(origin, opts as ConstructorParameters<typeof H1Connection>[1]),
  }) as unknown as TargetPool;
}

/** TLS sessions kept per pool for resumption (RFC 8446 §2.2), by server name. */
const SESSIONS_KEPT = 100;

/**
 * How an HTTP/1.1 pool opens a connection, in undici's `connect` shape
 * (the H1Pool and its undici fallback both use it): a stream from the target's
 * connector, with TLS started over it for https (ALPN http/1.1, the
 * request's server name, session resumption). A connect or handshake that
 * takes longer than `connectTimeout` fails with undici's
 * ConnectTimeoutError, as undici's own connector does.
 */
function undiciConnect(connector: Connector, host: string, o: PoolOptions): buildConnector.connector {
  const sessions = new Map<string, Buffer>();
  const timeout = o.connectTimeout;
  return (opts, callback) => {
    const started = Date.now();
    // Plain HTTP/1.1 connections of the gateway's own client read into its buffers (h1/connection.ts); TLS reads its own way.
    const readInto = o.tls === undefined ? (opts as { readInto?: ReadInto }).readInto : undefined;
    connector.connect({ timeout, keepAlive: 60_000, highWaterMark: SOCKET_BUFFER, readInto }, (err, socket) => {
      if (err !== null) return callback(err instanceof ConnectTimeoutError ? new errors.ConnectTimeoutError(err.message) : err, null);
      if (o.tls === undefined) return callback(null, socket!);
      const servername = opts.servername || (o.tls.options.servername as string | undefined) || undefined;
      const sessionKey = servername ?? '';
      const secure = tls.connect({
        highWaterMark: SOCKET_BUFFER,
        ...o.tls.options,
        host,
        servername,
        session: sessions.get(sessionKey),
        ALPNProtocols: ['http/1.1'],
        socket: socket!,
      } as tls.ConnectionOptions);
      secure.on('session', (session: Buffer) => {
        if (sessions.size >= SESSIONS_KEPT && !sessions.has(sessionKey)) sessions.delete(sessions.keys().next().value!);
        sessions.set(sessionKey, session);
      });
      let done = false;
      const left = timeout > 0 ? Math.max(1, timeout - (Date.now() - started)) : 0;
      const timer =
        left > 0
          ? setTimeout(() => {
              finish(new errors.ConnectTimeoutError(`${connector.identity}: TLS handshake not done within ${timeout} ms`));
              secure.destroy();
            }, left)
          : null;
      const finish = (e: Error | null) => {
        if (done) return;
        done = true;
        if (timer !== null) clearTimeout(timer);
        secure.off('error', onError);
        if (e !== null) sessions.delete(sessionKey);
        if (e === null) callback(null, secure);
        else callback(e, null);
      };
      const onError = (e: Error) => finish(e);
      secure.once('secureConnect', () => finish(null));
      secure.once('error', onError);
    });
  };
}

function h2Pool(connector: Connector, host: string, o: PoolOptions): TargetPool {
  return new H2Pool({
    origin: originOf(o.protocol === 'h2' ? 'https' : 'http', connector.identity),
    connector,
    host,
    tls: o.protocol === 'h2' ? (o.tls?.options ?? {}) : undefined,
    connectTimeout: o.connectTimeout,
    responseTimeout: o.responseTimeout,
    idleTimeout: o.idleTimeout,
    ...(o.maxConnections > 0 ? { maxSessions: o.maxConnections } : {}),
  }) as unknown as TargetPool;
}

/**
 * A pool's origin: the scheme and the target's `host:port` (what undici
 * and node:http2 name the peer by). An identity that is not an authority
 * (a tunnel service code) gets a placeholder: the connector, not the
 * origin, decides where connections go.
 */
function originOf(scheme: 'http' | 'https', identity: string): string {
  return parseHostPort(identity) !== undefined ? `${scheme}://${identity}` : `${scheme}://target.invalid`;
}
