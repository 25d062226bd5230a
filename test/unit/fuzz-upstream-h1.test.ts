// Property tests of the upstream HTTP/1.1 response parser
// (src/upstream/h1/parser.ts, docs/fuzzing.md; RFC 9112): random valid
// responses parse to what they were built from, identically whole or cut
// anywhere, and as node's own llhttp reads them; random mutations of them
// never throw, always end (parsed, waiting for more, or refused with an
// HPE_ code), and get the same verdict whole or cut anywhere.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MAX_CHUNK_DIGITS } from '../../src/upstream/h1/parser.js';
import { parseChunks, splitAt, type Parsed } from '../helpers/h1-parse.js';
import { fuzzRuns } from '../helpers/fuzz.js';

const TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const token = fc.string({ unit: fc.constantFrom(...TCHARS.split('')), minLength: 1, maxLength: 12 });
/** A field value as sent: no leading or trailing whitespace, VCHAR and obs-text with inner SP/HTAB. */
const fieldValue = fc
  .array(fc.oneof(fc.integer({ min: 0x21, max: 0x7e }), fc.integer({ min: 0x80, max: 0xff }), fc.constantFrom(0x20, 0x09)), { maxLength: 24 })
  .map((codes) => String.fromCharCode(...codes).replace(/^[ \t]+|[ \t]+$/g, ''));
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive']);
const field = fc.tuple(token, fieldValue).filter(([n]) => !FRAMING.has(n.toLowerCase()));
const reason = fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij \t-'.split('')), maxLength: 20 }).map((s) => s.replace(/^[ \t]+/, ''));

interface Model {
  version: '1.1' | '1.0';
  status: number;
  reason: string;
  fields: [string, string][];
  framing: 'length' | 'chunked' | 'close';
  body: Buffer;
  /** Chunk sizes the chunked body is cut into (the rest is one more chunk). */
  cuts: number[];
  ext: string;
  trailers: [string, string][];
  connection: '' | 'close' | 'keep-alive';
  hint: number;
  interim: boolean;
  head: boolean;
}

const model: fc.Arbitrary<Model> = fc.record({
  version: fc.constantFrom('1.1', '1.0') as fc.Arbitrary<'1.1' | '1.0'>,
  status: fc.constantFrom(200, 201, 204, 206, 301, 304, 404, 500, 503, 599),
  reason,
  fields: fc.array(field, { maxLength: 8 }),
  framing: fc.constantFrom('length', 'chunked', 'close') as fc.Arbitrary<'length' | 'chunked' | 'close'>,
  body: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
  cuts: fc.array(fc.integer({ min: 1, max: 80 }), { maxLength: 5 }),
  ext: fc.constantFrom('', ';a=b', ' ;x="y z"', ';e'),
  trailers: fc.array(field, { maxLength: 3 }),
  connection: fc.constantFrom('', 'close', 'keep-alive') as fc.Arbitrary<'' | 'close' | 'keep-alive'>,
  hint: fc.constantFrom(-1, 0, 5),
  interim: fc.boolean(),
  head: fc.boolean(),
});

/** The response's bytes. */
function serialize(m: Model): Buffer {
  const parts: Buffer[] = [];
  if (m.interim) parts.push(Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1'));
  let head = `HTTP/${m.version} ${m.status}${m.reason === '' ? '' : ` ${m.reason}`}\r\n`;
  for (const [n, v] of m.fields) head += `${n}: ${v}\r\n`;
  if (m.connection !== '') head += `Connection: ${m.connection}\r\n`;
  if (m.hint >= 0) head += `Keep-Alive: timeout=${m.hint}\r\n`;
  if (m.framing === 'length') head += `Content-Length: ${m.body.length}\r\n`;
  if (m.framing === 'chunked') head += 'Transfer-Encoding: chunked\r\n';
  parts.push(Buffer.from(`${head}\r\n`, 'latin1'));
  if (hasBody(m)) {
    if (m.framing === 'chunked') {
      let at = 0;
      for (const size of [...m.cuts, m.body.length]) {
        const piece = m.body.subarray(at, at + size);
        at += piece.length;
        if (piece.length === 0) continue;
        parts.push(Buffer.from(`${piece.length.toString(16)}${m.ext}\r\n`, 'latin1'), piece, Buffer.from('\r\n'));
      }
      let end = '0\r\n';
      for (const [n, v] of m.trailers) end += `${n}: ${v}\r\n`;
      parts.push(Buffer.from(`${end}\r\n`, 'latin1'));
    } else {
      parts.push(m.body);
    }
  }
  return Buffer.concat(parts);
}

function hasBody(m: Model): boolean {
  return !m.head && m.status !== 204 && m.status !== 304;
}

/** The parse the model calls for. */
function expected(m: Model): Pick<Parsed, 'status' | 'reason' | 'body' | 'done' | 'keepAlive' | 'error'> & { trailers: string[] | null } {
  const body = hasBody(m) ? m.body.toString('latin1') : '';
  const closeDelimited = hasBody(m) && m.framing === 'close';
  const keepAlive = !closeDelimited && m.connection !== 'close' && (m.version === '1.1' || m.connection === 'keep-alive');
  const trailers = hasBody(m) && m.framing === 'chunked' && m.trailers.length > 0 ? m.trailers.flat() : null;
  return { status: m.status, reason: m.reason, body, done: true, keepAlive, error: '', trailers };
}

/** What two parses of the same bytes must agree on, however they were cut. */
function verdict(p: Parsed): unknown {
  return { status: p.status, reason: p.reason, headers: p.headers, body: p.body, trailers: p.trailers, done: p.done, keepAlive: p.keepAlive, hint: p.keepAliveHintMs, error: p.error, rest: p.rest };
}

type LlhttpResult = { status: number; headers: string[]; body: string; trailers: string[] | null; keepAlive: boolean; done: boolean };

/** node's own llhttp (the parser undici runs as wasm) on the same bytes; null when it refuses them. */
function llhttp(bytes: Buffer, head: boolean, eof: boolean): LlhttpResult | null {
  const { HTTPParser } = (process as unknown as { binding(name: string): { HTTPParser: HTTPParserClass } }).binding('http_parser');
  const p = new HTTPParser();
  p.initialize(HTTPParser.RESPONSE, {});
  const out: LlhttpResult = { status: 0, headers: [], body: '', trailers: null, keepAlive: false, done: false };
  const bodies: Buffer[] = [];
  p[HTTPParser.kOnHeadersComplete] = (_vM: number, _vm: number, headers: string[], _m: unknown, _u: unknown, status: number, _r: unknown, _up: unknown, ka: boolean) => {
    if (status >= 200) {
      out.status = status;
      out.headers = headers;
      out.keepAlive = ka;
    }
    return head && status >= 200 ? 1 : 0;
  };
  p[HTTPParser.kOnBody] = (b: Buffer) => void bodies.push(Buffer.from(b));
  p[HTTPParser.kOnHeaders] = (h: string[]) => void (out.trailers = h);
  p[HTTPParser.kOnMessageComplete] = () => {
    if (out.status !== 0) out.done = true;
  };
  const r = p.execute(bytes);
  if (r instanceof Error) return null;
  if (eof && !out.done) {
    const f = p.finish();
    if (f instanceof Error) return null;
  }
  out.body = Buffer.concat(bodies).toString('latin1');
  return out;
}
interface HTTPParserClass {
  new (): Record<number, unknown> & { initialize(kind: number, o: object): void; execute(b: Buffer): number | Error; finish(): undefined | Error };
  RESPONSE: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnHeaders: number;
  kOnMessageComplete: number;
}

const cutsArb = fc.array(fc.nat({ max: 2000 }), { maxLength: 12 });

describe('fuzz: upstream HTTP/1.1 response parser', () => {
  it('a valid response parses to its model, identically whole, cut anywhere, or paused after every chunk', () => {
    fc.assert(
      fc.property(model, cutsArb, (m, cuts) => {
        const bytes = serialize(m);
        const eof = hasBody(m) && m.framing === 'close';
        const whole = parseChunks([bytes], { head: m.head, eof });
        const want = expected(m);
        assert.equal(whole.error, want.error);
        assert.equal(whole.status, want.status);
        assert.equal(whole.reason, want.reason);
        assert.equal(whole.body, want.body);
        assert.equal(whole.done, want.done);
        assert.equal(whole.keepAlive, want.keepAlive);
        assert.deepEqual(whole.trailers, want.trailers);
        assert.equal(whole.rest, '');
        for (let i = 0; i < m.fields.length; i++) assert.deepEqual(whole.headers.slice(2 * i, 2 * i + 2), m.fields[i]);
        const pieces = splitAt(bytes, cuts);
        assert.deepEqual(verdict(parseChunks(pieces, { head: m.head, eof })), verdict(whole));
        assert.deepEqual(verdict(parseChunks(pieces, { head: m.head, eof, pauseEvery: true })), verdict(whole));
        if (m.framing === 'length' && hasBody(m) && m.body.length > 0) {
          // The last piece of a Content-Length body is handed on by itself: the exchange ends the downstream response with it.
          const split = parseChunks(pieces, { head: m.head });
          const total = split.chunks.reduce((n, c) => n + c.length, 0);
          assert.equal(total, m.body.length);
        }
      }),
      fuzzRuns(2000),
    );
  });

  it('a valid response reads as node\'s llhttp reads it (status, headers, body, trailers, keep-alive)', () => {
    fc.assert(
      fc.property(model, (generated) => {
        // BWS before a chunk extension (RFC 9112 §7.1.1) is read by ours and refused by node's strict llhttp: left out here.
        const m = { ...generated, ext: generated.ext.trimStart() };
        const bytes = serialize(m);
        const eof = hasBody(m) && m.framing === 'close';
        const ours = parseChunks([bytes], { head: m.head, eof });
        const theirs = llhttp(bytes, m.head, eof);
        assert.ok(theirs !== null, 'llhttp refused a valid response');
        assert.equal(ours.status, theirs.status);
        assert.deepEqual(ours.headers, theirs.headers);
        assert.equal(ours.body, theirs.body);
        assert.equal(ours.done, theirs.done);
        // llhttp does not know a HEAD response has no body: it reads one without framing as close-delimited (undici corrects that).
        if (!eof && !m.head) assert.equal(ours.keepAlive, theirs.keepAlive);
        if (theirs.trailers !== null && theirs.trailers.length > 0) assert.deepEqual(ours.trailers, theirs.trailers);
      }),
      fuzzRuns(1000),
    );
  });

  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.constantFrom(0, 9, 10, 13, 32, 58, 59, 0x7f, 0xff, 0x30, 0x66) }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), byte: fc.constant(0) }),
  );

  it('mutated responses never throw, always end, fail only with HPE_ codes, and get one verdict however they are cut', () => {
    fc.assert(
      fc.property(model, fc.array(mutation, { minLength: 1, maxLength: 4 }), cutsArb, fc.boolean(), (m, mutations, cuts, eof) => {
        let bytes = serialize(m);
        for (const mu of mutations) {
          const at = bytes.length === 0 ? 0 : mu.at % bytes.length;
          if (mu.kind === 'flip') {
            bytes = Buffer.from(bytes);
            if (bytes.length > 0) bytes[at] = mu.byte;
          } else if (mu.kind === 'insert') {
            bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([mu.byte]), bytes.subarray(at)]);
          } else {
            bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
          }
        }
        const whole = parseChunks([bytes], { head: m.head, eof });
        assert.ok(whole.error === '' || whole.error.startsWith('HPE_') || (eof && whole.error === 'EOF'), whole.error);
        assert.deepEqual(verdict(parseChunks(splitAt(bytes, cuts), { head: m.head, eof })), verdict(whole));
      }),
      fuzzRuns(2000),
    );
  });

  it('random bytes after a valid head never throw and fail only with HPE_ codes', () => {
    const heads = fc.constantFrom('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n', 'HTTP/1.1 200 OK\r\n', 'HTTP/1.1 ', '');
    const noise = fc.array(fc.constantFrom(...'0123456789abcdefABCDEFxz;= \t\r\n:'.split('').map((c) => c.charCodeAt(0)), 0, 0x7f, 0xff), { maxLength: 200 });
    fc.assert(
      fc.property(heads, noise, cutsArb, (head, n, cuts) => {
        const bytes = Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(n)]);
        const whole = parseChunks([bytes]);
        assert.ok(whole.error === '' || whole.error.startsWith('HPE_'), whole.error);
        assert.deepEqual(verdict(parseChunks(splitAt(bytes, cuts))), verdict(whole));
      }),
      fuzzRuns(2000),
    );
  });

  it(`chunk sizes: up to ${MAX_CHUNK_DIGITS} hex digits are read as their value, more are refused`, () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF'.split('')), minLength: 1, maxLength: 20 }), (hex) => {
        const r = parseChunks([Buffer.from(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${hex}\r\nx`, 'latin1')]);
        if (hex.length > MAX_CHUNK_DIGITS) assert.equal(r.error, 'HPE_INVALID_CHUNK_SIZE');
        else if (Number.parseInt(hex, 16) === 0) assert.equal(r.error, '');
        else {
          assert.equal(r.error, '');
          assert.equal(r.body, 'x');
        }
      }),
      fuzzRuns(1000),
    );
  });
});
