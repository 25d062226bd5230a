import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/** What the proxy itself answers, by outcome; the code is also the access log's `outcome`. */
export const PROXY_ERRORS = {
  BAD_REQUEST: 400,
  FORBIDDEN: 403,
  PROXY_AUTH_REQUIRED: 407,
  REQUEST_TIMEOUT: 408,
  HEADERS_TOO_LARGE: 431,
  DIAL_FAILED: 502,
  DNS_FAILED: 502,
  UPSTREAM_ERROR: 502,
  DIAL_TIMEOUT: 504,
  DNS_TIMEOUT: 504,
  RESPONSE_TIMEOUT: 504,
} as const;

export type ProxyErrorCode = keyof typeof PROXY_ERRORS;

/** A failure answered by the proxy, with the headers that explain it (Proxy-Authenticate). */
export class ProxyError extends Error {
  readonly code: ProxyErrorCode;
  readonly status: number;
  readonly headers: Record<string, string>;

  constructor(code: ProxyErrorCode, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'ProxyError';
    this.code = code;
    this.status = PROXY_ERRORS[code];
    this.headers = headers;
  }
}

function body(err: ProxyError): string {
  return JSON.stringify({ error: err.message, code: err.code });
}

/** Answers a forwarded request with `err` (JSON body, as the HTTP listeners' errors), unless a response already started. */
export function answer(res: ServerResponse, err: ProxyError): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const text = body(err);
  res.writeHead(err.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...err.headers });
  res.end(text);
}

/**
 * Answers on a raw connection (a refused CONNECT, or a request head that
 * could not be parsed) and closes it: the response is written, then the
 * socket is destroyed once the response is flushed and the client closed
 * its side, or after 5 s.
 * What the client still sends is read and dropped, so its FIN is seen.
 */
export function answerAndClose(socket: Duplex, err: ProxyError): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const text = body(err);
  let head = `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n`;
  for (const [name, value] of Object.entries(err.headers)) head += `${name}: ${value}\r\n`;
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
