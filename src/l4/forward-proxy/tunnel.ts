import type net from 'node:net';
import { GatewayError } from '../../errors.js';
import { connectTcp } from '../dial.js';
import { splice, type SpliceResult } from '../splice.js';
import { noteSplice } from '../stream-connection.js';
import { answerAndClose } from './respond.js';
import { formatHostPort } from '../../net/address.js';

export interface TunnelOptions {
  /** The checked address and the port to dial. */
  address: string;
  port: number;
  /** Bytes the client sent after the CONNECT head (node:http's `head`): they go first. */
  head: Buffer;
  connectTimeoutMs: number;
  idleMs: number;
  keepAliveMs: number;
  highWaterMark: number;
}

/**
 * How a tunnel ended: spliced (`error` null), or not: the dial failed
 * (answered 502/504: UPSTREAM_CONNECT_REFUSED, UPSTREAM_CONNECT_TIMEOUT) or
 * the client left first (DOWNSTREAM_ABORTED, nothing answered).
 */
export type TunnelResult = { error: null; status: 200; splice: SpliceResult } | { error: GatewayError; status?: number };

const ESTABLISHED = 'HTTP/1.1 200 Connection Established\r\n\r\n';

/**
 * CONNECT (RFC 9110 §9.3.6): dials `address:port`; on success answers 200
 * (no Content-Length or Transfer-Encoding, as a 2xx to CONNECT must not
 * have them) and relays bytes both ways with half-close (splice). A dial
 * that fails is answered 502 (504 on timeout) and the connection closed.
 * The client's socket stays paused while dialling, so what it pipelines
 * after the head waits in its buffer and follows `head` upstream.
 */
export function openTunnel(socket: net.Socket, o: TunnelOptions, done: (r: TunnelResult) => void): void {
  socket.pause();
  const abort = new AbortController();
  const onEarlyClose = () => abort.abort();
  socket.once('close', onEarlyClose);
  connectTcp(o.address, o.port, { timeoutMs: o.connectTimeoutMs, keepAliveMs: o.keepAliveMs, highWaterMark: o.highWaterMark, signal: abort.signal }).then(
    (up) => {
      socket.off('close', onEarlyClose);
      if (socket.destroyed) {
        up.destroy();
        return done({ error: new GatewayError('DOWNSTREAM_ABORTED', 'the client closed before the tunnel was up') });
      }
      socket.write(ESTABLISHED);
      noteSplice(socket, up, undefined, formatHostPort({ host: o.address, port: o.port }));
      splice(socket, up, { idleMs: o.idleMs, head: o.head }, (r) => done({ error: null, status: 200, splice: r }));
    },
    (err: unknown) => {
      socket.off('close', onEarlyClose);
      const e = err instanceof GatewayError ? err : new GatewayError('UPSTREAM_CONNECT_REFUSED', (err as Error).message, { cause: err });
      if (e.code === 'DOWNSTREAM_ABORTED' || socket.destroyed) return done({ error: new GatewayError('DOWNSTREAM_ABORTED', 'the client closed before the tunnel was up') });
      answerAndClose(socket, e);
      done({ error: e, status: e.status });
    },
  );
}
