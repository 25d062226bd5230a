import net from 'node:net';
import tls from 'node:tls';
import { ConnectTimeoutError, type Connector, type StreamOrigin } from '../runtime/connector.js';
import { formatHostPort } from '../net/address.js';
import { TcpConnector } from '../runtime/tcp-connector.js';
import type { Target } from '../upstream/target.js';
import type { Upstream } from '../upstream/upstream.js';
import { GatewayError } from '../errors.js';
import { DialError } from './dial-error.js';
import { fromDialError } from './outcome.js';
import { encodeProxyHeader, type ProxiedAddresses } from './proxy-protocol/encode.js';

export { DialError, type DialErrorCode } from './dial-error.js';

export interface ConnectOptions {
  /** Per-attempt connect timeout, ms. */
  timeoutMs: number;
  /** TCP keep-alive initial delay, ms; 0 = off. */
  keepAliveMs: number;
  /** Socket buffer (high-water mark) in bytes. */
  highWaterMark: number;
  /** Aborts the attempt (the client went away). */
  signal?: AbortSignal;
}

/**
 * Opens one TCP connection to `host:port` and calls `done` once: with the
 * connected socket, or with DIAL_TIMEOUT after `timeoutMs` / DIAL_FAILED on
 * a refusal or DNS error. Returns a cancel function (the socket is
 * destroyed and `done` is not called). Callback-driven so that the hot
 * path (one dial per proxied connection) makes no promise, closure chain
 * or Error unless the dial fails. The socket is half-open capable and has
 * no timeout of its own.
 */
export function openTcp(host: string, port: number, o: Omit<ConnectOptions, 'signal'>, done: (err: DialError | null, socket: net.Socket | null) => void): () => void {
  return connectVia(new TcpConnector({ host, port }, `${host}:${port}`), o, done);
}

/**
 * Opens one byte stream through `connector` (a target's, or a TCP dial to
 * an address) with the dial's errors: DIAL_TIMEOUT after `timeoutMs`,
 * DIAL_FAILED on a refusal, DNS error or tunnel failure. Returns a cancel
 * function (the stream is destroyed and `done` is not called).
 */
export function connectVia(connector: Connector, o: Omit<ConnectOptions, 'signal'>, done: (err: DialError | null, socket: net.Socket | null) => void, origin?: StreamOrigin): () => void {
  return connector.connect({ timeout: o.timeoutMs, keepAlive: o.keepAliveMs, highWaterMark: o.highWaterMark, allowHalfOpen: true, origin }, (err, socket) => {
    if (err === null) return done(null, socket);
    done(
      err instanceof ConnectTimeoutError
        ? new DialError('DIAL_TIMEOUT', `${connector.identity}: no connection within ${o.timeoutMs} ms`)
        : new DialError('DIAL_FAILED', `${connector.identity}: ${err.message}`),
      null,
    );
  });
}

/**
 * openTcp as a promise, rejecting with a GatewayError (fromDialError:
 * UPSTREAM_CONNECT_REFUSED, UPSTREAM_CONNECT_TIMEOUT); `signal` cancels
 * (rejects with DOWNSTREAM_ABORTED: the client went away).
 */
export function connectTcp(host: string, port: number, o: ConnectOptions): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    if (o.signal?.aborted) return reject(new GatewayError('DOWNSTREAM_ABORTED', 'cancelled'));
    const onAbort = () => {
      cancel();
      reject(new GatewayError('DOWNSTREAM_ABORTED', 'cancelled'));
    };
    const cancel = openTcp(host, port, o, (err, socket) => {
      o.signal?.removeEventListener('abort', onAbort);
      if (err !== null) reject(fromDialError(err));
      else resolve(socket!);
    });
    o.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Wraps a connected socket in TLS (Portico is the client); resolves after the handshake, within `timeoutMs`. */
export function startTls(socket: net.Socket, options: tls.ConnectionOptions, timeoutMs: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = tls.connect({ ...options, socket, allowHalfOpen: true } as tls.ConnectionOptions);
    const timer = setTimeout(() => fail(new DialError('DIAL_TIMEOUT', `TLS handshake not done within ${timeoutMs} ms`)), timeoutMs);
    const fail = (err: DialError) => {
      clearTimeout(timer);
      secure.destroy();
      socket.destroy();
      reject(err);
    };
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      secure.removeAllListeners('error');
      resolve(secure);
    });
    secure.once('error', (err) => fail(new DialError('DIAL_FAILED', `TLS: ${err.message}`)));
  });
}

/** The client and the address it connected to, as `ip:port`. */
function originOf(a: ProxiedAddresses): StreamOrigin {
  return {
    client: formatHostPort({ host: a.sourceAddress, port: a.sourcePort }),
    server: formatHostPort({ host: a.destinationAddress, port: a.destinationPort }),
  };
}

export interface DialUpstreamOptions {
  /** The client's address (consistent hashing, PROXY header). */
  client: ProxiedAddresses;
  /** Dial attempts, each on another target when there is one. */
  attempts: number;
  keepAliveMs: number;
  highWaterMark: number;
}

export interface Dialled {
  socket: net.Socket;
  target: Target;
  /** Attempts made, this one included. */
  attempts: number;
}

/**
 * Connects to a target of `upstream` for one L4 connection: picks a target
 * with the upstream's balancer (consistent hash on the client IP), dials
 * within the upstream's `timeouts.connect`, sends the upstream's PROXY
 * protocol header first, then starts TLS when the upstream has `tls:`.
 *
 * Every failure is a GatewayError (fromDialError) and is reported to
 * passive health. The next target is tried only while the error is
 * `retryable` (refused, unreachable, timed out) and fewer than `attempts`
 * were made; a non-retryable one (a certificate that does not verify) ends
 * the dial at once. `done` gets the connection, or the error of the last
 * attempt (NO_TARGET when there was nothing to pick). Returns a cancel
 * function for a client that went away (`done` is then not called).
 */
export function dialUpstream(upstream: Upstream, o: DialUpstreamOptions, done: (err: GatewayError | null, d: Dialled | null) => void): () => void {
  const tried: Target[] = [];
  const timeoutMs = upstream.config.timeouts.connect;
  let last: GatewayError | null = null;
  let cancelled = false;
  let cancelAttempt: (() => void) | null = null;
  let target: Target | undefined;

  const failed = (cause: unknown) => {
    const err = fromDialError(cause);
    last = err;
    upstream.passive?.failure(target!, err.code === 'UPSTREAM_CONNECT_TIMEOUT' ? 'connect timeout' : 'connect error');
    if (err.retryable) next();
    else done(err, null);
  };
  const connected = (socket: net.Socket) => {
    cancelAttempt = null;
    if (upstream.config.proxyProtocol !== 'none') socket.write(encodeProxyHeader(upstream.config.proxyProtocol, o.client));
    const tlsOptions = upstream.tlsOptions;
    if (tlsOptions === null) return done(null, { socket, target: target!, attempts: tried.length });
    const hp = target!.hostPort;
    const servername = upstream.serverNameFor(target!);
    // `host` is what the certificate is checked against without a server name (an IP target: its IP SANs,
    // RFC 6125); node:tls would otherwise check "localhost". No SNI is sent for an IP (RFC 6066 §3).
    cancelAttempt = () => socket.destroy();
    startTls(socket, { ...tlsOptions, host: hp.host, ...(servername === undefined ? {} : { servername }) }, timeoutMs).then(
      (secure) => {
        if (cancelled) return void secure.destroy();
        cancelAttempt = null;
        done(null, { socket: secure, target: target!, attempts: tried.length });
      },
      (err: unknown) => {
        if (!cancelled) failed(err);
      },
    );
  };
  const next = () => {
    target = tried.length < o.attempts ? upstream.pickForConnection(o.client.sourceAddress, tried) : undefined;
    if (target === undefined) {
      done(last ?? new GatewayError('NO_TARGET', `upstream ${upstream.name} has no available target`), null);
      return;
    }
    tried.push(target);
    cancelAttempt = connectVia(target.connector, { timeoutMs, keepAliveMs: o.keepAliveMs, highWaterMark: o.highWaterMark }, (err, socket) => {
      if (err !== null) failed(err);
      else connected(socket!);
      // What a tunnel connector passes on to its agent (the agent's PROXY header); a TCP dial needs none, so plain TCP formats nothing.
    }, target.connector instanceof TcpConnector ? undefined : originOf(o.client));
  };
  next();
  return () => {
    cancelled = true;
    cancelAttempt?.();
  };
}
