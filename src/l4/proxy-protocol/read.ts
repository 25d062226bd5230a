import type net from 'node:net';
import type { ProxiedAddresses } from './encode.js';
import { isHeaderStart, parseProxyHeader, type ProxyHeader } from './parse.js';

export interface ProxyHeaderResult {
  /** The addresses the header carries; null when absent, or a LOCAL/UNKNOWN header (use the connection's own). */
  addresses: ProxiedAddresses | null;
  /** Whether a header was present. */
  present: boolean;
  /** Bytes read past the header (the start of the client's data), to be relayed first. */
  rest: Buffer;
  /** The parsed header, when present. */
  header?: ProxyHeader;
}

/**
 * Why no header was read: `missing` (required, and the first bytes are not
 * one), `malformed`, `timeout` (not complete within the time), `closed`
 * (the client ended, reset or closed first).
 */
export class ProxyProtocolError extends Error {
  readonly reason: 'missing' | 'malformed' | 'timeout' | 'closed';
  constructor(reason: 'missing' | 'malformed' | 'timeout' | 'closed', message: string) {
    super(message);
    this.name = 'ProxyProtocolError';
    this.reason = reason;
  }
}

/**
 * Reads a PROXY protocol header (v1 or v2, proxy-protocol.txt) from the
 * start of `socket`'s stream, within `timeoutMs`.
 *
 * Resolves with the header's addresses and the bytes read past it (`rest`,
 * never consumed: the caller relays them first). The socket is left paused
 * with no listener of this function on it, and the timer cleared, whatever
 * the outcome.
 *
 * - `required: true`: first bytes that cannot start a header reject
 *   `missing`; a header not complete in time rejects `timeout`.
 * - `required: false` (accept): first bytes that cannot start a header
 *   resolve `present: false` with those bytes as `rest`. On the timeout,
 *   bytes that are still only a prefix of `PROXY ` or of the v2 signature
 *   (possibly none: a server-first protocol such as SMTP or MySQL, whose
 *   client waits for the server) also resolve `present: false`; a header
 *   already begun (the whole `PROXY ` or signature received) rejects
 *   `timeout`. Server-first protocols thus wait `timeoutMs` before the
 *   upstream is dialled in accept mode.
 * - A malformed header rejects `malformed` in both modes (the spec forbids
 *   guessing). An error or close before the header is complete rejects
 *   `closed`; so does an end of stream (FIN), except in accept mode before
 *   a header has begun: then the bytes so far (maybe none) are the
 *   client's whole data, resolved as `present: false`, and the socket has
 *   already ended (`readableEnded`; `pipe()` still ends its destination).
 */
export function readProxyHeader(socket: net.Socket, o: { required: boolean; timeoutMs: number }): Promise<ProxyHeaderResult> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed || socket.readableEnded) return reject(new ProxyProtocolError('closed', 'connection closed before a PROXY header'));
    let buf: Buffer = EMPTY;
    let done = false;
    const finish = (outcome: ProxyHeaderResult | ProxyProtocolError) => {
      if (done) return;
      done = true;
      // Paused first, synchronously: no 'data' may be emitted with no listener (it would be lost).
      socket.pause();
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onClose);
      socket.off('error', onError);
      if (outcome instanceof ProxyProtocolError) reject(outcome);
      else resolve(outcome);
    };
    const absent = (): ProxyHeaderResult => ({ present: false, addresses: null, rest: buf });
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const r = parseProxyHeader(buf);
      switch (r.kind) {
        case 'incomplete':
          return;
        case 'header':
          return finish({ present: true, addresses: r.header.addresses, rest: buf.subarray(r.header.consumed), header: r.header });
        case 'not-proxy':
          return finish(o.required ? new ProxyProtocolError('missing', 'the connection does not start with a PROXY header') : absent());
        case 'malformed':
          return finish(new ProxyProtocolError('malformed', r.reason));
      }
    };
    const onEnd = () => {
      if (!o.required && !isHeaderStart(buf)) return finish(absent());
      finish(new ProxyProtocolError('closed', 'the client ended the connection before a complete PROXY header'));
    };
    const onClose = () => finish(new ProxyProtocolError('closed', 'connection closed before a complete PROXY header'));
    const onError = (err: Error) => finish(new ProxyProtocolError('closed', `connection error before a complete PROXY header: ${err.message}`));
    const onTimeout = () => {
      if (!o.required && !isHeaderStart(buf)) return finish(absent());
      finish(new ProxyProtocolError('timeout', `no complete PROXY header within ${o.timeoutMs} ms`));
    };
    const timer = setTimeout(onTimeout, o.timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onClose);
    socket.once('error', onError);
    socket.resume();
  });
}

const EMPTY = Buffer.alloc(0);
