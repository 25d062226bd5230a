import net from 'node:net';
import { parseHostPort, type HostPort } from '../../net/address.js';

/**
 * The client side of the sealed-address gateway (docs/sealed.md
 * "Client library"): `connectSealed` opens a connection, sends the line,
 * and hands back the socket once the gateway answered `200` — from then
 * on it is a plain byte stream to the backend.
 *
 * This module imports nothing but node:net and a host:port parser, so an
 * application can use it without the gateway: `portico/dist/l4/sealed/client.js`.
 */

/**
 * Why `connectSealed` failed. The first four are the gateway's answers
 * (`status` is the number it sent); `UNEXPECTED` is any other 3 bytes
 * (`status` is their number, or 0); `CLOSED` is a connection that could
 * not be made or closed before 3 bytes came; `TIMEOUT` is no answer in
 * time. `status` is 0 for the last two.
 */
export type SealedConnectErrorCode = 'BAD_LINE' | 'BAD_SEAL' | 'DIAL_FAILED' | 'DIAL_TIMEOUT' | 'UNEXPECTED' | 'CLOSED' | 'TIMEOUT';

export class SealedConnectError extends Error {
  readonly code: SealedConnectErrorCode;
  readonly status: number;
  constructor(code: SealedConnectErrorCode, status: number, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SealedConnectError';
    this.code = code;
    this.status = status;
  }
}

/** The gateway's answers other than `200`, by their 3 ASCII digits. */
const FAILURES: Record<string, SealedConnectErrorCode> = { '400': 'BAD_LINE', '401': 'BAD_SEAL', '502': 'DIAL_FAILED', '504': 'DIAL_TIMEOUT' };

export interface ConnectSealedOptions {
  /** Time for the whole handshake (connect, line, answer), ms; default 10,000. The gateway's own dial may take retry × timeout. */
  timeout?: number;
  /** Aborts the handshake (rejects with CLOSED, the socket destroyed). */
  signal?: AbortSignal;
  /** Passed to net.connect (e.g. `localAddress`, `family`). */
  connect?: Omit<net.TcpNetConnectOpts, 'host' | 'port' | 'timeout'>;
}

/**
 * Connects to a sealed-address gateway and asks for the backend that
 * `cipherLine` names (a v1 `openssl enc -a` line — wrapped lines are
 * joined — or a v2 `v2.…` line). Resolves with the socket once the
 * gateway answered `200`; bytes that arrived with the answer are put back
 * into the socket (unshift), so nothing the backend sent first is lost.
 * Attach 'data' listeners or pipe as with any fresh socket; the socket's
 * errors are the caller's to handle from then on.
 *
 * Rejects with a SealedConnectError; a malformed `gateway` or an empty
 * line rejects with a RangeError before anything is sent.
 */
export function connectSealed(gateway: HostPort | string, cipherLine: string, options: ConnectSealedOptions = {}): Promise<net.Socket> {
  const target = typeof gateway === 'string' ? parseHostPort(gateway) : gateway;
  if (!target || !Number.isInteger(target.port) || target.port < 1 || target.port > 65535 || target.host === '') {
    return Promise.reject(new RangeError(`not a gateway address: ${String(typeof gateway === 'string' ? gateway : JSON.stringify(gateway))}`));
  }
  // `openssl enc -a` wraps at 64 columns; the wire wants one line.
  const line = cipherLine.replace(/[\r\n]+/g, '').trim();
  if (line === '' || !/^[\x21-\x7e]+$/.test(line)) return Promise.reject(new RangeError('the sealed line is empty or not printable ASCII'));
  const timeoutMs = options.timeout ?? 10_000;

  return new Promise((resolve, reject) => {
    const signal = options.signal;
    if (signal?.aborted) return reject(new SealedConnectError('CLOSED', 0, 'aborted before connecting'));
    const socket = net.connect({ ...options.connect, host: target.host, port: target.port });
    let got: Buffer = Buffer.alloc(0);
    let done = false;
    const finish = (err: SealedConnectError | null, extra?: Buffer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('error', onError);
      socket.off('close', onClose);
      if (err !== null) {
        socket.destroy();
        return reject(err);
      }
      // Back into the socket's buffer: the caller reads these first. With the
      // 'readable' listener gone, the stream returns to its initial mode, so a
      // later 'data' listener or pipe() starts the flow as usual.
      if (extra !== undefined && extra.length > 0) socket.unshift(extra);
      resolve(socket);
    };
    const onReadable = () => {
      let chunk: Buffer | null;
      while (!done && (chunk = socket.read() as Buffer | null) !== null) {
        got = got.length === 0 ? chunk : Buffer.concat([got, chunk]);
        if (got.length < 3) continue;
        const code = got.toString('latin1', 0, 3);
        if (code === '200') return finish(null, got.subarray(3));
        const failure = FAILURES[code];
        if (failure !== undefined) return finish(new SealedConnectError(failure, Number(code), `the gateway answered ${code}`));
        return finish(new SealedConnectError('UNEXPECTED', /^\d{3}$/.test(code) ? Number(code) : 0, `unexpected answer ${JSON.stringify(code)}`));
      }
    };
    const onEnd = () => finish(new SealedConnectError('CLOSED', 0, `the gateway closed after ${got.length} of 3 answer bytes`));
    const onClose = () => finish(new SealedConnectError('CLOSED', 0, 'the connection closed before an answer'));
    const onError = (err: Error) => finish(new SealedConnectError('CLOSED', 0, `connection to the gateway failed: ${err.message}`, { cause: err }));
    const onAbort = () => finish(new SealedConnectError('CLOSED', 0, 'aborted'));
    const timer = setTimeout(() => finish(new SealedConnectError('TIMEOUT', 0, `no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.on('readable', onReadable);
    socket.once('end', onEnd);
    socket.once('error', onError);
    socket.once('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.setNoDelay(true);
    socket.write(`${line}\n`);
  });
}
