// Property test of the lean HTTP/1.1 engine's head recognizer
// (src/http1/head-parser.ts; docs/fuzzing.md; RFC 9112 §2-§6). Properties:
// a head built from the grammar it accepts is recognized with exactly its
// parts (method, target, raw header names and trimmed values, body), and
// any strict prefix of it is not (a head split across reads is handed
// over, never served half); a head that is complete once, cut anywhere,
// is recognized from the whole only. Mutated heads (bytes inserted,
// removed or replaced with CR, LF, SP, HTAB, ':', NUL, DEL, obs-text and
// printable bytes) never make it throw, and every head it recognizes is
// parsed by node:http's own parser (llhttp, a real server on a socket) to
// the same method, target, raw headers and body: the lean engine never
// serves what node:http would refuse or read differently; the lean
// request's `headers` object is node:http's `req.headers` for the same head.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import fc from 'fast-check';
import { recognizeHead, type LeanHead } from '../../src/http1/head-parser.js';
import { LeanRequest } from '../../src/http1/request.js';
import { fuzzRuns } from '../helpers/fuzz.js';
import { fdsSettle, openFds } from '../helpers/fds.js';

const MAX = 4096;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];
const TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const tokenArb = fc.string({ unit: fc.constantFrom(...TCHARS), minLength: 1, maxLength: 12 });
const vcharArb = fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c));
const pathArb = fc.string({ unit: vcharArb.filter((c) => c !== '#'), maxLength: 30 }).map((p) => `/${p}`);
const owsArb = fc.constantFrom('', ' ', '\t', '  ', ' \t');
const valueArb = fc
  .string({ unit: fc.oneof(vcharArb, fc.constantFrom(' ', '\t')), maxLength: 20 })
  .map((v) => v.replace(/^[ \t]+|[ \t]+$/g, ''));
/** Names the recognizer treats specially are left to the explicit fields below. */
const SPECIAL = new Set(['host', 'content-length', 'transfer-encoding', 'upgrade', 'expect', 'connection']);

interface Parts {
  method: string;
  url: string;
  headers: [string, string, string, string][]; // name, leading OWS, value, trailing OWS
  body: string;
  connection: string | null;
}

const partsArb: fc.Arbitrary<Parts> = fc.record({
  method: fc.constantFrom(...METHODS),
  url: pathArb,
  headers: fc.array(
    fc.tuple(
      fc.oneof(tokenArb.filter((n) => !SPECIAL.has(n.toLowerCase())), fc.constantFrom('Cookie', 'set-cookie', 'Content-Type', 'X-Dup', 'user-agent', 'Accept')),
      owsArb,
      valueArb,
      owsArb,
    ),
    { maxLength: 8 },
  ),
  body: fc.string({ maxLength: 40 }),
  connection: fc.constantFrom(null, 'keep-alive', 'close', 'Keep-Alive, close'),
});

function build(p: Parts, hostAt: number): { bytes: Buffer; raw: string[] } {
  const lines: [string, string][] = p.headers.map(([n, a, v, b]) => [n, `${a}${v}${b}`]);
  lines.splice(Math.min(hostAt, lines.length), 0, ['Host', 'example.test']);
  if (p.connection !== null) lines.push(['Connection', p.connection]);
  const body = Buffer.from(p.body, 'utf8');
  if (body.length > 0) lines.push(['Content-Length', String(body.length)]);
  const head = `${p.method} ${p.url} HTTP/1.1\r\n${lines.map(([n, v]) => `${n}:${v}\r\n`).join('')}\r\n`;
  const raw = lines.flatMap(([n, v]) => [n, v.replace(/^[ \t]+|[ \t]+$/g, '')]);
  return { bytes: Buffer.concat([Buffer.from(head, 'latin1'), body]), raw };
}

describe('lean HTTP/1.1 head recognizer (pure)', () => {
  it('recognizes every head of its grammar with exactly its parts; no strict prefix is recognized', () => {
    fc.assert(
      fc.property(partsArb, fc.nat(), fc.nat(), (p, hostAt, cutAt) => {
        const { bytes, raw } = build(p, hostAt);
        const head = recognizeHead(bytes, 0, bytes.length, MAX);
        assert.ok(head !== null, bytes.toString('latin1'));
        assert.equal(head.method, p.method);
        assert.equal(head.url, p.url);
        assert.deepEqual(head.rawHeaders, raw);
        assert.equal(head.end, bytes.length);
        assert.equal(bytes.subarray(head.bodyStart, head.end).toString('utf8'), p.body);
        assert.equal(head.keepAlive, p.connection === null || !/close/i.test(p.connection));
        const cut = cutAt % bytes.length;
        assert.equal(recognizeHead(bytes.subarray(0, cut), 0, cut, MAX), null, `prefix of ${cut} bytes`);
      }),
      fuzzRuns(2000),
    );
  });

  it('a recognized head followed by more bytes (pipelining) ends where the next one starts', () => {
    fc.assert(
      fc.property(partsArb, partsArb, (a, b) => {
        const first = build(a, 0).bytes;
        const both = Buffer.concat([first, build(b, 1).bytes]);
        const one = recognizeHead(both, 0, both.length, MAX);
        assert.ok(one !== null);
        assert.equal(one.end, first.length);
        const two = recognizeHead(both, one.end, both.length, MAX);
        assert.ok(two !== null);
        assert.equal(two.url, b.url);
        assert.equal(two.end, both.length);
      }),
      fuzzRuns(1000),
    );
  });

  it('leaves to node:http what it must not serve', () => {
    const no = (s: string, max = MAX) => assert.equal(recognizeHead(Buffer.from(s, 'latin1'), 0, Buffer.byteLength(s, 'latin1'), max), null, JSON.stringify(s));
    no('GET / HTTP/1.1\nHost: x\n\n');
    no('GET / HTTP/1.1\r\nHost: x\n\r\n');
    no('GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n');
    no('GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n');
    no('GET / HTTP/1.1\r\n\r\n');
    no('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc');
    no('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na');
    no('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n');
    no('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabc');
    no('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    no('GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n');
    no('GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, x-foo\r\n\r\n');
    no('CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n');
    no('GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n');
    no('GET /#f HTTP/1.1\r\nHost: a\r\n\r\n');
    no('GET / HTTP/1.0\r\nHost: a\r\n\r\n');
    no('get / HTTP/1.1\r\nHost: a\r\n\r\n');
    no('GET / HTTP/1.1\r\nHost : a\r\n\r\n');
    no('GET / HTTP/1.1\r\nHost: a\u0001\r\n\r\n');
    no('GET / HTTP/1.1\r\nHost: a\xe9\r\n\r\n');
    no('\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n');
    no(`GET / HTTP/1.1\r\nHost: a\r\nX: ${'a'.repeat(100)}\r\n\r\n`, 64);
    no(`GET / HTTP/1.1\r\nHost: a\r\n${'X: 1\r\n'.repeat(100)}\r\n`);
  });
});

// ---------------------------------------------------------------- mutated heads against llhttp

interface Parsed {
  method: string;
  url: string;
  rawHeaders: string[];
  headers: http.IncomingHttpHeaders;
  body: string;
}

describe('lean HTTP/1.1 head recognizer against node:http', () => {
  let server: http.Server;
  let port: number;
  let fds: number;
  const seen = new Map<string, Parsed>();
  before(async () => {
    fds = openFds();
    server = http.createServer({ maxHeaderSize: MAX, requireHostHeader: false }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.set(req.headers['x-probe'] as string, { method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, headers: { ...req.headers }, body: Buffer.concat(chunks).toString('latin1') });
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await fdsSettle(fds);
  });

  /** What node:http parsed from `bytes` (sent whole on a fresh connection), or null when it refused them. */
  function parse(bytes: Buffer, probe: string): Promise<Parsed | null> {
    return new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
      let got = '';
      const done = () => {
        clearTimeout(timer);
        s.destroy();
        resolve(seen.get(probe) ?? null);
      };
      const timer = setTimeout(done, 2000);
      s.on('data', (d: Buffer) => {
        got += d.toString('latin1');
        if (/^HTTP\/1\.1 \d{3} /.test(got) && got.includes('\r\n\r\n')) done();
      });
      s.on('close', done);
      s.on('error', () => undefined);
    });
  }

  const mutation = fc.record({
    at: fc.nat(),
    remove: fc.nat({ max: 3 }),
    insert: fc.string({ unit: fc.constantFrom('\r', '\n', ' ', '\t', ':', '\0', '\x7f', '\xe9', ',', 'a', 'Z', '/', '#', '0'), maxLength: 3 }),
  });

  it('never throws on mutated heads, and what it recognizes node:http parses the same', async () => {
    let probeId = 0;
    let recognized = 0;
    await fc.assert(
      fc.asyncProperty(partsArb, fc.array(mutation, { minLength: 1, maxLength: 3 }), async (p, muts) => {
        const probe = `p${probeId++}`;
        let text = build({ ...p, headers: [['X-Probe', '', probe, ''], ...p.headers] }, 1).bytes.toString('latin1');
        for (const m of muts) {
          const at = m.at % (text.length + 1);
          text = text.slice(0, at) + m.insert + text.slice(at + m.remove);
        }
        const bytes = Buffer.from(text, 'latin1');
        let head: LeanHead | null = null;
        assert.doesNotThrow(() => (head = recognizeHead(bytes, 0, bytes.length, MAX)));
        if (head === null) return;
        const h = head as LeanHead;
        // The probe header may have been mutated away: then there is nothing to compare with.
        const probeAt = h.rawHeaders.findIndex((n, i) => i % 2 === 0 && n.toLowerCase() === 'x-probe');
        if (probeAt < 0 || h.rawHeaders[probeAt + 1] !== probe) return;
        recognized++;
        const parsed = await parse(bytes, probe);
        assert.ok(parsed !== null, `node:http refused what the recognizer took: ${JSON.stringify(text)}`);
        assert.equal(parsed.method, h.method);
        assert.equal(parsed.url, h.url);
        assert.deepEqual(parsed.rawHeaders, h.rawHeaders, JSON.stringify(text));
        assert.equal(parsed.body, bytes.subarray(h.bodyStart, h.end).toString('latin1'));
        // The lean request's `headers` folds repeated fields as node:http does.
        assert.deepEqual({ ...new LeanRequest(h, null as unknown as net.Socket, null).headers }, parsed.headers);
      }),
      fuzzRuns(400),
    );
    assert.ok(recognized > 0, 'some mutated heads were still recognized and compared');
  });

  it('regression (FUZZ_SEED=472253948): a Content-Length followed by HTAB is left to node:http, which refuses it', async () => {
    for (const cl of ['7\t', '7 \t', '7\t ']) {
      const bytes = Buffer.from(`POST / HTTP/1.1\r\nX-Probe: cl-tab\r\nHost: example.test\r\nContent-Length:${cl}\r\n\r\n1234567`, 'latin1');
      assert.equal(recognizeHead(bytes, 0, bytes.length, MAX), null, JSON.stringify(cl));
    }
    for (const cl of ['\t7', ' 7 ', '7  ']) {
      const bytes = Buffer.from(`POST / HTTP/1.1\r\nHost: example.test\r\nContent-Length:${cl}\r\n\r\n1234567`, 'latin1');
      assert.equal(recognizeHead(bytes, 0, bytes.length, MAX)?.contentLength, 7, JSON.stringify(cl));
    }
  });

  it('regression (FUZZ_SEED=2055899007): a header named __proto__ is in rawHeaders but not in headers, as node:http has it', async () => {
    const bytes = Buffer.from('GET / HTTP/1.1\r\nX-Probe: proto1\r\n__proto__: \r\nHost: example.test\r\n\r\n', 'latin1');
    const h = recognizeHead(bytes, 0, bytes.length, MAX)!;
    assert.ok(h !== null);
    const parsed = await parse(bytes, 'proto1');
    assert.ok(parsed !== null);
    assert.deepEqual(parsed.rawHeaders, h.rawHeaders);
    const headers = new LeanRequest(h, null as unknown as net.Socket, null).headers;
    assert.deepEqual({ ...headers }, parsed.headers);
    assert.equal(Object.prototype.hasOwnProperty.call(headers, '__proto__'), false);
  });
});
