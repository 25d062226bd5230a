import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { GatewayError } from '../../errors.js';
import { outcomeOf } from '../outcome.js';

/**
 * The status and body of the proxy's own answers: the GatewayError's
 * status, and as `code` the forward proxy's outcome for it (outcomeOf:
 * DIAL_FAILED, DNS_TIMEOUT, FORBIDDEN…), the same value its access-log
 * line has. `Proxy-Authenticate` and the like come from the error's headers.
 */
function body(err: GatewayError): string {
  return JSON.stringify({ error: err.message, code: outcomeOf(err, 'forward-proxy') });
}

/** Answers a forwarded request with `err` (JSON body, as the HTTP listeners' errors), unless a response already started. */
export function answer(res: ServerResponse, err: GatewayError): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const text = body(err);
  res.writeHead(err.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...(err.headers ?? {}) });
  res.end(text);
}

/**
 * Answers on a raw connection (a refused CONNECT, or a request head that
 * could not be parsed) and closes it: the response is written, then the
 * socket is destroyed once the response is flushed and the client closed
 * its side, or after 5 s.
 * What the client still sends is read and dropped, so its FIN is seen.
 */
export function answerAndClose(socket: Duplex, err: GatewayError): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const text = body(err);
  let head = `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n`;
  for (const [name, value] of Object.entries(err.headers ?? {})) head += `${name}: ${value}\r\n`;
  socket.end(`${head}\r\n${text}`);
  const timer = setTimeout(() => socket.destroy(), 5000);
  socket.once('close', () => clearTimeout(timer));
  // Closed once the response is flushed and the client's FIN has been read.
  let pending = socket.readableEnded ? 1 : 2;
  const step = () => --pending === 0 && socket.destroy();
  socket.once('finish', step);
  socket.once('end', step);
  socket.on('data', () => undefined);
  socket.resume();
}
