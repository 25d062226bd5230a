import { isValidCode } from '../code-pattern.js';

/**
 * The relay client's handshake (tunnel spec, "Relay"): one request line
 * from the client, one status line from the relay, then the connection is
 * spliced to the service.
 *
 *   request = "PORTICO-RELAY/1" SP code SP token EOL     (≤ 1024 bytes, EOL included)
 *   status  = 3DIGIT SP reason EOL                      (≤ 256 bytes, EOL included)
 *   EOL     = LF / CR LF
 *   code    = 1*63( ALPHA / DIGIT / "_" / "." / "-" )
 *   token   = 1*512( %x21-7E )                          (printable ASCII, no space)
 *
 * Both readers are incremental: they are fed the chunks as they arrive,
 * keep at most the cap in memory (a copy of the line so far, never a
 * reference to a chunk), refuse a line as soon as it cannot be valid any
 * more (a wrong prefix, a byte that is not allowed, the cap reached without
 * an end of line), and hand back the bytes after the line (`rest`, a view
 * of the last chunk) for the splice. They never throw on input.
 */

export const RELAY_REQUEST_PREFIX = 'PORTICO-RELAY/1 ';
/** Longest request line, its end of line included. */
export const MAX_RELAY_REQUEST = 1024;
/** Longest status line, its end of line included. */
export const MAX_RELAY_STATUS = 256;
export const MAX_RELAY_TOKEN = 512;

/** The relay's answers, and their reason phrases. */
export const RELAY_STATUS = {
  200: 'ok',
  400: 'bad request',
  /** The token is unknown, or the code is not allowed for it: one answer for both. */
  401: 'unauthorized',
  /** Allowed, but nobody registered the code. */
  404: 'unknown code',
  /** Registered, but every registration is down or refused the stream. */
  503: 'unavailable',
} as const;

export type RelayStatusCode = keyof typeof RELAY_STATUS;

export interface RelayRequest {
  code: string;
  token: string;
}

export type RelayRequestResult =
  | { done: false }
  | { done: true; request: RelayRequest; rest: Buffer }
  | { done: true; error: 'bad request' | 'too long' };

export type RelayStatusResult =
  | { done: false }
  | { done: true; status: number; reason: string; rest: Buffer }
  | { done: true; error: 'bad status' | 'too long' };

const TOKEN = /^[\x21-\x7e]{1,512}$/;

/** True iff `token` is 1-512 printable ASCII characters without spaces. */
export function isValidRelayToken(token: unknown): token is string {
  return typeof token === 'string' && TOKEN.test(token);
}

/** The request line for `code` and `token` (LF-terminated). Throws a RangeError for an invalid code or token (nothing is sent). */
export function formatRelayRequest(code: string, token: string): string {
  if (!isValidCode(code)) throw new RangeError(`invalid service code ${JSON.stringify(code)}: expected 1-63 of A-Z a-z 0-9 _ . -`);
  if (!isValidRelayToken(token)) throw new RangeError('invalid relay token: expected 1-512 printable ASCII characters without spaces');
  return `${RELAY_REQUEST_PREFIX}${code} ${token}\n`;
}

/** The status line for `status` (LF-terminated), e.g. "401 unauthorized\n". */
export function formatRelayStatus(status: RelayStatusCode): string {
  return `${status} ${RELAY_STATUS[status]}\n`;
}

/**
 * Collects one line (up to `cap` bytes, EOL included) across chunks.
 * `allowed(byte, index)` says whether a byte (not CR/LF) may appear at that
 * index of the line; a CR is allowed only right before the LF.
 */
class LineCollector {
  readonly #line: Buffer;
  #length = 0;
  /** The previous byte was a CR (it must be followed by LF). */
  #cr = false;

  constructor(
    readonly cap: number,
    private readonly allowed: (byte: number, index: number) => boolean,
  ) {
    this.#line = Buffer.allocUnsafe(cap);
  }

  /**
   * Scans `chunk`: 'more' (no end of line yet, all bytes acceptable),
   * 'bad' (a byte that can never be part of a valid line), 'long' (cap
   * reached without an end of line), or the line (without its EOL) and the
   * bytes after it.
   */
  push(chunk: Buffer): 'more' | 'bad' | 'long' | { line: string; rest: Buffer } {
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b === 0x0a) {
        const line = this.#line.toString('latin1', 0, this.#cr ? this.#length - 1 : this.#length);
        return { line, rest: chunk.subarray(i + 1) };
      }
      if (this.#cr) return 'bad';
      if (this.#length + 1 >= this.cap) return 'long'; // even an LF right after this byte would exceed the cap
      if (b === 0x0d) this.#cr = true;
      else if (!this.allowed(b, this.#length)) return 'bad';
      this.#line[this.#length++] = b;
    }
    return 'more';
  }
}

const PREFIX_BYTES = Buffer.from(RELAY_REQUEST_PREFIX, 'latin1');

/**
 * The relay's reader of a client's request line. `push` answers not done
 * yet, the request and the bytes after it, or an error: 'too long' when
 * 1024 bytes arrived without an end of line (refused at that byte), 'bad
 * request' for anything else that is not a valid line (refused at the
 * first byte that makes it invalid when possible: a wrong prefix, a
 * control or non-ASCII byte). Once done, the reader must not be pushed
 * again (it throws: a caller bug, not bad input).
 */
export class RelayRequestReader {
  readonly #collector = new LineCollector(MAX_RELAY_REQUEST, (b, i) => (i < PREFIX_BYTES.length ? b === PREFIX_BYTES[i] : b >= 0x20 && b <= 0x7e));
  #result: RelayRequestResult | null = null;

  push(chunk: Buffer): RelayRequestResult {
    if (this.#result !== null) throw new Error('RelayRequestReader.push after the request was read');
    const r = this.#collector.push(chunk);
    if (r === 'more') return { done: false };
    if (r === 'bad') return (this.#result = { done: true, error: 'bad request' });
    if (r === 'long') return (this.#result = { done: true, error: 'too long' });
    const request = parseRequestLine(r.line);
    this.#result = request === null ? { done: true, error: 'bad request' } : { done: true, request, rest: r.rest };
    return this.#result;
  }
}

/** The code and token of a request line without its EOL, or null. */
export function parseRelayRequestLine(line: string): RelayRequest | null {
  return parseRequestLine(line);
}

function parseRequestLine(line: string): RelayRequest | null {
  if (!line.startsWith(RELAY_REQUEST_PREFIX)) return null;
  const fields = line.slice(RELAY_REQUEST_PREFIX.length).split(' ');
  if (fields.length !== 2) return null;
  const [code, token] = fields as [string, string];
  if (!isValidCode(code) || !isValidRelayToken(token)) return null;
  return { code, token };
}

/**
 * The client's reader of the relay's status line: the status (any three
 * digits 100-599; the caller maps unknown ones), its reason and the bytes
 * after the line (the first bytes of the service). 'too long' at 256 bytes
 * without an end of line; 'bad status' for a line that is not
 * `3DIGIT SP reason` of printable ASCII.
 */
export class RelayStatusReader {
  readonly #collector = new LineCollector(MAX_RELAY_STATUS, (b, i) => (i < 3 ? b >= 0x30 && b <= 0x39 : i === 3 ? b === 0x20 : b >= 0x20 && b <= 0x7e));
  #result: RelayStatusResult | null = null;

  push(chunk: Buffer): RelayStatusResult {
    if (this.#result !== null) throw new Error('RelayStatusReader.push after the status was read');
    const r = this.#collector.push(chunk);
    if (r === 'more') return { done: false };
    if (r === 'bad') return (this.#result = { done: true, error: 'bad status' });
    if (r === 'long') return (this.#result = { done: true, error: 'too long' });
    const m = /^([1-5]\d\d) ([\x20-\x7e]*)$/.exec(r.line);
    this.#result = m === null ? { done: true, error: 'bad status' } : { done: true, status: Number(m[1]), reason: m[2]!, rest: r.rest };
    return this.#result;
  }
}
