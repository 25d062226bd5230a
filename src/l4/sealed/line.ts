import type net from 'node:net';

/** Why no line could be read: the first three are answered `400`; `CLOSED` cannot be answered. */
export type LineFailure = 'TOO_LONG' | 'EOF' | 'TIMEOUT' | 'READ_ERROR' | 'CLOSED';

export class LineError extends Error {
  readonly reason: LineFailure;
  constructor(reason: LineFailure, message: string) {
    super(message);
    this.name = 'LineError';
    this.reason = reason;
  }
}

export interface ReadLine {
  /** The line without its `\n` (and without a `\r` just before it). */
  line: Buffer;
  /** Bytes that came after the `\n` in the same reads: the start of the client's stream. */
  rest: Buffer;
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * Reads the sealed listener's one line from `socket`, `head` (bytes already
 * read, e.g. after a PROXY header) first. The line may have at most `limit`
 * bytes before its `\n` (a `\r` just before the `\n` is not counted);
 * reading stops with TOO_LONG as soon as that is exceeded, so a client
 * cannot make Portico buffer more than about one read past the limit.
 * Rejects with EOF if the client ends its side first, TIMEOUT after
 * `timeoutMs`, READ_ERROR on a socket error, CLOSED if the socket closes.
 *
 * On success the socket is left paused with no listeners of this function:
 * whatever the client sends next stays in the socket for the caller.
 */
export function readLine(socket: net.Socket, head: Buffer, limit: number, timeoutMs: number): Promise<ReadLine> {
  return new Promise((resolve, reject) => {
    let buf = head;
    const settle = (err: LineError | null, result?: ReadLine) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.pause();
      if (err !== null) reject(err);
      else resolve(result!);
    };
    /** True once settled. */
    const scan = (): boolean => {
      const lf = buf.indexOf(LF);
      if (lf >= 0) {
        const end = lf > 0 && buf[lf - 1] === CR ? lf - 1 : lf;
        if (end > limit) settle(new LineError('TOO_LONG', `no newline within ${limit} bytes`));
        else settle(null, { line: buf.subarray(0, end), rest: buf.subarray(lf + 1) });
        return true;
      }
      // limit bytes, then possibly a `\r`: one byte more without a `\n` is too long.
      if (buf.length > limit + 1 || (buf.length === limit + 1 && buf[limit] !== CR)) {
        settle(new LineError('TOO_LONG', `no newline within ${limit} bytes`));
        return true;
      }
      return false;
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      scan();
    };
    const onEnd = () => settle(new LineError('EOF', 'the client ended its side before a newline'));
    const onError = (err: Error & { code?: string }) => settle(new LineError('READ_ERROR', `read error: ${err.code ?? err.message}`));
    const onClose = () => settle(new LineError('CLOSED', 'the client closed before a newline'));
    const timer = setTimeout(() => settle(new LineError('TIMEOUT', `no line within ${timeoutMs} ms`)), timeoutMs);
    if (scan()) return;
    if (socket.destroyed) return settle(new LineError('CLOSED', 'the client closed before a newline'));
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.resume();
  });
}
