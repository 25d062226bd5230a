import net from 'node:net';
import tls from 'node:tls';
import { parseHostPort } from '../config/address.js';
import type { Target } from '../upstream/target.js';
import type { Upstream } from '../upstream/upstream.js';
import { encodeProxyHeader, type ProxiedAddresses } from './proxy-protocol/encode.js';

/** Why no upstream connection could be made. `NO_TARGET`: the upstream has no target to pick (all drained or ejected). */
export type DialErrorCode = 'DIAL_FAILED' | 'DIAL_TIMEOUT' | 'NO_TARGET' | 'CANCELLED';

export class DialError extends Error {
  readonly code: DialErrorCode;
  constructor(code: DialErrorCode, message: string) {
    super(message);
    this.name = 'DialError';
    this.code = code;
  }
}

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
 * Opens one TCP connection to `host:port`. Resolves once connected; rejects
 * with DIAL_TIMEOUT after `timeoutMs`, DIAL_FAILED on a refusal or DNS
 * error, CANCELLED when `signal` fires. The socket is half-open capable
 * (allowHalfOpen) and has no timeout of its own.
 */
export function connectTcp(host: string, port: number, o: ConnectOptions): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    if (o.signal?.aborted) return reject(new DialError('CANCELLED', 'cancelled'));
    // highWaterMark reaches the socket's stream options (missing from @types/node 20's NetConnectOpts).
    const socket = net.connect({ host, port, allowHalfOpen: true, noDelay: true, highWaterMark: o.highWaterMark } as net.NetConnectOpts);
    const finish = (err: DialError | null) => {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      if (err === null) return resolve(socket);
      socket.destroy();
      reject(err);
    };
    const onConnect = () => {
      if (o.keepAliveMs > 0) socket.setKeepAlive(true, o.keepAliveMs);
      finish(null);
    };
    const onError = (err: Error) => finish(new DialError('DIAL_FAILED', `${host}:${port}: ${err.message}`));
    const onAbort = () => finish(new DialError('CANCELLED', 'cancelled'));
    const timer = setTimeout(() => finish(new DialError('DIAL_TIMEOUT', `${host}:${port}: no connection within ${o.timeoutMs} ms`)), o.timeoutMs);
    socket.once('connect', onConnect);
    socket.once('error', onError);
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

export interface DialUpstreamOptions {
  /** The client's address (consistent hashing, PROXY header). */
  client: ProxiedAddresses;
  /** Dial attempts, each on another target when there is one. */
  attempts: number;
  keepAliveMs: number;
  highWaterMark: number;
  signal?: AbortSignal;
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
 * within the upstream's `timeouts.connect`, and on failure tries the next
 * target, up to `attempts`. Sends the upstream's PROXY protocol header
 * first, then starts TLS when the upstream has `tls:`. Failures are
 * reported to passive health. The error of the last attempt is thrown.
 */
export async function dialUpstream(upstream: Upstream, o: DialUpstreamOptions): Promise<Dialled> {
  const tried: Target[] = [];
  let last: DialError = new DialError('NO_TARGET', `upstream ${upstream.name} has no available target`);
  const timeoutMs = upstream.config.timeouts.connect;
  for (let attempt = 1; attempt <= o.attempts; attempt++) {
    const target = upstream.pickForConnection(o.client.sourceAddress, tried);
    if (target === undefined) break;
    tried.push(target);
    const hp = parseHostPort(target.address)!;
    try {
      let socket = await connectTcp(hp.host, hp.port, { timeoutMs, keepAliveMs: o.keepAliveMs, highWaterMark: o.highWaterMark, signal: o.signal });
      if (upstream.config.proxyProtocol !== 'none') socket.write(encodeProxyHeader(upstream.config.proxyProtocol, o.client));
      const tlsOptions = upstream.tlsOptions;
      if (tlsOptions !== null) {
        const servername = upstream.serverNameFor(target);
        socket = await startTls(socket, servername === undefined ? tlsOptions : { ...tlsOptions, servername }, timeoutMs);
      }
      return { socket, target, attempts: attempt };
    } catch (err) {
      last = err as DialError;
      if (last.code === 'CANCELLED') throw last;
      upstream.passive?.failure(target, last.code === 'DIAL_TIMEOUT' ? 'connect timeout' : 'connect error');
    }
  }
  throw last;
}
