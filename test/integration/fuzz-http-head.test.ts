// Property test of the HTTP/1.1 request head as the gateway sees it
// (docs/fuzzing.md; RFC 9112 §2-§7): request heads generated from a
// grammar (methods, origin-, absolute-, asterisk- and authority-form
// targets with odd bytes, header names and values with odd bytes,
// duplicate headers, Content-Length / Transfer-Encoding combinations,
// obs-fold, bare LF and CR, NUL, bodies, pipelining) are sent over raw TCP
// to a gateway with an upstream route and a `respond:` route. Properties:
// the gateway keeps serving; every connection gets well-formed HTTP/1.1
// status lines or is just closed, never hangs; every status is one the
// gateway documents, or the upstream's; heads that must be refused are
// refused before any upstream sees them; the upstream (a raw TCP server
// that records the bytes it is sent) never receives both Content-Length
// and Transfer-Encoding, a header with CR, LF or NUL in it, an obs-fold
// line, a header name that is not a token, a hop-by-hop field, or a path
// outside the route that sent it there; file descriptors come back to the
// baseline.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fc from 'fast-check';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { fuzzRuns } from '../helpers/fuzz.js';

const MAX_HEADER_SIZE = 4096;
/**
 * Statuses the gateway documents for HTTP/1.1 downstreams (200 from `respond:`, the upstream's is 200 too;
 * 405 for CONNECT on a reverse-proxy listener; 505 for an HTTP/1 request line with another major version).
 */
const DOCUMENTED = new Set([200, 400, 404, 405, 408, 413, 414, 431, 501, 502, 503, 504, 505]);
/** A connection still open this long after its last byte was sent is a hang (the timeouts below, checked every second, are far shorter). */
const HANG_MS = 15_000;
const UPSTREAM_ANSWER = 'HTTP/1.1 200 OK\r\nx-from: upstream\r\ncontent-length: 8\r\nconnection: close\r\n\r\nupstream';

// ---------------------------------------------------------------- a raw upstream that records what it is sent

interface RawUpstream {
  port: number;
  /** Every request head received (latin1, up to and without the blank line). */
  heads: string[];
  close(): Promise<void>;
}

/**
 * Answers each connection's first request with a fixed 200 and
 * `connection: close` once its body has arrived (by Content-Length, or the
 * last chunk of a chunked body; at the latest after 2 s), so the gateway
 * never reuses a connection and the recorded heads are exactly what it sent.
 */
async function startRawUpstream(): Promise<RawUpstream> {
  const heads: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    let buf = Buffer.alloc(0);
    let head: string | null = null;
    let bodyStart = 0;
    let answered = false;
    const answer = () => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      socket.end(UPSTREAM_ANSWER);
    };
    const timer = setTimeout(answer, 2000);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      sockets.delete(socket);
    });
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (head === null) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        head = buf.toString('latin1', 0, end);
        heads.push(head);
        bodyStart = end + 4;
      }
      const body = buf.subarray(bodyStart);
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      if (/\r\ntransfer-encoding:/i.test(head)) {
        if (body.indexOf('0\r\n\r\n') === 0 || body.includes('\r\n0\r\n\r\n')) answer();
      } else if (cl === null || body.length >= Number(cl[1])) answer();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    heads,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

// ---------------------------------------------------------------- the request grammar

/** What the gateway must answer a case with, when the grammar knows (the first response only). */
type Expect = 'respond' | 'upstream' | 'not-found' | 'refused' | 'too-large' | 'any';

interface Case {
  /** Half-close after writing (a client that sends and waits), or keep the write side open. */
  end: boolean;
  expect: Expect;
  /** Must this request head never reach the upstream (refused by the gateway)? */
  neverForwarded: boolean;
  /** The bytes to send, as latin1 text. */
  text: string;
}

const latin1 = (s: string) => Buffer.from(s, 'latin1');
/** Replaced by a unique case id when the case is sent. */
const CASE_TAG = 'CASE-ID';
let caseIds = 0;

const method = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'OPTIONS', 'PATCH') },
  { weight: 1, arbitrary: fc.constantFrom('TRACE', 'CONNECT', 'FOO', 'get', 'G\0T', 'GE T', '', 'M-SEARCH', 'GET\t') },
);

/** A target and the route it reaches when all else is well. */
const target: fc.Arbitrary<{ t: string; route: 'respond' | 'upstream' | 'not-found' | 'odd' }> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom({ t: '/r', route: 'respond' as const }, { t: '/r/a?b=c', route: 'respond' as const }, { t: '/u', route: 'upstream' as const }, { t: '/u/x/../y?q=%20', route: 'upstream' as const }, { t: '/nope', route: 'not-found' as const }, { t: '/r/../nope', route: 'not-found' as const }) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.constantFrom('/u/', '/r/', '/', 'http://h/u/', 'HTTP://x.test:80/r/', 'https://h', '*', 'h:443', '//u/', '/u%2e%2e/'), fc.string({ unit: fc.constantFrom('a', '/', '.', '%', '?', '#', ' ', '\0', '\x7f', '\xe9', '\t', '\\', '"', '<'), maxLength: 12 }))
      .map(([a, b]) => ({ t: a + b, route: 'odd' as const })),
  },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 6000 }).map((n) => ({ t: `/u?${'a'.repeat(n)}`, route: 'odd' as const })) },
);

const version = fc.oneof({ weight: 8, arbitrary: fc.constant('HTTP/1.1') }, { weight: 1, arbitrary: fc.constantFrom('HTTP/1.0', 'HTTP/2.0', 'HTTP/1.2', 'http/1.1', 'HTTP/1.1 ', 'HTTP/1', '') });

type Header = [name: string, value: string];

/** Headers whose value is odd, or whose name is; each with whether it alone makes the head invalid (RFC 9110 §5.1, §5.5). */
const oddHeader: fc.Arbitrary<{ h: Header; invalid: boolean; framing: boolean }> = fc.oneof(
  fc.constantFrom(
    { h: ['X-Nul', 'a\0b'] as Header, invalid: true, framing: false },
    { h: ['X-Cr', 'a\rb'] as Header, invalid: true, framing: false },
    { h: ['X Space', 'v'] as Header, invalid: true, framing: false },
    { h: ['X-Ctl', 'a\x01b'] as Header, invalid: true, framing: false },
    { h: ['X-\0', 'v'] as Header, invalid: true, framing: false },
    { h: ['X-Del', 'a\x7fb'] as Header, invalid: true, framing: false },
    { h: ['X-Latin', 'caf\xe9'] as Header, invalid: false, framing: false },
    { h: ['X-Empty', ''] as Header, invalid: false, framing: false },
    { h: ['X-Tab', '\ta\t'] as Header, invalid: false, framing: false },
    { h: ['Connection', 'close'] as Header, invalid: false, framing: false },
    { h: ['Connection', 'keep-alive, x-drop'] as Header, invalid: false, framing: false },
    { h: ['X-Drop', 'hop'] as Header, invalid: false, framing: false },
    { h: ['Upgrade', 'websocket'] as Header, invalid: false, framing: false },
    { h: ['TE', 'trailers'] as Header, invalid: false, framing: false },
    { h: ['Expect', '100-continue'] as Header, invalid: false, framing: false },
    { h: ['Expect', 'something-else'] as Header, invalid: false, framing: false },
    { h: ['Proxy-Connection', 'keep-alive'] as Header, invalid: false, framing: false },
    { h: ['Keep-Alive', 'timeout=5'] as Header, invalid: false, framing: false },
    { h: ['Proxy-Authorization', 'Basic eDp5'] as Header, invalid: false, framing: false },
    { h: ['Trailer', 'X-T'] as Header, invalid: false, framing: false },
    { h: ['TE', 'gzip'] as Header, invalid: false, framing: false },
  ),
  fc.tuple(fc.constantFrom('Content-Length', 'content-length', 'Transfer-Encoding', 'transfer-encoding', 'Content-Length ', 'Transfer-Encoding\t'), fc.constantFrom('0', '5', '-1', '1, 1', '1,2', '+5', '0x10', '99999999999999999999', 'chunked', 'Chunked', 'gzip, chunked', 'chunked, gzip', 'identity', ' chunked', 'chunked,', '')).map(([n, v]) => ({ h: [n, v] as Header, invalid: false, framing: true })),
  fc.tuple(fc.constantFrom('Host', 'host', 'HOST'), fc.constantFrom('h', 'other.test', 'h:80', '[::1]:80', 'a b', '', 'h:x', 'h@i', '\0')).map(([n, v]) => ({ h: [n, v] as Header, invalid: false, framing: true })),
);

const body = fc.oneof(
  fc.constant(''),
  fc.constantFrom('hello', '5\r\nhello\r\n0\r\n\r\n', '0\r\n\r\n', 'zz\r\nhello\r\n0\r\n\r\n', '5\r\nhel', '5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n', '5\nhello\n0\n\n'),
  fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('latin1')),
);

const lineEnd = fc.oneof({ weight: 12, arbitrary: fc.constant('\r\n') }, { weight: 1, arbitrary: fc.constantFrom('\n', '\r', '\r\r\n') });

const requestCase: fc.Arbitrary<Case> = fc
  .record({
    method,
    target,
    version,
    host: fc.oneof({ weight: 6, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    plain: fc.array(fc.tuple(fc.constantFrom('X-A', 'x-b', 'Accept', 'User-Agent'), fc.constantFrom('1', 'text/html', 'v, w')), { maxLength: 3 }),
    odd: fc.array(oddHeader, { maxLength: 3 }),
    obsFold: fc.oneof({ weight: 8, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    eol: lineEnd,
    eolAt: fc.nat(),
    body,
    pipelined: fc.option(fc.constantFrom('GET /r HTTP/1.1\r\nHost: h\r\n\r\n', 'GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n', 'POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc'), { nil: undefined }),
    end: fc.oneof({ weight: 2, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    huge: fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: MAX_HEADER_SIZE, max: 3 * MAX_HEADER_SIZE }) }),
  })
  .map((r) => {
    const headers: Header[] = [];
    // Tags the case, so the upstream's record tells which case a head came from (see runCase).
    headers.push(['X-Case', CASE_TAG]);
    if (r.host) headers.push(['Host', 'h']);
    headers.push(...r.plain, ...r.odd.map((o) => o.h));
    if (r.huge > 0) headers.push(['X-Big', 'b'.repeat(r.huge)]);
    const lines = [`${r.method} ${r.target.t} ${r.version}`, ...headers.map(([n, v]) => `${n}: ${v}`)];
    if (r.obsFold && lines.length > 1) lines.splice(lines.length, 0, ' folded');
    // One line end may be replaced by an odd one (bare LF, bare CR, CR CR LF).
    const eolIndex = r.eol === '\r\n' ? -1 : r.eolAt % (lines.length + 1);
    let head = '';
    lines.forEach((l, i) => (head += l + (i === eolIndex ? r.eol : '\r\n')));
    head += eolIndex === lines.length ? r.eol : '\r\n';
    const text = head + r.body + (r.pipelined ?? '');
    // What the grammar can predict: a clean head whose odd parts are only invalid headers or size.
    const clean = r.method.match(/^[A-Z]+$/) !== null && ['GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'OPTIONS', 'PATCH'].includes(r.method) && r.version === 'HTTP/1.1' && r.host && r.eol === '\r\n' && !r.obsFold;
    const framing = r.odd.some((o) => o.framing) || r.body !== '';
    const invalid = r.odd.some((o) => o.invalid);
    // Bytes after a `Connection: close` request are a parse error for Node (HPE_CLOSED_CONNECTION), and
    // a parse error while a proxied request is in flight drops it unanswered (reported; RFC 9112 §9.6
    // says answer it, then close): no prediction for those yet.
    const closeThenMore = r.pipelined !== undefined && r.odd.some((o) => o.h[0] === 'Connection' && o.h[1].includes('close'));
    let expect: Expect = 'any';
    if (r.huge > 0 && clean && !framing && !invalid && r.target.route !== 'odd') expect = 'too-large';
    else if (clean && invalid && !framing && head.length < MAX_HEADER_SIZE) expect = 'refused';
    else if (clean && !invalid && !framing && !closeThenMore && r.target.route !== 'odd' && r.odd.every((o) => o.h[0] !== 'Expect' && o.h[0] !== 'Upgrade')) {
      expect = r.target.route === 'respond' ? 'respond' : r.target.route === 'upstream' ? 'upstream' : 'not-found';
    }
    const neverForwarded = invalid || r.huge > 0;
    return { end: r.end, expect, neverForwarded, text };
  });

// ---------------------------------------------------------------- running a case

interface Outcome {
  received: string;
  /** Status codes of every response, in order. */
  statuses: number[];
}

/** Sends the case (its X-Case tag made unique) on a fresh connection; resolves once the gateway closes it. */
function runCase(port: number, c: Case): Promise<Outcome & { id: string }> {
  const id = `c${++caseIds}`;
  const text = c.text.replace(CASE_TAG, id);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const guard = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer and not closed within ${HANG_MS} ms: ${JSON.stringify(c.text.slice(0, 300))}`));
    }, HANG_MS);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', () => undefined);
    s.once('close', () => {
      clearTimeout(guard);
      const received = Buffer.concat(chunks).toString('latin1');
      const statuses = [...received.matchAll(/(?:^|\r\n)HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
      resolve({ received, statuses, id });
    });
    // A client that has what it came for ends too, so keep-alive does not hold the connection.
    s.once('end', () => s.end());
    s.once('connect', () => {
      s.write(latin1(text));
      if (c.end) s.end();
    });
  });
}

function check(c: Case, o: Outcome): void {
  const what = `${JSON.stringify(c.text.slice(0, 400))} → ${JSON.stringify(o.received.slice(0, 300))}`;
  if (o.received.length > 0) {
    assert.match(o.received, /^HTTP\/1\.1 \d{3} [^\r\n]*\r\n/, `not a status line: ${what}`);
    // Interim 100 Continue (RFC 9110 §15.2.1) is Node's answer to Expect: 100-continue, followed by the final one.
    // 417 (RFC 9110 §10.1.1) is Node's own answer to an Expect other than 100-continue: not in the documented
    // set and without the JSON error body (reported to the lead); allowed only for such a request.
    const otherExpect = /\r\nexpect:(?![ \t]*100-continue[ \t]*\r\n)/i.test(c.text);
    for (const st of o.statuses) assert.ok(DOCUMENTED.has(st) || st === 100 || (st === 417 && otherExpect), `status ${st}: ${what}`);
  }
  const first = o.statuses.find((st) => st !== 100);
  // A client that half-closes right after its request may be taken for one that left (Node's http
  // server aborts the request on a FIN unless httpAllowHalfOpen): only the checks above hold then.
  if (c.end) return;
  switch (c.expect) {
    case 'respond':
      assert.equal(first, 200, what);
      assert.ok(!o.received.startsWith('HTTP/1.1 200 OK\r\nx-from: upstream'), what);
      break;
    case 'upstream':
      assert.ok(o.received.includes('x-from: upstream'), `the upstream's answer: ${what}`);
      break;
    case 'not-found':
      assert.equal(first, 404, what);
      break;
    case 'refused':
      assert.equal(first, 400, what);
      break;
    case 'too-large':
      assert.equal(first, 431, what);
      break;
    case 'any':
      break;
  }
}

/** RFC 9110 §5.1 token. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** What the upstream must never be sent, whatever the downstream sent. */
function checkForwarded(head: string): void {
  const lines = head.split('\r\n');
  assert.match(lines[0]!, /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ \S+ HTTP\/1\.1$/, `request line ${JSON.stringify(lines[0])}`);
  // Only the `proxied` route (pathPrefix /u) leads upstream: what it is sent is a path that route matches.
  assert.match(lines[0]!, /^\S+ \/u([/?][^ ]*)? HTTP\/1\.1$/, `forwarded outside the route: ${JSON.stringify(lines[0])}`);
  assert.ok(!/[\0\r\n]/.test(head.replaceAll('\r\n', '')), `CR, LF or NUL inside a line: ${JSON.stringify(head)}`);
  const names = new Map<string, number>();
  for (const line of lines.slice(1)) {
    assert.ok(!/^[ \t]/.test(line), `obs-fold forwarded: ${JSON.stringify(head)}`);
    const colon = line.indexOf(':');
    const name = line.slice(0, colon);
    assert.ok(colon > 0 && TOKEN.test(name), `header name ${JSON.stringify(name)}`);
    names.set(name.toLowerCase(), (names.get(name.toLowerCase()) ?? 0) + 1);
  }
  // Hop-by-hop fields (RFC 9110 §7.6.1; src/http/hop-by-hop.ts) are not forwarded; TE only as `trailers`, as Go does.
  for (const hop of ['proxy-connection', 'keep-alive', 'proxy-authorization', 'trailer']) assert.ok(!names.has(hop), `${hop} forwarded: ${JSON.stringify(head)}`);
  assert.ok(!/\r\nte:(?![ \t]*trailers\r\n)/i.test(`\r\n${head}\r\n`), `TE forwarded: ${JSON.stringify(head)}`);
  assert.ok(!(names.has('content-length') && names.has('transfer-encoding')), `Content-Length and Transfer-Encoding: ${JSON.stringify(head)}`);
  assert.ok((names.get('content-length') ?? 0) <= 1, `two Content-Length: ${JSON.stringify(head)}`);
  assert.ok((names.get('host') ?? 0) <= 1, `two Host: ${JSON.stringify(head)}`);
}

// ---------------------------------------------------------------- the property

describe('fuzz: HTTP/1.1 request heads through the gateway', () => {
  let up: RawUpstream;
  let gw: TestGateway;
  let port: number;

  before(async () => {
    up = await startRawUpstream();
    gw = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false, maxHeaderSize: MAX_HEADER_SIZE, timeouts: { headers: '300ms', request: '400ms', keepAlive: '100ms' } }],
      upstreams: [{ name: 'up', targets: [{ address: `127.0.0.1:${up.port}` }] }],
      routes: [
        { name: 'direct', listener: 'web', match: { pathPrefix: '/r' }, respond: { status: 200, body: 'direct' } },
        { name: 'proxied', listener: 'web', match: { pathPrefix: '/u' }, upstream: 'up' },
      ],
    });
    port = Number(new URL(gw.url()).port);
  });

  after(async () => {
    await gw?.close();
    await up?.close();
  });

  it('every head is answered with documented statuses or closed, never smuggled, and descriptors come back', async () => {
    // Warm up (the upstream pool exists from the first proxied request on), then count.
    const warm = await runCase(port, { text: 'GET /u HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n', end: false, expect: 'upstream', neverForwarded: false });
    assert.ok(warm.received.includes('x-from: upstream'), warm.received);
    const baseline = openFds();
    const refusedIds = new Set<string>();
    await fc.assert(
      fc.asyncProperty(fc.array(requestCase, { minLength: 1, maxLength: 10 }), async (cases) => {
        const headsBefore = up.heads.length;
        // One batch at a time, its connections concurrent.
        const outcomes = await Promise.all(cases.map((c) => runCase(port, c)));
        cases.forEach((c, i) => check(c, outcomes[i]!));
        // Heads of this batch that landed so far (a late one is checked with a later batch, and at the end).
        const forwarded = up.heads.slice(headsBefore);
        for (const head of forwarded) checkForwarded(head);
        assert.ok(!forwarded.some((h) => h.startsWith('GET /smuggled ')) || cases.some((c) => c.text.includes('/smuggled') && !/transfer-encoding|content-length/i.test(c.text)), `smuggled: ${JSON.stringify(forwarded)}`);
        cases.forEach((c, i) => {
          const tag = new RegExp(`\\r\\nx-case: ${outcomes[i]!.id}\\r\\n`, 'i');
          // A field the request's Connection header names is hop-by-hop too.
          if (/\r\nconnection:[^\r\n]*x-drop/i.test(c.text)) {
            const head = forwarded.find((h) => tag.test(`${h}\r\n`));
            assert.ok(head === undefined || !/\r\nx-drop:/i.test(head), `a field named in Connection was forwarded: ${JSON.stringify(head)}`);
          }
          if (c.neverForwarded) refusedIds.add(outcomes[i]!.id);
          if (c.neverForwarded) assert.ok(!forwarded.some((h) => tag.test(`${h}\r\n`)), `forwarded a head that must be refused: ${JSON.stringify(c.text.slice(0, 300))}`);
        });
      }),
      fuzzRuns(100),
    );
    // Still serving, and nothing left open.
    const after = await runCase(port, { text: 'GET /r HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n', end: false, expect: 'respond', neverForwarded: false });
    assert.equal(after.statuses[0], 200);
    // Not vacuous: many generated heads did reach the upstream.
    assert.ok(up.heads.length > 10, `only ${up.heads.length} heads reached the upstream`);
    for (const head of up.heads) {
      checkForwarded(head);
      const id = /\r\nx-case: (c\d+)(\r\n|$)/i.exec(head)?.[1];
      assert.ok(id === undefined || !refusedIds.has(id), `forwarded a head that must be refused: ${JSON.stringify(head)}`);
    }
    await fdsSettle(baseline, 2, 10_000);
  });
});
