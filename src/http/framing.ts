import { GatewayError } from '../errors.js';

/**
 * Request message framing (RFC 9112 §6, §7): which transfer codings a
 * request may use, and what a parse error of node:http's parser (llhttp)
 * means for the client. Every answer here ends the connection: once the
 * framing of one message is in doubt, nothing after it on the same
 * connection can be trusted (RFC 9112 §6.3, §11.2).
 */

/** A transfer-coding name is a token (RFC 9110 §5.6.2). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * The error for a request's Transfer-Encoding (all its field lines joined
 * with ", "), or null when it is exactly `chunked`, the one coding this
 * gateway decodes. Empty list elements are ignored (RFC 9110 §5.6.1).
 *
 * - a coding that is not a token, `chunked` with parameters, `chunked`
 *   applied twice (RFC 9112 §7.1), or no coding at all → 400 BAD_FRAMING;
 * - any other coding (`gzip`, `deflate`, `compress`, `xchunked`…), alone or
 *   around `chunked` → 501 UNSUPPORTED_TRANSFER_CODING (RFC 9112 §6.1). The
 *   gateway neither decodes such a body nor can pass its coding on, so a
 *   request it cannot frame (`chunked, gzip`: chunked not last, RFC 9112
 *   §6.3) gets the same 501 as one it could frame but not forward
 *   (`gzip, chunked`); nginx answers both the same way.
 */
export function transferCodingError(value: string): GatewayError | null {
  if (value === 'chunked') return null;
  let chunked = 0;
  let unsupported: string | undefined;
  let codings = 0;
  for (const element of value.split(',')) {
    const coding = element.trim();
    if (coding === '') continue;
    codings++;
    const semi = coding.indexOf(';');
    const name = (semi < 0 ? coding : coding.slice(0, semi)).trimEnd().toLowerCase();
    if (!TOKEN.test(name)) return new GatewayError('BAD_FRAMING', `invalid Transfer-Encoding: ${JSON.stringify(value)}`);
    if (name === 'chunked') {
      if (semi >= 0) return new GatewayError('BAD_FRAMING', 'the chunked transfer coding takes no parameters');
      chunked++;
    } else {
      unsupported ??= name;
    }
  }
  if (unsupported !== undefined) return new GatewayError('UNSUPPORTED_TRANSFER_CODING', `transfer coding "${unsupported}" is not implemented (only chunked is)`);
  if (codings === 0) return new GatewayError('BAD_FRAMING', 'empty Transfer-Encoding');
  if (chunked > 1) return new GatewayError('BAD_FRAMING', 'chunked applied more than once');
  return null;
}

/** A parse error as node:http reports it ('clientError'). */
export interface ParserError extends Error {
  code?: string;
  /** llhttp's reason, e.g. "Invalid character in chunk size". */
  reason?: string;
  /** The bytes being parsed when the error happened. */
  rawPacket?: Buffer;
}

/**
 * What node:http reports as a client error when the client went away rather
 * than sent bad bytes: the connection reset or broken, or its side ended
 * before the message did (llhttp's "invalid EOF state").
 */
const GONE_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT', 'HPE_INVALID_EOF_STATE']);

/** The client left mid-request (not a framing error): 499, logged as DOWNSTREAM_ABORTED, nothing to answer. */
export function clientGone(err: ParserError): boolean {
  return err.code !== undefined && GONE_CODES.has(err.code);
}

/** llhttp codes that mean the head's framing headers (Content-Length, Transfer-Encoding) are invalid. */
const FRAMING_CODES = new Set(['HPE_INVALID_CONTENT_LENGTH', 'HPE_UNEXPECTED_CONTENT_LENGTH', 'HPE_INVALID_TRANSFER_ENCODING']);

/**
 * The gateway error for a downstream parse or timeout error of node:http.
 * `inBody`: a request's head was accepted and its body was being read, so
 * any parse error is one of the body's framing (chunk size, extension,
 * missing CRLF, data longer than its size, trailers). The message names
 * llhttp's code so the client and the log can tell the cases apart.
 */
export function parserError(err: ParserError, inBody: boolean): GatewayError {
  const code = err.code ?? 'unknown';
  const detail = `${err.reason ?? err.message} (${code})`;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return new GatewayError('REQUEST_TIMEOUT', inBody ? 'request body not received in time (timeouts.request)' : undefined);
  }
  if (code === 'HPE_HEADER_OVERFLOW') return new GatewayError('HEADERS_TOO_LARGE', `request head too large (${code})`);
  if (code === 'HPE_INVALID_TRANSFER_ENCODING') {
    const te = transferEncodingIn(err.rawPacket);
    const refused = te === undefined ? null : transferCodingError(te);
    if (refused !== null) return refused;
  }
  if (inBody || FRAMING_CODES.has(code)) return new GatewayError('BAD_FRAMING', `invalid request framing: ${detail}`);
  return new GatewayError('BAD_REQUEST', `bad request: ${detail}`);
}

/** The Transfer-Encoding field lines of a raw request head, joined; undefined when there are none. */
function transferEncodingIn(raw: Buffer | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const head = raw.toString('latin1');
  const end = head.indexOf('\r\n\r\n');
  let te: string | undefined;
  for (const m of (end < 0 ? head : head.slice(0, end)).matchAll(/^transfer-encoding[ \t]*:(.*)$/gim)) {
    const v = m[1]!.trim();
    te = te === undefined ? v : `${te}, ${v}`;
  }
  return te;
}
