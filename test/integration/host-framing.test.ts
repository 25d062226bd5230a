import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';
import { fdsSettle, openFds } from '../helpers/fds.js';

/** An upstream that records every request head it gets, and whether each body arrived whole. */
interface RecordingUpstream {
  address: string;
  started: { url: string; headers: http.IncomingHttpHeaders }[];
  /** Requests whose body ended (complete messages). */
  completed: { url: string; body: string; headers: http.IncomingHttpHeaders }[];
  /** Requests that were cut before their body ended. */
  aborted: string[];
  close(): Promise<void>;
}

/** `early`: answer each request at once, streaming a body that never ends, before reading the request body. */
async function recordingUpstream(early = false): Promise<RecordingUpstream> {
  const rec = { started: [], completed: [], aborted: [] } as unknown as RecordingUpstream;
  const server = http.createServer((req, res) => {
    rec.started.push({ url: req.url!, headers: req.headers });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      rec.completed.push({ url: req.url!, body: Buffer.concat(chunks).toString('latin1'), headers: req.headers });
      if (!early) res.end('ok');
    });
    req.on('close', () => {
      if (!req.complete) rec.aborted.push(req.url!);
    });
    if (early) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('streaming');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  rec.address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  rec.close = () =>
    new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
  return rec;
}

interface Exchange {
  /** Everything the gateway sent, latin1. */
  reply: string;
  /** The gateway closed the connection (within the wait). */
  closed: boolean;
  /** How many of the parts were written before the connection closed. */
  written: number;
}

/**
 * Opens a connection, writes `parts` in order (after each, `between` runs:
 * e.g. waiting until the upstream saw the head), and collects the reply
 * until the gateway closes the connection or `untilMs` passes.
 */
function exchange(port: number, parts: (string | Buffer)[], between?: (i: number, reply: () => string) => Promise<void>, untilMs = 10_000): Promise<Exchange> {
  return new Promise((resolve) => {
    let reply = '';
    let closed = false;
    let written = 0;
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => (reply += d.toString('latin1')));
    const timer = setTimeout(() => s.destroy(), untilMs);
    s.on('end', () => (closed = true));
    s.on('close', (hadError) => {
      clearTimeout(timer);
      resolve({ reply, closed: closed || hadError, written });
    });
    s.once('connect', async () => {
      for (let i = 0; i < parts.length; i++) {
        if (s.destroyed || s.writableEnded) return;
        s.write(parts[i]!);
        written++;
        if (between && i < parts.length - 1) await between(i, () => reply);
      }
    });
  });
}

function status(reply: string): number {
  const m = /^HTTP\/1\.1 (\d{3}) /.exec(reply);
  return m ? Number(m[1]) : 0;
}

function headerOf(reply: string, name: string): string | undefined {
  const head = reply.slice(0, reply.indexOf('\r\n\r\n'));
  const m = new RegExp(`^${name}: *(.*)$`, 'im').exec(head);
  return m?.[1]?.trim();
}

function bodyOf(reply: string): Record<string, unknown> {
  return JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
}

/** The access log's lines, parsed. */
function accessLines(file: string): Record<string, unknown>[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function portOf(gw: TestGateway, listener = 'web'): number {
  return Number(new URL(gw.url(listener)).port);
}

describe('Host and the request target (RFC 9112 §3.2)', () => {
  let up: RecordingUpstream;
  let gw: TestGateway;
  let port: number;
  let dir: string;
  let logFile: string;
  before(async () => {
    up = await recordingUpstream();
    dir = mkdtempSync(join(tmpdir(), 'portico-host-'));
    logFile = join(dir, 'access.log');
    gw = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: { path: logFile } }],
      upstreams: [{ name: 'up', targets: [{ address: up.address }] }],
      routes: [
        { name: 'deny-internal', listener: 'web', match: { host: 'internal.test' }, respond: { status: 403, body: 'internal' } },
        { name: 'deny-admin', listener: 'web', match: { host: 'admin.test' }, upstream: 'up', middlewares: [{ 'ip-restriction': { deny: ['127.0.0.0/8', '::1'] } }] },
        { name: 'public', listener: 'web', match: { host: ['public.test', 'other.test', '::1'] }, upstream: 'up' },
      ],
    });
    port = portOf(gw);
  });
  after(async () => {
    await gw.close();
    await up.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an absolute-form target is routed by its authority, not Host: a route denying that host is not bypassed', async () => {
    const fds = openFds();
    const startedBefore = up.started.length;
    for (const target of ['http://internal.test/secret', 'HTTP://Internal.TEST./secret', 'http://internal.test:8080/secret?x=1', 'https://internal.test']) {
      const { reply } = await exchange(port, [`GET ${target} HTTP/1.1\r\nHost: public.test\r\nConnection: close\r\n\r\n`]);
      assert.equal(status(reply), 403, target);
      assert.match(reply, /internal$/, target);
    }
    const { reply } = await exchange(port, ['GET http://admin.test/x HTTP/1.1\r\nHost: public.test\r\nConnection: close\r\n\r\n']);
    assert.equal(status(reply), 403, 'ip-restriction on the target authority');
    assert.equal(bodyOf(reply).code, 'FORBIDDEN');
    assert.equal(up.started.length, startedBefore, 'nothing reached the upstream');
    await fdsSettle(fds);
  });

  test('the upstream gets the target authority as Host and X-Forwarded-Host', async () => {
    const { reply } = await exchange(port, ['GET http://Other.test:8080/p/../x?y=1 HTTP/1.1\r\nHost: public.test\r\nConnection: close\r\n\r\n']);
    assert.equal(status(reply), 200);
    const got = up.completed.at(-1)!;
    assert.equal(got.url, '/x?y=1');
    assert.equal(got.headers.host, 'Other.test:8080');
    assert.equal(got.headers['x-forwarded-host'], 'Other.test:8080');
    // Origin-form: Host as sent.
    const plain = await exchange(port, ['GET /y HTTP/1.1\r\nHost: public.test:80\r\nConnection: close\r\n\r\n']);
    assert.equal(status(plain.reply), 200);
    assert.equal(up.completed.at(-1)!.headers.host, 'public.test:80');
    // A bracketed IPv6 Host routes by the address.
    const v6 = await exchange(port, ['GET /z HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n']);
    assert.equal(status(v6.reply), 200);
    assert.equal(up.completed.at(-1)!.headers.host, '[::1]:8080');
    // An empty Host is valid (a target URI without an authority): no host, so no host route matches.
    const empty = await exchange(port, ['GET / HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n']);
    assert.equal(status(empty.reply), 404);
  });

  test('a WebSocket upgrade with an absolute-form target is routed by its authority too', async () => {
    const startedBefore = up.started.length;
    const { reply } = await exchange(port, [
      'GET http://internal.test/ws HTTP/1.1\r\nHost: public.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    ]);
    assert.equal(status(reply), 403);
    const two = await exchange(port, [
      'GET /ws HTTP/1.1\r\nHost: public.test\r\nHost: internal.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    ]);
    assert.equal(status(two.reply), 400);
    assert.equal(two.closed, true);
    assert.equal(up.started.length, startedBefore);
  });

  const invalid: [string, string][] = [
    ['two Host lines', 'GET / HTTP/1.1\r\nHost: public.test\r\nHost: internal.test\r\n\r\n'],
    ['two Host lines, same value', 'GET / HTTP/1.1\r\nHost: public.test\r\nHost: public.test\r\n\r\n'],
    ['a comma-listed Host', 'GET / HTTP/1.1\r\nHost: public.test, internal.test\r\n\r\n'],
    ['no Host on HTTP/1.1', 'GET / HTTP/1.1\r\n\r\n'],
    ['no Host with an absolute-form target', 'GET http://public.test/ HTTP/1.1\r\n\r\n'],
    ['userinfo in Host', 'GET / HTTP/1.1\r\nHost: internal.test@public.test\r\n\r\n'],
    ['a path in Host', 'GET / HTTP/1.1\r\nHost: public.test/x\r\n\r\n'],
    ['a space in Host', 'GET / HTTP/1.1\r\nHost: public .test\r\n\r\n'],
    ['percent-encoding in Host', 'GET / HTTP/1.1\r\nHost: internal%2etest\r\n\r\n'],
    ['a port over 65535', 'GET / HTTP/1.1\r\nHost: public.test:65536\r\n\r\n'],
    ['a port that is not digits', 'GET / HTTP/1.1\r\nHost: public.test:8a\r\n\r\n'],
    ['an empty port', 'GET / HTTP/1.1\r\nHost: public.test:\r\n\r\n'],
    ['an unclosed IPv6 literal', 'GET / HTTP/1.1\r\nHost: [::1\r\n\r\n'],
    ['a bare IPv6 address', 'GET / HTTP/1.1\r\nHost: ::1\r\n\r\n'],
    ['an empty label', 'GET / HTTP/1.1\r\nHost: public..test\r\n\r\n'],
    ['userinfo in the target', 'GET http://public.test@internal.test/ HTTP/1.1\r\nHost: public.test\r\n\r\n'],
    ['an empty target authority', 'GET http:///x HTTP/1.1\r\nHost: public.test\r\n\r\n'],
    ['a fragment in the target authority', 'GET http://public.test#@internal.test/ HTTP/1.1\r\nHost: public.test\r\n\r\n'],
    ['an invalid Host beside an absolute-form target', 'GET http://public.test/ HTTP/1.1\r\nHost: a b\r\n\r\n'],
    ['a scheme that is not http(s)', 'GET ftp://internal.test/ HTTP/1.1\r\nHost: public.test\r\n\r\n'],
    ['authority-form on GET', 'GET internal.test:80 HTTP/1.1\r\nHost: public.test\r\n\r\n'],
    ['asterisk-form on GET', 'GET * HTTP/1.1\r\nHost: public.test\r\n\r\n'],
  ];
  for (const [what, head] of invalid) {
    test(`400 and close: ${what}`, async () => {
      const fds = openFds();
      const startedBefore = up.started.length;
      // A second request pipelined behind the bad one must not be served.
      const { reply, closed } = await exchange(port, [head + 'GET /after HTTP/1.1\r\nHost: public.test\r\n\r\n']);
      assert.equal(status(reply), 400, reply);
      assert.equal(bodyOf(reply).code, 'BAD_REQUEST');
      assert.equal(headerOf(reply, 'connection'), 'close');
      assert.equal(closed, true, 'the gateway closed the connection');
      assert.equal(reply.match(/HTTP\/1\.1 /g)!.length, 1, 'one answer only');
      assert.equal(up.started.length, startedBefore, 'nothing reached the upstream');
      await fdsSettle(fds);
    });
  }

  test('refused requests are in the access log with their cause', async () => {
    await exchange(port, ['GET /logged-two-hosts HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n']);
    const line = await waitFor(() => accessLines(logFile).find((l) => l.path === '/logged-two-hosts'), 'the access-log line', 5000);
    assert.equal(line.status, 400);
    assert.equal(line.error, 'BAD_REQUEST');
  });

  describe('HTTP/2: :authority and Host (RFC 9113 §8.3.1)', () => {
    function h2(headers: http2.OutgoingHttpHeaders): Promise<{ status: number; body: string; rstCode: number }> {
      return new Promise((resolve, reject) => {
        const session = http2.connect(`http://127.0.0.1:${port}`);
        session.on('error', reject);
        const req = session.request({ ':method': 'GET', ':path': '/h2', ...headers });
        let status = 0;
        let body = '';
        req.on('response', (h) => (status = Number(h[':status'])));
        req.setEncoding('latin1');
        req.on('data', (d: string) => (body += d));
        req.on('close', () => {
          session.close();
          resolve({ status, body, rstCode: req.rstCode ?? 0 });
        });
        req.on('error', () => undefined);
        req.end();
      });
    }

    test(':authority routes; a Host that names another host is refused', async () => {
      const startedBefore = up.started.length;
      assert.equal((await h2({ ':authority': 'internal.test' })).status, 403);
      const differ = await h2({ ':authority': 'public.test', host: 'internal.test' });
      assert.equal(differ.status, 400);
      assert.equal(JSON.parse(differ.body).code, 'BAD_REQUEST');
      assert.equal((await h2({ ':authority': 'public.test', host: 'public.test:443' })).status, 400, 'a different port is another authority');
      assert.equal((await h2({ ':authority': 'user@public.test' })).status, 400);
      assert.equal((await h2({ ':authority': 'public.test:99999' })).status, 400);
      // nghttp2 resets such a stream itself (RFC 9113 §8.1.1: malformed).
      const absolute = await h2({ ':authority': 'public.test', ':path': 'http://internal.test/x' });
      assert.equal(absolute.status, 0, 'absolute-form :path');
      assert.equal(absolute.rstCode, http2.constants.NGHTTP2_PROTOCOL_ERROR);
      assert.equal(up.started.length, startedBefore);
      const same = await h2({ ':authority': 'public.test', host: 'PUBLIC.test' });
      assert.equal(same.status, 200);
      assert.equal(up.completed.at(-1)!.headers.host, 'public.test');
    });
  });
});

/** A chunked upload split in two: the first chunk (so the upstream request starts), then `rest`. */
function upload(rest: string, path = '/upload'): [string, string] {
  return [`POST ${path} HTTP/1.1\r\nHost: public.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`, rest];
}

describe('invalid request framing (RFC 9112 §6, §7)', () => {
  let up: RecordingUpstream;
  let early: RecordingUpstream;
  let gw: TestGateway;
  let port: number;
  let dir: string;
  let logFile: string;
  before(async () => {
    up = await recordingUpstream();
    early = await recordingUpstream(true);
    dir = mkdtempSync(join(tmpdir(), 'portico-framing-'));
    logFile = join(dir, 'access.log');
    gw = await startGateway({
      listeners: [
        { name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: { path: logFile } },
        { name: 'slow', protocol: 'http', listen: '127.0.0.1:0', accessLog: { path: logFile }, timeouts: { headers: '500ms', request: '1s' } },
      ],
      upstreams: [
        { name: 'up', targets: [{ address: up.address }] },
        { name: 'early', targets: [{ address: early.address }] },
        { name: 'guarded', targets: [{ address: up.address }], retries: { attempts: 1, retryNonIdempotent: true } },
      ],
      routes: [
        { name: 'early', listener: 'web', match: { pathPrefix: '/early' }, upstream: 'early' },
        { name: 'guarded', listener: 'web', match: { pathPrefix: '/guarded' }, upstream: 'guarded' },
        { name: 'up', listener: 'web', upstream: 'up' },
        { name: 'slow', listener: 'slow', upstream: 'up' },
      ],
    });
    port = portOf(gw);
  });
  after(async () => {
    await gw.close();
    await up.close();
    await early.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const badBodies: [string, string, string][] = [
    ['a chunk size that overflows', '/overflow', 'fffffffffffffffffff\r\nx\r\n0\r\n\r\n'],
    ['a negative chunk size', '/negative', '-1\r\nx\r\n0\r\n\r\n'],
    ['a signed chunk size', '/signed', '+5\r\nhello\r\n0\r\n\r\n'],
    ['a 0x chunk size', '/hex-prefix', '0x5\r\nhello\r\n0\r\n\r\n'],
    ['an empty chunk size', '/empty-size', '\r\nhello\r\n0\r\n\r\n'],
    ['a malformed chunk extension', '/bad-ext', '5;\u0001\r\nhello\r\n0\r\n\r\n'],
    ['an oversized chunk extension', '/big-ext', `5;a=${'b'.repeat(20_000)}\r\nhello\r\n0\r\n\r\n`],
    ['no CRLF after chunk data', '/no-crlf', '5\r\nhelloXX0\r\n\r\n'],
    ['data longer than its chunk size', '/too-long', '3\r\nhello\r\n0\r\n\r\n'],
    ['a bare LF after the chunk size', '/bare-lf', '5\nhello\r\n0\r\n\r\n'],
    ['an invalid trailer', '/bad-trailer', '0\r\nbad trailer\r\n\r\n'],
  ];
  for (const [what, path, rest] of badBodies) {
    test(`400 BAD_FRAMING, the upstream request aborted: ${what}`, async () => {
      const fds = openFds();
      const completedBefore = up.completed.length;
      const { reply, closed } = await exchange(port, upload(rest, path), () =>
        waitFor(() => up.started.some((r) => r.url === path), 'the upstream to get the request head', 5000).then(() => undefined),
      );
      assert.equal(status(reply), 400, reply);
      const body = bodyOf(reply);
      assert.equal(body.code, 'BAD_FRAMING');
      assert.match(String(body.error), /\(HPE_[A-Z_]+\)/, 'the parser code is named');
      assert.equal(headerOf(reply, 'connection'), 'close');
      assert.equal(closed, true);
      await waitFor(() => up.aborted.includes(path), 'the upstream request to be cut', 5000);
      assert.equal(up.completed.length, completedBefore, 'the upstream got no complete request');
      const line = await waitFor(() => accessLines(logFile).find((l) => l.path === path), 'the access-log line', 5000);
      assert.equal(line.status, 400);
      assert.equal(line.error, 'BAD_FRAMING');
      await fdsSettle(fds);
    });
  }

  test('a bad chunk after the response head went out: the connection is cut and the log names the cause', async () => {
    const fds = openFds();
    const { reply, closed } = await exchange(port, upload('zz\r\n', '/early/cut'), async (_i, soFar) => {
      // The upstream's 200 head and some body reached the client before the bad chunk is sent.
      await waitFor(() => soFar().includes('streaming'), 'the upstream response to start', 5000);
    });
    assert.equal(status(reply), 200);
    assert.equal(closed, true);
    assert.ok(!reply.endsWith('0\r\n\r\n'), 'the chunked response is not ended as if complete');
    await waitFor(() => early.aborted.includes('/early/cut'), 'the upstream request to be cut', 5000);
    assert.equal(early.completed.length, 0);
    const line = await waitFor(() => accessLines(logFile).find((l) => l.path === '/early/cut'), 'the access-log line', 5000);
    assert.equal(line.error, 'BAD_FRAMING');
    await fdsSettle(fds);
  });

  test('with retries (the body is buffered before the first try): 400 BAD_FRAMING, nothing upstream, logged', async () => {
    const fds = openFds();
    const startedBefore = up.started.length;
    const { reply, closed } = await exchange(port, upload('-1\r\n', '/guarded/bad'));
    assert.equal(status(reply), 400, reply);
    assert.equal(bodyOf(reply).code, 'BAD_FRAMING');
    assert.equal(closed, true);
    assert.equal(up.started.length, startedBefore, 'a buffered body never went upstream');
    const line = await waitFor(() => accessLines(logFile).find((l) => l.path === '/guarded/bad'), 'the access-log line', 5000);
    assert.equal(line.status, 400);
    assert.equal(line.error, 'BAD_FRAMING');
    await fdsSettle(fds);
  });

  const codings: [string, string, number, string][] = [
    ['xchunked', 'Transfer-Encoding: xchunked', 501, 'UNSUPPORTED_TRANSFER_CODING'],
    ['gzip alone', 'Transfer-Encoding: gzip', 501, 'UNSUPPORTED_TRANSFER_CODING'],
    ['chunked, gzip', 'Transfer-Encoding: chunked, gzip', 501, 'UNSUPPORTED_TRANSFER_CODING'],
    ['gzip, chunked', 'Transfer-Encoding: gzip, chunked', 501, 'UNSUPPORTED_TRANSFER_CODING'],
    ['gzip and chunked on two lines', 'Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked', 501, 'UNSUPPORTED_TRANSFER_CODING'],
    ['chunked twice', 'Transfer-Encoding: chunked, chunked', 400, 'BAD_FRAMING'],
    ['chunked with a parameter', 'Transfer-Encoding: chunked;q=1', 400, 'BAD_FRAMING'],
  ];
  for (const [what, te, code, errorCode] of codings) {
    test(`${code} ${errorCode} and close, nothing upstream: Transfer-Encoding ${what}`, async () => {
      const fds = openFds();
      const startedBefore = up.started.length;
      const { reply, closed } = await exchange(port, [
        `POST /te HTTP/1.1\r\nHost: public.test\r\n${te}\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /after HTTP/1.1\r\nHost: public.test\r\n\r\n`,
      ]);
      assert.equal(status(reply), code, reply);
      assert.equal(bodyOf(reply).code, errorCode);
      assert.equal(headerOf(reply, 'connection'), 'close');
      assert.equal(closed, true);
      assert.equal(reply.match(/HTTP\/1\.1 /g)!.length, 1, 'one answer only');
      assert.equal(up.started.length, startedBefore);
      await fdsSettle(fds);
    });
  }

  test('Transfer-Encoding on HTTP/1.0 is faulty framing (RFC 9112 §6.1)', async () => {
    const startedBefore = up.started.length;
    const { reply, closed } = await exchange(port, ['POST /old HTTP/1.0\r\nHost: public.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n']);
    assert.equal(status(reply), 400);
    assert.equal(bodyOf(reply).code, 'BAD_FRAMING');
    assert.equal(closed, true);
    assert.equal(up.started.length, startedBefore);
  });

  test('a well-formed chunked upload still goes through whole', async () => {
    const { reply } = await exchange(port, [`POST /fine HTTP/1.1\r\nHost: public.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n`]);
    assert.equal(status(reply), 200);
    assert.equal(up.completed.at(-1)!.url, '/fine');
    assert.equal(up.completed.at(-1)!.body, 'hello');
  });

  test('timeouts.request: a slow upload gets 408 JSON, is closed, logged 408, and the upstream request is cut', async () => {
    const fds = openFds();
    const slowPort = portOf(gw, 'slow');
    const completedBefore = up.completed.length;
    // Drips one byte every 200 ms of a 100-byte body: 8 s of dripping, never done within the 1 s limit.
    const drip = Array.from({ length: 40 }, () => 'x');
    const { reply, closed, written } = await exchange(slowPort, ['POST /slow HTTP/1.1\r\nHost: public.test\r\nContent-Length: 100\r\n\r\n', ...drip], () =>
      new Promise((r) => setTimeout(r, 200)),
    );
    assert.equal(status(reply), 408, reply);
    assert.equal(bodyOf(reply).code, 'REQUEST_TIMEOUT');
    assert.equal(headerOf(reply, 'connection'), 'close');
    assert.equal(closed, true);
    assert.ok(written < drip.length, `closed while the client was still sending (${written} of ${drip.length + 1} parts written)`);
    await waitFor(() => up.aborted.includes('/slow'), 'the upstream request to be cut', 5000);
    assert.equal(up.completed.length, completedBefore);
    const line = await waitFor(() => accessLines(logFile).find((l) => l.path === '/slow'), 'the access-log line', 5000);
    assert.equal(line.status, 408);
    assert.equal(line.error, 'REQUEST_TIMEOUT');
    await fdsSettle(fds);
  });
});
