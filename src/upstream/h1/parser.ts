/**
 * A strict, incremental HTTP/1.1 response parser (RFC 9112) for the
 * upstream client: the status line, header fields, the body's framing
 * (Content-Length, chunked, or close-delimited) and trailers.
 *
 * It is fed the socket's own chunks (`execute`) and never copies body
 * bytes: each body chunk handed to the sink is a `subarray` of a chunk it
 * was fed. A head or trailer section split across chunks is joined (at
 * most `maxHeaderSize` bytes). It never throws on any input: a violation
 * ends the message with a `ResponseParseError` whose `code` is an
 * llhttp-style `HPE_*` name.
 *
 * What it refuses (each is a framing an intermediary must not guess at):
 * - a status line other than `HTTP/1.1` or `HTTP/1.0`, SP, three digits,
 *   then end of line or SP and a reason phrase (RFC 9112 §4);
 * - a line ended by a bare LF, a CR not followed by LF (RFC 9112 §2.2
 *   allows a recipient to accept bare LF; an intermediary that does so
 *   can disagree with the next hop about where the head ends);
 * - obs-fold (a line starting with SP or HTAB, RFC 9112 §5.2), a field
 *   name that is not a token or is followed by whitespace before the colon
 *   (§5.1), a field value with a control character other than HTAB
 *   (RFC 9110 §5.5);
 * - a head (or trailer section) over `maxHeaderSize` bytes;
 * - a Content-Length that is not digits only, or two that disagree
 *   (RFC 9110 §8.6);
 * - Transfer-Encoding and Content-Length together: RFC 9112 §6.1 lets a
 *   recipient drop Content-Length, but that is the request-smuggling
 *   shape, so the response is refused instead;
 * - a Transfer-Encoding other than exactly `chunked`: a response with
 *   another coding would be delimited by the connection's close (§6.3),
 *   and its coding cannot be passed on since Transfer-Encoding is
 *   hop-by-hop, so it is refused;
 * - a chunk size that is not hex, longer than `MAX_CHUNK_DIGITS` digits,
 *   a chunk-size line over `MAX_CHUNK_LINE` bytes, chunk data not followed
 *   by CRLF (§7.1);
 * - a 101 (Switching Protocols): upgrades are not sent through this parser.
 *
 * 1xx interim responses (100, 102, 103) are read and dropped (RFC 9110
 * §15.2). A response to HEAD, and a 204 or 304, has no body (RFC 9112
 * §6.3); a response with neither Content-Length nor Transfer-Encoding
 * is delimited by the connection's close, and its connection is not
 * reused. Chunk extensions are skipped; trailer fields are checked as
 * header fields are and kept for `trailers`.
 */

/** What the parser hands its output to. Both return false to pause the parser (see `execute`). */
export interface ResponseSink {
  /** A final response head (status 200-999). `raw` is the flat `[name, value, …]` list as received. */
  onResponseHead(status: number, reason: string, raw: Buffer[]): boolean;
  /** Body bytes: a subarray of a chunk given to `execute`, never empty. */
  onResponseBody(chunk: Buffer): boolean;
}

/** A response the parser refused; `code` names the rule (llhttp's names where llhttp has one). */
export class ResponseParseError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'HTTPParserError';
    this.code = code;
  }
}

/** What undici allows a response head by default (node's `http.maxHeaderSize`). */
export const MAX_HEADER_SIZE = 16 * 1024;
/** 13 hex digits: every size up to 2^52 - 1, a safe integer. */
export const MAX_CHUNK_DIGITS = 13;
/** A chunk-size line (size, extensions) longer than this is refused. */
export const MAX_CHUNK_LINE = 4096;

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const COLON = 58;
const SEMI = 59;

/** tchar (RFC 9110 §5.6.2). */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;
/** Bytes allowed in a field value, a reason phrase and a chunk extension: HTAB, SP, VCHAR, obs-text. */
const VALUE = new Uint8Array(256);
VALUE[HTAB] = 1;
for (let c = 0x20; c <= 0x7e; c++) VALUE[c] = 1;
for (let c = 0x80; c <= 0xff; c++) VALUE[c] = 1;
/** Hex digit values + 1 (0: not a hex digit). */
const HEX = new Uint8Array(256);
for (let c = 0; c < 10; c++) HEX[0x30 + c] = c + 1;
for (let c = 0; c < 6; c++) {
  HEX[0x41 + c] = c + 11;
  HEX[0x61 + c] = c + 11;
}

// Parser states.
const HEAD = 0;
const BODY_LENGTH = 1;
const BODY_CLOSE = 2;
const CHUNK_SIZE = 3;
const CHUNK_SIZE_WS = 4;
const CHUNK_EXT = 5;
const CHUNK_SIZE_LF = 6;
const CHUNK_DATA = 7;
const CHUNK_DATA_CR = 8;
const CHUNK_DATA_LF = 9;
const TRAILERS = 10;
const DONE = 11;
const FAILED = 12;

export class ResponseParser {
  private readonly sink: ResponseSink;
  private readonly maxHeaderSize: number;
  private state = HEAD;
  /** The start of a line not complete yet (head or trailers), or null. */
  private pending: Buffer | null = null;
  /** Bytes of the head (or trailer section) read so far. */
  private sectionBytes = 0;
  private statusSeen = false;
  private noBody = false;
  private raw: Buffer[] = [];
  private status = 0;
  private reason = '';
  private http10 = false;
  private contentLength = -1;
  private chunked = false;
  private connectionClose = false;
  private connectionKeepAlive = false;
  /** Body bytes left: of the Content-Length, or of the current chunk. */
  private remaining = 0;
  private chunkDigits = 0;
  private chunkLine = 0;
  /** True while the sink asked for a pause; `execute` returned where it stopped. */
  paused = false;
  /** The connection may carry another request after this response. */
  keepAlive = false;
  /** The upstream's `Keep-Alive: timeout=N` in ms, or -1. */
  keepAliveHintMs = -1;
  /** The trailer fields of a chunked response (flat name, value), or null. */
  trailers: Buffer[] | null = null;
  /** Why the parser stopped, once it failed. */
  error: ResponseParseError | null = null;

  constructor(sink: ResponseSink, maxHeaderSize = MAX_HEADER_SIZE) {
    this.sink = sink;
    this.maxHeaderSize = maxHeaderSize;
  }

  /** Readies the parser for the response to a request; `noBody`: the request was HEAD. */
  reset(noBody: boolean): void {
    this.state = HEAD;
    this.pending = null;
    this.noBody = noBody;
    this.paused = false;
    this.trailers = null;
    this.error = null;
    this.startHead();
  }

  private startHead(): void {
    this.sectionBytes = 0;
    this.statusSeen = false;
    this.raw = [];
    this.status = 0;
    this.reason = '';
    this.http10 = false;
    this.contentLength = -1;
    this.chunked = false;
    this.connectionClose = false;
    this.connectionKeepAlive = false;
    this.keepAlive = false;
    this.keepAliveHintMs = -1;
  }

  /** The parser stopped on an error or was halted. */
  private failed(): boolean {
    return this.state === FAILED;
  }

  /** The response is complete (its last byte parsed, or its close-delimited body ended). */
  get done(): boolean {
    return this.state === DONE;
  }

  /** No byte of a response head has been read (the connection can close now without cutting a response). */
  get idle(): boolean {
    return this.state === HEAD && !this.statusSeen && this.pending === null;
  }

  /**
   * The parser keeps views of bytes it was given (a head or trailer
   * section, or a line of one, not complete yet): the buffer they are in
   * must not be written over before the section ends.
   */
  get holdsInput(): boolean {
    return (this.state === HEAD && !this.idle) || this.state === TRAILERS;
  }

  /** The response head was delivered: what follows is body (an end of stream now cuts the body). */
  get inBody(): boolean {
    return this.state !== HEAD && this.state !== DONE && this.state !== FAILED;
  }

  /** Stops the parser for good (the connection failed while a sink call ran); `execute` then returns -1. */
  halt(): void {
    if (this.state !== DONE) this.state = FAILED;
  }

  /**
   * Parses `buf` from `pos`. Returns the offset after the bytes consumed:
   * `buf.length` when all were (more are needed, or the message is done
   * exactly there), less when the message is `done` (what follows is not
   * this response's) or the sink `paused` the parser (call again with the
   * rest once resumed), or -1 when the response is refused (`error`) or the
   * parser was halted.
   */
  execute(buf: Buffer, pos: number): number {
    this.paused = false;
    const len = buf.length;
    for (;;) {
      switch (this.state) {
        case HEAD:
        case TRAILERS:
          if (pos >= len) return len;
          pos = this.lines(buf, pos);
          if (pos < 0 || this.paused || this.done) return pos;
          continue;
        case BODY_LENGTH: {
          if (pos >= len) return len;
          const n = Math.min(this.remaining, len - pos);
          const end = pos + n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = DONE;
          const go = this.sink.onResponseBody(buf.subarray(pos, end));
          if (this.failed()) return -1;
          if (this.done) return end;
          if (!go) {
            this.paused = true;
            return end;
          }
          pos = end;
          continue;
        }
        case BODY_CLOSE: {
          if (pos >= len) return len;
          const go = this.sink.onResponseBody(pos === 0 ? buf : buf.subarray(pos));
          if (this.failed()) return -1;
          if (!go) this.paused = true;
          return len;
        }
        case CHUNK_DATA: {
          if (pos >= len) return len;
          const n = Math.min(this.remaining, len - pos);
          const end = pos + n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = CHUNK_DATA_CR;
          const go = this.sink.onResponseBody(buf.subarray(pos, end));
          if (this.failed()) return -1;
          if (!go) {
            this.paused = true;
            return end;
          }
          pos = end;
          continue;
        }
        case CHUNK_SIZE:
        case CHUNK_SIZE_WS:
        case CHUNK_EXT:
        case CHUNK_SIZE_LF:
        case CHUNK_DATA_CR:
        case CHUNK_DATA_LF:
          if (pos >= len) return len;
          pos = this.chunkFraming(buf, pos);
          if (pos < 0) return -1;
          continue;
        case DONE:
          return pos;
        default:
          return -1;
      }
    }
  }

  /**
   * The connection's stream ended (EOF). Returns true when that ends the
   * response (a close-delimited body); false when the response is cut
   * short, or none was started.
   */
  finish(): boolean {
    if (this.state === BODY_CLOSE) {
      this.state = DONE;
      return true;
    }
    return this.state === DONE;
  }

  private fail(code: string, message: string): number {
    this.state = FAILED;
    this.pending = null;
    this.error = new ResponseParseError(code, `invalid upstream response: ${message}`);
    return -1;
  }

  /** Chunk-size lines and the CRLF after chunk data, byte by byte (RFC 9112 §7.1). */
  private chunkFraming(buf: Buffer, pos: number): number {
    const len = buf.length;
    while (pos < len) {
      const c = buf[pos]!;
      switch (this.state) {
        case CHUNK_SIZE: {
          const h = HEX[c]!;
          if (h !== 0) {
            if (++this.chunkDigits > MAX_CHUNK_DIGITS) return this.fail('HPE_INVALID_CHUNK_SIZE', 'chunk size too large');
            this.remaining = this.remaining * 16 + (h - 1);
          } else if (this.chunkDigits === 0) {
            return this.fail('HPE_INVALID_CHUNK_SIZE', 'chunk size is not a hex number');
          } else if (c === CR) {
            this.state = CHUNK_SIZE_LF;
          } else if (c === SEMI) {
            this.state = CHUNK_EXT;
          } else if (c === SP || c === HTAB) {
            this.state = CHUNK_SIZE_WS;
          } else {
            return this.fail('HPE_INVALID_CHUNK_SIZE', 'invalid byte after the chunk size');
          }
          break;
        }
        case CHUNK_SIZE_WS:
          // BWS before a chunk extension (RFC 9112 §7.1.1).
          if (c === SEMI) this.state = CHUNK_EXT;
          else if (c === CR) this.state = CHUNK_SIZE_LF;
          else if (c !== SP && c !== HTAB) return this.fail('HPE_INVALID_CHUNK_SIZE', 'invalid byte after the chunk size');
          break;
        case CHUNK_EXT:
          if (c === CR) this.state = CHUNK_SIZE_LF;
          else if (VALUE[c] === 0) return this.fail('HPE_INVALID_CHUNK_EXTENSIONS', 'invalid byte in a chunk extension');
          break;
        case CHUNK_SIZE_LF:
          if (c !== LF) return this.fail('HPE_LF_EXPECTED', 'CR not followed by LF after the chunk size');
          if (this.remaining === 0) {
            this.state = TRAILERS;
            this.sectionBytes = 0;
          } else {
            this.state = CHUNK_DATA;
          }
          return pos + 1;
        case CHUNK_DATA_CR:
          if (c !== CR) return this.fail('HPE_CR_EXPECTED', 'chunk data not followed by CRLF');
          this.state = CHUNK_DATA_LF;
          break;
        case CHUNK_DATA_LF:
          if (c !== LF) return this.fail('HPE_LF_EXPECTED', 'chunk data not followed by CRLF');
          this.startChunk();
          return pos + 1;
        default:
          return pos;
      }
      pos++;
      if (++this.chunkLine > MAX_CHUNK_LINE) return this.fail('HPE_CHUNK_EXTENSIONS_OVERFLOW', 'chunk-size line too long');
    }
    return pos;
  }

  private startChunk(): void {
    this.state = CHUNK_SIZE;
    this.remaining = 0;
    this.chunkDigits = 0;
    this.chunkLine = 0;
  }

  /**
   * Parses whole lines of the head or the trailer section from `buf` at
   * `pos`, keeping an incomplete last line in `pending`. Returns the offset
   * in `buf` after the section's empty line, `buf.length` when more is
   * needed, or -1.
   */
  private lines(buf: Buffer, pos: number): number {
    let data = buf;
    let start = pos;
    // `data` index d is `buf` index d + shift.
    let shift = 0;
    const pending = this.pending;
    if (pending !== null) {
      this.pending = null;
      data = Buffer.concat([pending, buf.subarray(pos)]);
      start = 0;
      shift = pos - pending.length;
    }
    const max = this.maxHeaderSize;
    for (;;) {
      const lf = data.indexOf(LF, start);
      if (lf === -1) {
        const rest = data.length - start;
        if (this.sectionBytes + rest > max) return this.fail('HPE_HEADER_OVERFLOW', `header section larger than ${max} bytes`);
        if (rest > 0) this.pending = data.subarray(start);
        return buf.length;
      }
      this.sectionBytes += lf + 1 - start;
      if (this.sectionBytes > max) return this.fail('HPE_HEADER_OVERFLOW', `header section larger than ${max} bytes`);
      if (lf === start || data[lf - 1] !== CR) return this.fail('HPE_CR_EXPECTED', 'line ended by a bare LF');
      const end = lf - 1;
      if (this.state === TRAILERS) {
        if (end === start) {
          this.state = DONE;
          return lf + 1 + shift;
        }
        if (this.field(data, start, end, false) < 0) return -1;
      } else if (!this.statusSeen) {
        if (this.statusLine(data, start, end) < 0) return -1;
      } else if (end === start) {
        const next = this.headEnd();
        if (next < 0) return -1;
        if (next === HEAD) {
          // An interim 1xx response: the final one follows.
          start = lf + 1;
          continue;
        }
        return lf + 1 + shift;
      } else if (this.field(data, start, end, true) < 0) {
        return -1;
      }
      start = lf + 1;
    }
  }

  /** `HTTP/1.x NNN[ reason]` (RFC 9112 §4). */
  private statusLine(d: Buffer, s: number, e: number): number {
    if (e - s < 12 || d[s] !== 0x48 || d[s + 1] !== 0x54 || d[s + 2] !== 0x54 || d[s + 3] !== 0x50 || d[s + 4] !== 0x2f) {
      return this.fail('HPE_INVALID_CONSTANT', 'status line does not start with HTTP/');
    }
    if (d[s + 5] !== 0x31 || d[s + 6] !== 0x2e || (d[s + 7] !== 0x31 && d[s + 7] !== 0x30) || d[s + 8] !== SP) {
      return this.fail('HPE_INVALID_VERSION', 'HTTP version is not 1.1 or 1.0');
    }
    const a = d[s + 9]! - 0x30;
    const b = d[s + 10]! - 0x30;
    const c = d[s + 11]! - 0x30;
    if (a < 1 || a > 9 || b < 0 || b > 9 || c < 0 || c > 9) return this.fail('HPE_INVALID_STATUS', 'status code is not three digits from 100');
    if (e > s + 12) {
      if (d[s + 12] !== SP) return this.fail('HPE_INVALID_STATUS', 'status code is not three digits from 100');
      for (let i = s + 13; i < e; i++) if (VALUE[d[i]!] === 0) return this.fail('HPE_INVALID_STATUS', 'invalid byte in the reason phrase');
      this.reason = d.toString('latin1', s + 13, e);
    }
    this.http10 = d[s + 7] === 0x30;
    this.status = a * 100 + b * 10 + c;
    this.statusSeen = true;
    return 0;
  }

  /** One field line `name: value` (RFC 9112 §5); the head's framing fields are noted. */
  private field(d: Buffer, s: number, e: number, head: boolean): number {
    const c0 = d[s]!;
    if (c0 === SP || c0 === HTAB) return this.fail('HPE_INVALID_HEADER_TOKEN', 'obs-fold (a line starting with whitespace)');
    let i = s;
    while (i < e && TCHAR[d[i]!] === 1) i++;
    if (i === s || i === e || d[i] !== COLON) return this.fail('HPE_INVALID_HEADER_TOKEN', 'invalid header name');
    const nameEnd = i;
    i++;
    while (i < e && (d[i] === SP || d[i] === HTAB)) i++;
    let ve = e;
    while (ve > i && (d[ve - 1] === SP || d[ve - 1] === HTAB)) ve--;
    for (let j = i; j < ve; j++) if (VALUE[d[j]!] === 0) return this.fail('HPE_INVALID_HEADER_TOKEN', 'invalid byte in a header value');
    const name = d.subarray(s, nameEnd);
    const value = d.subarray(i, ve);
    if (!head) {
      (this.trailers ??= []).push(name, value);
      return 0;
    }
    this.raw.push(name, value);
    switch (nameEnd - s) {
      case 14:
        if (is(d, s, 'content-length')) return this.setContentLength(d, i, ve);
        break;
      case 17:
        if (is(d, s, 'transfer-encoding')) {
          if (this.chunked || d.toString('latin1', i, ve).toLowerCase() !== 'chunked') {
            return this.fail('HPE_INVALID_TRANSFER_ENCODING', 'Transfer-Encoding other than chunked');
          }
          this.chunked = true;
        }
        break;
      case 10:
        if (is(d, s, 'connection')) {
          // The common values without a string: `keep-alive` and `close`.
          if (ve - i === 10 && is(d, i, 'keep-alive')) this.connectionKeepAlive = true;
          else if (ve - i === 5 && is(d, i, 'close')) this.connectionClose = true;
          else this.connectionTokens(d.toString('latin1', i, ve));
        }
        else if (is(d, s, 'keep-alive')) this.keepAliveHint(d.toString('latin1', i, ve));
        break;
    }
    return 0;
  }

  private setContentLength(d: Buffer, s: number, e: number): number {
    if (e === s || e - s > 15) return this.fail('HPE_INVALID_CONTENT_LENGTH', 'Content-Length is not a number');
    let n = 0;
    for (let i = s; i < e; i++) {
      const c = d[i]! - 0x30;
      if (c < 0 || c > 9) return this.fail('HPE_INVALID_CONTENT_LENGTH', 'Content-Length is not a number');
      n = n * 10 + c;
    }
    if (this.contentLength !== -1 && this.contentLength !== n) return this.fail('HPE_INVALID_CONTENT_LENGTH', 'Content-Length values disagree');
    this.contentLength = n;
    return 0;
  }

  private connectionTokens(v: string): void {
    for (const t of v.split(',')) {
      const token = t.trim().toLowerCase();
      if (token === 'close') this.connectionClose = true;
      else if (token === 'keep-alive') this.connectionKeepAlive = true;
    }
  }

  /** `Keep-Alive: timeout=N` (seconds), as undici reads it. */
  private keepAliveHint(v: string): void {
    const m = /timeout=(\d+)/i.exec(v);
    if (m !== null) this.keepAliveHintMs = Number(m[1]) * 1000;
  }

  /** The head's empty line: decides the framing (RFC 9112 §6.3) and hands the head on. Returns the next state, or -1. */
  private headEnd(): number {
    const status = this.status;
    if (status < 200) {
      if (status === 101) return this.fail('HPE_UNEXPECTED_UPGRADE', '101 Switching Protocols to a request that asked for no upgrade');
      this.startHead();
      return HEAD;
    }
    if (this.chunked && this.contentLength !== -1) return this.fail('HPE_UNEXPECTED_CONTENT_LENGTH', 'both Content-Length and Transfer-Encoding');
    let next: number;
    if (this.noBody || status === 204 || status === 304) next = DONE;
    else if (this.chunked) next = CHUNK_SIZE;
    else if (this.contentLength > 0) next = BODY_LENGTH;
    else if (this.contentLength === 0) next = DONE;
    else next = BODY_CLOSE;
    this.keepAlive = next !== BODY_CLOSE && !this.connectionClose && (!this.http10 || this.connectionKeepAlive);
    this.remaining = this.contentLength;
    this.state = next;
    if (next === CHUNK_SIZE) this.startChunk();
    const raw = this.raw;
    this.raw = [];
    const go = this.sink.onResponseHead(status, this.reason, raw);
    if (this.failed()) return -1;
    if (!go) this.paused = true;
    return next;
  }
}

/**
 * Whether `d` holds `lower` (lower-case letters and '-') at `s`, ignoring
 * case. `| 0x20` maps only 'A'-'Z' onto 'a'-'z' and CR onto '-' among the
 * bytes that can be here (tchars, or a field value, which holds no CR).
 */
function is(d: Buffer, s: number, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) if ((d[s + i]! | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}
