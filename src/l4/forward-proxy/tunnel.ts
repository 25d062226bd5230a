import type net from 'node:net';
import { formatHostPort } from '../../config/address.js';
import { connectTcp, DialError } from '../dial.js';
import { splice, type SpliceResult } from '../splice.js';
import { noteSplice } from '../stream-connection.js';
import { answerAndClose, ProxyError } from './respond.js';

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

/** How a tunnel ended: spliced (`ok`), or the dial failed (answered 502/504). */
export type TunnelResult = ({ outcome: 'ok'; status: 200 } & SpliceResult) | { outcome: 'DIAL_FAILED' | 'DIAL_TIMEOUT' | 'CLIENT_CLOSED'; status?: number; error?: string };

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
        return done({ outcome: 'CLIENT_CLOSED' });
      }
      socket.write(ESTABLISHED);
      noteSplice(socket, up, undefined, formatHostPort({ host: o.address, port: o.port }));
      splice(socket, up, { idleMs: o.idleMs, head: o.head }, (r) => done({ outcome: 'ok', status: 200, ...r }));
    },
    (err: unknown) => {
      socket.off('close', onEarlyClose);
      const code = err instanceof DialError ? err.code : 'DIAL_FAILED';
      if (code === 'CANCELLED' || socket.destroyed) return done({ outcome: 'CLIENT_CLOSED' });
      const e = new ProxyError(code === 'DIAL_TIMEOUT' ? 'DIAL_TIMEOUT' : 'DIAL_FAILED', (err as Error).message);
      answerAndClose(socket, e);
      done({ outcome: e.code as 'DIAL_FAILED' | 'DIAL_TIMEOUT', status: e.status, error: e.message });
    },
  );
}
