import type net from 'node:net';
import { parseClientHello, type ClientHello, type ClientHelloFailure } from './client-hello.js';

/** Why no ClientHello could be read: the parser's verdicts, no hello in time, or the client left first. */
export type PeekFailure = ClientHelloFailure | 'timeout' | 'closed';

export class ClientHelloError extends Error {
  readonly reason: PeekFailure;
  constructor(reason: PeekFailure, message: string) {
    super(message);
    this.name = 'ClientHelloError';
    this.reason = reason;
  }
}

export interface Peeked {
  hello: ClientHello;
  /** Every byte read from the client so far (`head` included), unchanged: to be relayed first. */
  bytes: Buffer;
}

export interface PeekOptions {
  /** The whole ClientHello must arrive within this time from the call. */
  timeoutMs: number;
  /** Most bytes its records may take (see parseClientHello). */
  maxBytes: number;
}

/**
 * Reads a client's ClientHello without consuming it: resolves with the
 * hello and every byte read, once the records that carry it are in (the
 * socket is then paused, with anything later still unread in it). `head`
 * is what was read before (after a PROXY header). Rejects with a
 * ClientHelloError when the bytes are not a ClientHello, when it does not
 * arrive within `timeoutMs` or fit in `maxBytes`, or when the client ends
 * or closes first; the caller closes the socket. The parser runs again
 * only once enough bytes for its next step are in, so a hello sent a byte
 * at a time costs no more than one sent at once.
 */
export function peekClientHello(socket: net.Socket, head: Buffer, o: PeekOptions): Promise<Peeked> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = head.length > 0 ? [head] : [];
    let total = head.length;
    let need = 1;
    let settled = false;
    const finish = (err: ClientHelloError | null, hello?: ClientHello) => {
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onClose);
      socket.pause();
      if (err !== null) return reject(err);
      resolve({ hello: hello!, bytes: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total) });
    };
    const check = () => {
      if (total < need) return;
      const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
      chunks.length = 0;
      chunks.push(data);
      const r = parseClientHello(data, o.maxBytes);
      if (r.status === 'partial') need = r.need;
      else if (r.status === 'ok') finish(null, r.hello);
      else finish(new ClientHelloError(r.reason, r.detail));
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      total += chunk.length;
      check();
    };
    const onEnd = () => finish(new ClientHelloError('closed', `the client ended the connection after ${total} byte(s), before a whole ClientHello`));
    const onClose = () => finish(new ClientHelloError('closed', `the client closed the connection after ${total} byte(s), before a whole ClientHello`));
    const timer = setTimeout(() => finish(new ClientHelloError('timeout', `no whole ClientHello within ${o.timeoutMs} ms (${total} byte(s) read)`)), o.timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onClose);
    check();
    // A socket paused before (e.g. after its PROXY header) does not flow just because 'data' has a listener.
    if (!settled) socket.resume();
  });
}
