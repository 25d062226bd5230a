import type net from 'node:net';

/** The HTTP/2 client connection preface (RFC 9113 §3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * Reads the first bytes of a cleartext connection until they either are the
 * HTTP/2 preface (prior knowledge, RFC 9113 §3.3) or cannot be, puts them
 * back (`unshift`), and calls `decide` once. An HTTP/1.1 request line
 * differs from the preface at its first byte or soon after, so this reads
 * one segment in practice. A connection that sends nothing within
 * `timeoutMs`, or ends or closes first, is destroyed without a decision
 * (the listening socket allows half-open connections, for node:http).
 */
export function sniffPreface(socket: net.Socket, timeoutMs: number, decide: (isH2: boolean) => void): void {
  let seen: Buffer | null = null;
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  const finish = (isH2: boolean, data: Buffer) => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('close', onClose);
    socket.pause();
    socket.unshift(data);
    decide(isH2);
    // The server that took the socket reads from it now.
    process.nextTick(() => socket.resume());
  };
  const onData = (chunk: Buffer) => {
    const data = seen === null ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(data.length, PREFACE.length);
    if (data.compare(PREFACE, 0, n, 0, n) !== 0) return finish(false, data);
    if (n === PREFACE.length) return finish(true, data);
    seen = data;
  };
  const onClose = () => clearTimeout(timer);
  const onEnd = () => socket.destroy();
  socket.on('data', onData);
  socket.once('end', onEnd);
  socket.once('close', onClose);
}

/** Whether `first` (the first bytes of a cleartext connection) is the HTTP/2 preface or a beginning of it. */
export function mayBePreface(first: Buffer): boolean {
  const n = Math.min(first.length, PREFACE.length);
  return first.compare(PREFACE, 0, n, 0, n) === 0;
}
