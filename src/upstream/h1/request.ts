import type { Readable } from 'node:stream';
import { errors, type Dispatcher } from 'undici';

/**
 * What the HTTP/1.1 client reads of a request: the fields of pool.ts
 * `ProxyDispatchOptions` it uses (declared here so that h1/ imports
 * nothing of the pool layer above it).
 */
export interface H1Request {
  method: Dispatcher.HttpMethod;
  path: string;
  /** Flat `[name, value, …]`. */
  headers: string[];
  body?: Buffer | Readable | null;
  /** The response-head timeout for this request when not the pool's. */
  headersTimeout?: number;
  /** TLS server name (https pools keep connections per name). */
  servername?: string;
  /** An upgrade: not spoken by this client (the pool's fallback takes it). */
  upgrade?: string;
}

/**
 * The head of an outbound HTTP/1.1 request (RFC 9112 §3, §5), built once
 * as one latin1 string: `method path HTTP/1.1`, the header list as given,
 * then the body's framing when the request has a body and the headers do
 * not give it:
 * - a Buffer body: `content-length` (a Content-Length already present
 *   must equal the Buffer's length);
 * - a stream body: `transfer-encoding: chunked` unless a Content-Length is
 *   present (then exactly that many bytes must follow);
 * - no body: nothing is added.
 *
 * A request whose method, path, header names or values hold CR, LF or NUL
 * (RFC 9110 §5.5: they would end the line and start another), whose path
 * holds a space, or whose headers carry their own Transfer-Encoding (the
 * proxy strips it as hop-by-hop; one here could only frame the body twice),
 * is refused with an InvalidArgumentError before any byte is written.
 */
export interface RequestHead {
  text: string;
  /** The Content-Length the body must match: the header's value, or -1 (none: a stream body is sent chunked). */
  contentLength: number;
}

export function requestHead(opts: H1Request): RequestHead | Error {
  const path = opts.path;
  const headers = opts.headers;
  const body = opts.body;
  if (path.indexOf(' ') !== -1 || path.length === 0) return new errors.InvalidArgumentError('invalid request path');
  let text = `${opts.method} ${path} HTTP/1.1\r\n`;
  let length = -1;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    const n = name.length;
    if (n === 14 || n === 17) {
      const lower = name.toLowerCase();
      if (lower === 'content-length') {
        if (!/^\d{1,15}$/.test(value) || (length !== -1 && Number(value) !== length)) return new errors.InvalidArgumentError('invalid content-length header');
        length = Number(value);
      } else if (lower === 'transfer-encoding') {
        return new errors.InvalidArgumentError('transfer-encoding is set by the client, not by the request headers');
      }
    }
    text += `${name}: ${value}\r\n`;
  }
  let lines = headers.length / 2 + 2;
  if (body != null) {
    if (Buffer.isBuffer(body)) {
      if (length === -1) {
        text += `content-length: ${body.length}\r\n`;
        lines++;
        length = body.length;
      } else if (length !== body.length) {
        return new errors.RequestContentLengthMismatchError();
      }
    } else if (length === -1) {
      text += 'transfer-encoding: chunked\r\n';
      lines++;
    }
  }
  text += '\r\n';
  if (!wellFormed(text, lines)) return new errors.InvalidArgumentError('invalid request: CR, LF or NUL in the method, path or a header');
  return { text, contentLength: length };
}

/**
 * Whether `text` has exactly `lines` LFs, each preceded by CR, no other
 * CR and no NUL: then no name or value held a line break of its own. A
 * handful of native `indexOf` calls per request instead of a regular
 * expression per header.
 */
function wellFormed(text: string, lines: number): boolean {
  if (text.indexOf('\0') !== -1) return false;
  let count = 0;
  let i = text.indexOf('\n');
  while (i !== -1) {
    if (text.charCodeAt(i - 1) !== 13) return false;
    count++;
    i = text.indexOf('\n', i + 1);
  }
  if (count !== lines) return false;
  count = 0;
  i = text.indexOf('\r');
  while (i !== -1) {
    count++;
    i = text.indexOf('\r', i + 1);
  }
  return count === lines;
}
