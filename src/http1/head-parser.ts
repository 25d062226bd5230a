/**
 * A strict recognizer of the common HTTP/1.1 request head (RFC 9112 §2–§6):
 * it accepts only what it can serve without doubt, and says "not mine"
 * (null) for everything else, which node:http's parser (llhttp) then
 * answers as it always has. It never throws and never reports an error of
 * its own: refusing bad input is llhttp's job.
 *
 * Recognized, and nothing else:
 * - `METHOD SP origin-form SP HTTP/1.1 CRLF` with METHOD one of GET HEAD
 *   POST PUT DELETE PATCH OPTIONS, a target that starts with `/` and holds
 *   visible ASCII only, no `#` (RFC 9112 §3.2.1);
 * - header lines `name ":" OWS value OWS CRLF` with a token name (RFC 9110
 *   §5.1) and a value of VCHAR, SP and HTAB only (no obs-text, no CTL);
 *   CRLF line ends only (no bare LF or CR), no obs-fold (RFC 9112 §5.2);
 * - exactly one Host (RFC 9112 §3.2); no Transfer-Encoding, Upgrade or
 *   Expect; Connection tokens `keep-alive` / `close` only; at most one
 *   Content-Length of 1–15 digits, and the whole body in the buffer;
 * - a head of at most `maxHeaderSize` bytes and at most MAX_HEADERS lines,
 *   complete in the buffer.
 */

/** Header lines a recognized head may have; more go to node:http. */
export const MAX_HEADERS = 100;

/** A recognized request head. Offsets are into the buffer given to `recognizeHead`. */
export interface LeanHead {
  method: string;
  url: string;
  /** `[name, value, …]` as sent, values without surrounding OWS (as node:http's `rawHeaders`). */
  rawHeaders: string[];
  /** Content-Length, or -1 when absent. */
  contentLength: number;
  /** The request lets the connection stay open (no `Connection: close`, RFC 9112 §9.3). */
  keepAlive: boolean;
  /** Offset of the first byte after the head's final CRLF CRLF. */
  bodyStart: number;
  /** Offset of the first byte after the body (= bodyStart without one). */
  end: number;
}

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const VERSION = ' HTTP/1.1';

/** tchar (RFC 9110 §5.6.2) by code point below 128. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

function methodOf(s: string, sp: number): string | null {
  switch (sp) {
    case 3:
      if (s.startsWith('GET')) return 'GET';
      if (s.startsWith('PUT')) return 'PUT';
      return null;
    case 4:
      if (s.startsWith('POST')) return 'POST';
      if (s.startsWith('HEAD')) return 'HEAD';
      return null;
    case 5:
      return s.startsWith('PATCH') ? 'PATCH' : null;
    case 6:
      return s.startsWith('DELETE') ? 'DELETE' : null;
    case 7:
      return s.startsWith('OPTIONS') ? 'OPTIONS' : null;
    default:
      return null;
  }
}

/** `Connection` holds only `keep-alive` / `close` tokens: true for close, false for keep-alive only, null otherwise. */
function connectionCloses(value: string): boolean | null {
  let close = false;
  for (const part of value.split(',')) {
    const token = part.trim().toLowerCase();
    if (token === 'close') close = true;
    else if (token !== 'keep-alive') return null;
  }
  return close;
}

/**
 * The request head that starts at `start` in `buf[start, end)`, when it is
 * recognized (see above) and complete with its body; null otherwise (hand
 * the bytes to node:http). Never throws.
 */
export function recognizeHead(buf: Buffer, start: number, end: number, maxHeaderSize: number): LeanHead | null {
  const limit = Math.min(end, start + maxHeaderSize);
  const at = buf.indexOf(CRLFCRLF, start);
  if (at < 0 || at + 4 > limit) return null;
  const bodyStart = at + 4;
  const s = buf.toString('latin1', start, at + 2);
  const n = s.length;
  // Request line (RFC 9112 §3).
  const sp = s.indexOf(' ');
  if (sp < 0) return null;
  const method = methodOf(s, sp);
  if (method === null) return null;
  let i = sp + 1;
  if (s.charCodeAt(i) !== 0x2f /* / */) return null;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x20) break;
    if (c < 0x21 || c > 0x7e || c === 0x23 /* # */) return null;
  }
  const url = s.slice(sp + 1, i);
  if (!s.startsWith(VERSION, i)) return null;
  i += VERSION.length;
  if (s.charCodeAt(i) !== 13 || s.charCodeAt(i + 1) !== 10) return null;
  i += 2;
  // Header lines (RFC 9112 §5), up to the CRLF that ends the head at n - 2.
  const raw: string[] = [];
  let hosts = 0;
  let contentLength = -1;
  let keepAlive = true;
  while (i < n) {
    const nameStart = i;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c === 0x3a /* : */) break;
      if (c >= 128 || TCHAR[c] === 0) return null;
    }
    if (i === nameStart || i >= n) return null;
    const name = s.slice(nameStart, i);
    i++;
    while (i < n && (s.charCodeAt(i) === 0x20 || s.charCodeAt(i) === 0x09)) i++;
    const valueStart = i;
    let valueEnd = i;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c === 13) break;
      if (c === 0x09 || c === 0x20) continue;
      if (c < 0x21 || c > 0x7e) return null;
      valueEnd = i + 1;
    }
    if (i + 1 >= n || s.charCodeAt(i + 1) !== 10) return null;
    const lineEnd = i;
    i += 2;
    const value = s.slice(valueStart, valueEnd);
    if (raw.length === MAX_HEADERS * 2) return null;
    raw.push(name, value);
    const len = name.length;
    if (len === 4 || len === 6 || len === 7 || len === 10 || len === 14 || len === 17) {
      switch (name.toLowerCase()) {
        case 'host':
          hosts++;
          break;
        case 'transfer-encoding':
        case 'upgrade':
        case 'expect':
          return null;
        case 'connection': {
          const close = connectionCloses(value);
          if (close === null) return null;
          if (close) keepAlive = false;
          break;
        }
        case 'content-length': {
          if (contentLength >= 0 || value.length === 0 || value.length > 15) return null;
          // RFC 9110 OWS allows HTAB after the value, but node:http (llhttp) refuses it there:
          // such a head is left to node:http, so both engines answer it alike (found by fuzzing).
          if (s.lastIndexOf('\t', lineEnd - 1) >= valueEnd) return null;
          for (let k = 0; k < value.length; k++) {
            const c = value.charCodeAt(k);
            if (c < 0x30 || c > 0x39) return null;
          }
          contentLength = Number(value);
          break;
        }
      }
    }
  }
  if (hosts !== 1) return null;
  const bodyEnd = contentLength > 0 ? bodyStart + contentLength : bodyStart;
  if (bodyEnd > end) return null;
  return { method, url, rawHeaders: raw, contentLength, keepAlive, bodyStart, end: bodyEnd };
}
