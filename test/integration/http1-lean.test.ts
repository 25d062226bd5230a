// The lean HTTP/1.1 downstream engine (src/http1/) end to end: a real
// gateway, a real upstream, raw TCP clients. What it serves itself
// (keep-alive, pipelining, HEAD, small bodies) and what it hands to
// node:http at a request boundary (a split head, bad input, CONNECT, an
// upgrade) are answered as before, on the same connection; graceful close
// finishes the response in flight with `Connection: close`; descriptors
// come back to the baseline.
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import fc from 'fast-check';
import { WebSocketServer } from 'ws';
import { startGateway, simpleConfig, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { waitFor } from '../helpers/wait.js';
import { createPki, type Pki } from '../helpers/certs.js';
import { fuzzRuns } from '../helpers/fuzz.js';
import { LeanResponse } from '../../src/http1/response.js';

/** One raw client connection: everything it received so far, as latin1. */
class Client {
  readonly socket: net.Socket;
  data = '';
  ended = false;
  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => (this.data += d.toString('latin1')));
    socket.on('end', () => (this.ended = true));
    socket.on('close', () => (this.ended = true));
    socket.on('error', () => undefined);
  }
  static tls(gw: TestGateway, ca: string): Promise<Client> {
    const u = new URL(gw.url());
    return new Promise((resolve) => {
      const s = tls.connect({ port: Number(u.port), host: u.hostname, servername: 'lean.test', ca, ALPNProtocols: ['http/1.1'] }, () => resolve(new Client(s)));
    });
  }
  static open(gw: TestGateway): Promise<Client> {
    const u = new URL(gw.url());
    return new Promise((resolve) => {
      const s = net.connect({ port: Number(u.port), host: u.hostname, allowHalfOpen: true }, () => resolve(new Client(s)));
    });
  }
  send(bytes: string | Buffer): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }
  /** Waits until `n` complete responses (by Content-Length or chunked framing) were received; returns them. */
  async responses(n: number, head = false): Promise<Response[]> {
    return waitFor(() => {
      const all = splitResponses(this.data, head);
      return all.length >= n ? all : undefined;
    }, `${n} responses`, 5000);
  }
  async closed(): Promise<void> {
    await waitFor(() => this.ended, 'the connection closed', 5000);
  }
  destroy(): void {
    this.socket.destroy();
  }
}

interface Response {
  status: number;
  headers: Map<string, string>;
  /** Header names in order, as sent. */
  names: string[];
  body: string;
}

/** Splits a byte stream of HTTP/1.1 responses (Content-Length or chunked bodies; `head`: every response is bodiless). */
function splitResponses(data: string, head: boolean): Response[] {
  const out: Response[] = [];
  let at = 0;
  for (;;) {
    const end = data.indexOf('\r\n\r\n', at);
    if (end < 0) return out;
    const lines = data.slice(at, end).split('\r\n');
    const status = Number(lines[0]!.split(' ')[1]);
    const headers = new Map<string, string>();
    const names: string[] = [];
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      names.push(l.slice(0, i));
      headers.set(l.slice(0, i).toLowerCase(), l.slice(i + 1).trim());
    }
    let p = end + 4;
    let body = '';
    if (head || status === 204 || status === 304 || status === 101) {
      // no body
    } else if (headers.get('transfer-encoding') === 'chunked') {
      for (;;) {
        const le = data.indexOf('\r\n', p);
        if (le < 0) return out;
        const size = parseInt(data.slice(p, le), 16);
        if (data.length < le + 2 + size + 2) return out;
        body += data.slice(le + 2, le + 2 + size);
        p = le + 2 + size + 2;
        if (size === 0) break;
      }
    } else {
      const len = Number(headers.get('content-length') ?? 0);
      if (data.length < p + len) return out;
      body = data.slice(p, p + len);
      p += len;
    }
    out.push({ status, headers, names, body });
    at = p;
  }
}

const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: lean.test\r\n${extra}\r\n`;

describe('lean HTTP/1.1 engine', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  let fds: number;
  before(async () => {
    up = await startUpstream((req, res, body) => {
      const delay = Number(new URL(req.url!, 'http://x').searchParams.get('delay') ?? 0);
      setTimeout(() => {
        const text = `${req.method} ${req.url} ${body}`;
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) });
        res.end(req.method === 'HEAD' ? undefined : text);
      }, delay);
    });
    gw = await startGateway(
      simpleConfig([up.address], {}, {}, { maxHeaderSize: 4096, timeouts: { headers: '500ms', keepAlive: '5s' } }),
    );
  });
  after(async () => {
    await gw.close();
    await up.close();
  });
  beforeEach(() => {
    fds = openFds();
  });
  afterEach(async () => {
    await fdsSettle(fds);
  });

  test('keep-alive: several requests on one connection, each answered with the head node:http would send', async () => {
    const c = await Client.open(gw);
    c.send(get('/one'));
    const [a] = await c.responses(1);
    c.send(get('/two'));
    const [, b] = await c.responses(2);
    assert.equal(a!.body, 'GET /one ');
    assert.equal(b!.body, 'GET /two ');
    for (const r of [a!, b!]) {
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('connection'), 'keep-alive');
      assert.equal(r.headers.get('keep-alive'), 'timeout=5');
      // The upstream's Date is passed on (node:http adds one only when there is none).
      assert.match(r.headers.get('date')!, /^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
      assert.match(r.headers.get('x-request-id')!, /^[0-9a-f-]{36}$/);
      // node:http's order: the response's own headers, then Connection, Keep-Alive.
      assert.deepEqual(r.names.slice(-2), ['Connection', 'Keep-Alive']);
    }
    assert.equal(c.ended, false, 'the connection stays open');
    c.destroy();
  });

  test('the same response head and body as node:http (after a hand-over) on the same request', async () => {
    const c = await Client.open(gw);
    // The first request is served lean; the second has an Expect the lean engine leaves to node:http.
    c.send(get('/same'));
    await c.responses(1);
    c.send(get('/same', 'Expect: 100-continue\r\n'));
    const [lean, node] = await waitFor(() => {
      const rs = splitResponses(c.data.replace(/HTTP\/1\.1 100 Continue\r\n\r\n/, ''), false);
      return rs.length >= 2 ? rs : undefined;
    }, 'two responses');
    const strip = (r: Response) => r.names.filter((n) => n.toLowerCase() !== 'x-request-id' && n !== 'Date').join(',');
    assert.equal(strip(lean!), strip(node!));
    assert.equal(lean!.body, node!.body);
    assert.equal(lean!.status, node!.status);
    c.destroy();
  });

  test('pipelining: requests sent in one write are answered in order, a slow one holding back the rest', async () => {
    const c = await Client.open(gw);
    c.send(get('/p1?delay=150') + get('/p2') + `POST /p3 HTTP/1.1\r\nHost: lean.test\r\nContent-Length: 5\r\n\r\nhello` + get('/p4?delay=20'));
    const rs = await c.responses(4);
    assert.deepEqual(rs.map((r) => r.body), ['GET /p1?delay=150 ', 'GET /p2 ', 'POST /p3 hello', 'GET /p4?delay=20 ']);
    c.destroy();
  });

  test('HEAD: the head only, no body bytes, the connection reusable', async () => {
    const c = await Client.open(gw);
    c.send(`HEAD /h HTTP/1.1\r\nHost: lean.test\r\n\r\n`);
    const [r] = await c.responses(1, true);
    assert.equal(r!.status, 200);
    c.send(get('/after-head'));
    await waitFor(() => c.data.includes('GET /after-head '), 'the next answer');
    // Nothing between the HEAD answer's blank line and the next status line.
    assert.match(c.data, /\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
    c.destroy();
  });

  test('POST with a small body: the upstream receives the body and its Content-Length', async () => {
    const before = up.received.length;
    const c = await Client.open(gw);
    c.send(`POST /post HTTP/1.1\r\nHost: lean.test\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world`);
    const [r] = await c.responses(1);
    assert.equal(r!.body, 'POST /post hello world');
    const got = up.received[before]!;
    assert.equal(got.headers['content-length'], '11');
    assert.equal(got.body, 'hello world');
    c.destroy();
  });

  test('a head split across reads is handed to node:http and still answered, on the same connection', async () => {
    const c = await Client.open(gw);
    c.send(get('/before-split'));
    await c.responses(1);
    c.send('GET /split HTTP/1.1\r\nHo');
    await new Promise((r) => setTimeout(r, 50));
    c.send('st: lean.test\r\n\r\n');
    const rs = await c.responses(2);
    assert.equal(rs[1]!.body, 'GET /split ');
    // node:http serves the rest of the connection.
    c.send(get('/after-split'));
    const rs2 = await c.responses(3);
    assert.equal(rs2[2]!.body, 'GET /after-split ');
    c.destroy();
  });

  test('a body larger than one read is handed over and arrives whole', async () => {
    const body = 'x'.repeat(300_000);
    const c = await Client.open(gw);
    c.send(`POST /big HTTP/1.1\r\nHost: lean.test\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    const [r] = await c.responses(1);
    assert.equal(r!.body, `POST /big ${body}`);
    c.destroy();
  });

  // Each class of bad input: answered on a fresh connection and after lean requests on the same one, byte for byte alike.
  const BAD: [string, string, number][] = [
    ['bare LF', 'GET /x HTTP/1.1\nHost: lean.test\n\n', 400],
    ['obs-fold', 'GET /x HTTP/1.1\r\nHost: lean.test\r\nX-A: a\r\n b\r\n\r\n', 400],
    ['duplicate Host', 'GET /x HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n', 400],
    ['CL + TE', 'POST /x HTTP/1.1\r\nHost: lean.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['bad Content-Length', 'POST /x HTTP/1.1\r\nHost: lean.test\r\nContent-Length: 1x\r\n\r\n', 400],
    ['two Content-Lengths', 'POST /x HTTP/1.1\r\nHost: lean.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', 400],
    ['no Host', 'GET /x HTTP/1.1\r\n\r\n', 400],
    ['control character in a value', 'GET /x HTTP/1.1\r\nHost: lean.test\r\nX-A: a\x01b\r\n\r\n', 400],
    ['space before the colon', 'GET /x HTTP/1.1\r\nHost : lean.test\r\n\r\n', 400],
    ['head over maxHeaderSize', `GET /x HTTP/1.1\r\nHost: lean.test\r\nX-Big: ${'a'.repeat(5000)}\r\n\r\n`, 431],
    ['unknown transfer coding', 'POST /x HTTP/1.1\r\nHost: lean.test\r\nTransfer-Encoding: gzip\r\n\r\n', 501],
    ['CONNECT', 'CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n', 405],
  ];
  const stripId = (s: string) => s.replace(/Date: [^\r]+/g, 'Date: -').replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, 'ID');
  for (const [name, bytes, status] of BAD) {
    test(`bad input (${name}): ${status}, the same answer with or without lean requests before it, then closed`, async () => {
      const before = up.received.length;
      const fresh = await Client.open(gw);
      fresh.send(bytes);
      await fresh.closed();
      const c = await Client.open(gw);
      c.send(get('/ok'));
      const [ok] = await c.responses(1);
      assert.equal(ok!.body, 'GET /ok ');
      const okBytes = c.data;
      c.send(bytes);
      await c.closed();
      assert.match(fresh.data, new RegExp(`^HTTP/1\\.1 ${status} `));
      assert.equal(stripId(c.data.slice(okBytes.length)), stripId(fresh.data));
      assert.equal(up.received.length, before + 1, 'only the good request reached the upstream');
      fresh.destroy();
      c.destroy();
    });
  }

  test('bad bytes pipelined behind a request are met as node:http meets them: that request is answered, then the connection closes unanswered', async () => {
    const before = up.received.length;
    const c = await Client.open(gw);
    c.send(get('/first?delay=50') + 'GET /bad HTTP/1.1\nHost: lean.test\n\n');
    await c.closed();
    const rs = splitResponses(c.data, false);
    assert.equal(rs.length, 1, c.data);
    assert.equal(rs[0]!.body, 'GET /first?delay=50 ');
    assert.equal(c.data.slice(c.data.indexOf('GET /first?delay=50 ') + 'GET /first?delay=50 '.length), '', 'nothing after the answer');
    assert.equal(up.received.length, before + 1);
    c.destroy();
  });

  test('a valid request pipelined behind lean ones but left to node:http (Expect) is served, in order', async () => {
    const c = await Client.open(gw);
    c.send(get('/e1?delay=30') + get('/e2', 'Expect: 100-continue\r\n') + get('/e3'));
    const rs = await waitFor(() => {
      const all = splitResponses(c.data.replace(/HTTP\/1\.1 100 Continue\r\n\r\n/, ''), false);
      return all.length >= 3 ? all : undefined;
    }, 'three answers');
    assert.deepEqual(rs.map((r) => r.body), ['GET /e1?delay=30 ', 'GET /e2 ', 'GET /e3 ']);
    c.destroy();
  });

  test('an idle keep-alive connection is closed after timeouts.keepAlive', async (t) => {
    const quick = await startGateway(simpleConfig([up.address], {}, {}, { timeouts: { keepAlive: '300ms' } }));
    t.after(() => quick.close());
    const c = await Client.open(quick);
    c.send(get('/ka'));
    await c.responses(1);
    await c.closed();
    c.destroy();
    await quick.close();
  });

  test('with HTTP/2 off, a connection that sends nothing gets 408 as node:http answers it', async (t) => {
    const h1only = await startGateway(simpleConfig([up.address], {}, {}, { http2: { enabled: false }, timeouts: { headers: '300ms' } }));
    t.after(() => h1only.close());
    const c = await Client.open(h1only);
    await c.closed();
    assert.match(c.data, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.match(c.data, /"code":"REQUEST_TIMEOUT"/);
    c.destroy();
    await h1only.close();
  });

  test('a connection that sends nothing is closed after the headers timeout', async () => {
    const c = await Client.open(gw);
    await c.closed();
    c.destroy();
  });

  test('Connection: close is answered with Connection: close, and the connection ends; pipelined requests after it are not served', async () => {
    const before = up.received.length;
    const c = await Client.open(gw);
    c.send(get('/closing', 'Connection: close\r\n') + get('/never'));
    const [r] = await c.responses(1);
    assert.equal(r!.headers.get('connection'), 'close');
    await c.closed();
    assert.equal(up.received.length, before + 1);
    assert.equal(splitResponses(c.data, false).length, 1);
    c.destroy();
  });

  test('a client that leaves while its request is in flight closes cleanly (no descriptor left)', async () => {
    const c = await Client.open(gw);
    c.send(get('/gone?delay=200'));
    await waitFor(() => up.received.some((r) => r.url === '/gone?delay=200'), 'the upstream got it');
    c.destroy();
  });
});

describe('lean HTTP/1.1 engine: upgrades and graceful close', () => {
  let server: http.Server;
  let wss: WebSocketServer;
  let upAddress: string;
  let fds: number;
  const seen: string[] = [];
  before(async () => {
    fds = openFds();
    server = http.createServer((req, res) => {
      seen.push(req.url!);
      const delay = Number(new URL(req.url!, 'http://x').searchParams.get('delay') ?? 0);
      setTimeout(() => res.end(`plain ${req.url}`), delay);
    });
    wss = new WebSocketServer({ server });
    wss.on('connection', (ws) => ws.on('message', (d, bin) => ws.send(d, { binary: bin })));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    upAddress = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const ws of wss.clients) ws.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    await fdsSettle(fds);
  });

  test('a WebSocket upgrade after lean requests on the same connection is handed over and works', async (t) => {
    const gw = await startGateway(simpleConfig([upAddress]));
    t.after(() => gw.close());
    const c = await Client.open(gw);
    c.send(get('/a') + get('/b'));
    await c.responses(2);
    const key = Buffer.from('0123456789abcdef').toString('base64');
    c.send(`GET /ws HTTP/1.1\r\nHost: lean.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`);
    const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    await waitFor(() => c.data.includes('HTTP/1.1 101 '), 'the 101');
    assert.ok(c.data.toLowerCase().includes(`sec-websocket-accept: ${accept.toLowerCase()}`), c.data);
    // A masked text frame "hi" (RFC 6455 §5.2); the echo comes back unmasked.
    const mask = Buffer.from([1, 2, 3, 4]);
    const payload = Buffer.from('hi');
    const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
    c.send(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
    await waitFor(() => c.data.endsWith('\x81\x02hi'), 'the echoed frame');
    c.destroy();
    await gw.close();
  });

  test('graceful stop: the response in flight is finished, then the connection ends; no new request is taken', async (t) => {
    const gw = await startGateway(simpleConfig([upAddress]));
    t.after(() => gw.close());
    const c = await Client.open(gw);
    c.send(get('/first'));
    await c.responses(1);
    c.send(get('/slow?delay=300'));
    await waitFor(() => seen.includes('/slow?delay=300'), 'the upstream got it');
    const stopping = gw.close();
    const rs = await c.responses(2);
    assert.equal(rs[1]!.body, 'plain /slow?delay=300');
    await c.closed();
    await stopping;
    c.destroy();
  });

  test('graceful close: an idle lean connection is closed at once', async (t) => {
    const gw = await startGateway(simpleConfig([upAddress]));
    t.after(() => gw.close());
    const c = await Client.open(gw);
    c.send(get('/idle'));
    await c.responses(1);
    const started = Date.now();
    await gw.close();
    await c.closed();
    assert.ok(Date.now() - started < 900, 'closed before the grace period ran out');
    c.destroy();
  });

  test('HTTP/2 with prior knowledge on the same port: told apart on the first read, served, listed once as h2-session', async (t) => {
    const gw = await startGateway(simpleConfig([upAddress]));
    t.after(() => gw.close());
    const session = http2.connect(gw.url());
    session.on('error', () => undefined);
    const body = await new Promise<string>((resolve, reject) => {
      const req = session.request({ ':path': '/h2', ':authority': 'lean.test' });
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (text += d));
      req.on('end', () => resolve(text));
      req.on('error', reject);
      req.end();
    });
    assert.equal(body, 'plain /h2');
    const kinds = gw.gateway.connectionRegistry.list().map((e) => e.kind);
    assert.deepEqual(kinds, ['h2-session']);
    session.close();
    await gw.close();
  });

  test('the connection registry closes a lean connection after its response in flight', async (t) => {
    const gw = await startGateway(simpleConfig([upAddress]));
    t.after(() => gw.close());
    const c = await Client.open(gw);
    c.send(get('/reg?delay=200'));
    await waitFor(() => seen.includes('/reg?delay=200'), 'the upstream got it');
    const registry = gw.gateway.connectionRegistry;
    const entry = await waitFor(() => registry.list().find((e) => e.kind === 'http1'), 'the http1 entry');
    registry.close(entry.id);
    const [r] = await c.responses(1);
    assert.equal(r!.headers.get('connection'), 'close');
    await c.closed();
    c.destroy();
    await gw.close();
  });
});

describe('lean HTTP/1.1 engine over TLS, and split heads as a property', () => {
  let up: TestUpstream;
  let pki: Pki;
  let fds: number;
  before(async () => {
    fds = openFds();
    pki = await createPki();
    up = await startUpstream((req, res, body) => {
      const text = `${req.method} ${req.url} ${body}`;
      res.writeHead(200, { 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  after(async () => {
    await up.close();
    await pki.cleanup();
    await fdsSettle(fds);
  });

  test('https with ALPN http/1.1: keep-alive and pipelining served lean, then a hand-over (split head) on the same TLS connection', async (t) => {
    const cert = await pki.issue('lean.test');
    const gw = await startGateway(
      simpleConfig([up.address], {}, {}, { protocol: 'https', tls: { certificates: [{ cert: cert.cert, key: cert.key }] } }),
    );
    t.after(() => gw.close());
    const c = await Client.tls(gw, pki.caPem);
    c.send(get('/t1') + get('/t2'));
    await c.responses(2);
    c.send('GET /t3 HTTP/1.1\r\nHo');
    await new Promise((r) => setTimeout(r, 50));
    c.send('st: lean.test\r\n\r\n');
    const rs = await c.responses(3);
    assert.deepEqual(rs.map((r) => r.body), ['GET /t1 ', 'GET /t2 ', 'GET /t3 ']);
    assert.equal(rs[0]!.headers.get('connection'), 'keep-alive');
    c.destroy();
    await gw.close();
  });

  test('property: a request cut at any point into two writes gets the same answer and upstream request as sent whole', async (t) => {
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(() => gw.close());
    const request = fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'OPTIONS'),
      path: fc.stringMatching(/^\/[a-zA-Z0-9._~!$&'()*+,;=:@%/-]{0,20}$/),
      headers: fc.array(fc.tuple(fc.stringMatching(/^x-[a-z0-9-]{1,10}$/), fc.stringMatching(/^[ -~]{0,20}$/).map((v) => v.trim())), { maxLength: 5 }),
      body: fc.stringMatching(/^[a-z0-9 ]{0,30}$/),
    });
    await fc.assert(
      fc.asyncProperty(request, fc.nat(), async (r, cutAt) => {
        const lines = r.headers.map(([n, v]) => `${n}: ${v}\r\n`).join('');
        const length = r.body.length > 0 ? `Content-Length: ${r.body.length}\r\n` : '';
        const bytes = Buffer.from(`${r.method} ${r.path} HTTP/1.1\r\nHost: lean.test\r\n${lines}${length}\r\n${r.body}`, 'latin1');
        const answers: string[] = [];
        const seen: unknown[] = [];
        for (const cut of [bytes.length, 1 + (cutAt % (bytes.length - 1))]) {
          const before = up.received.length;
          const c = await Client.open(gw);
          c.send(bytes.subarray(0, cut));
          if (cut < bytes.length) {
            await new Promise((res) => setTimeout(res, 5));
            c.send(bytes.subarray(cut));
          }
          const [a] = await c.responses(1);
          answers.push(`${a!.status} ${a!.body}`);
          const got = up.received[before]!;
          seen.push({ method: got.method, url: got.url, body: got.body, raw: got.rawHeaders.filter((_, i, all) => all[i - (i % 2)]!.startsWith('x-') && !/^x-(forwarded|real|request)/.test(all[i - (i % 2)]!)) });
          c.destroy();
        }
        assert.equal(answers[0], answers[1]);
        assert.deepEqual(seen[0], seen[1]);
      }),
      fuzzRuns(60),
    );
    await gw.close();
  });
});

describe('lean response headers', () => {
  test('writeHead and setHeader refuse what node:http refuses, with node:http\'s error codes; valid heads are built alike', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
    const accepted = await new Promise<net.Socket>((r) => server.once('connection', r));
    const owner = { socket: accepted, keepAliveMs: () => 5000, ended: () => undefined };
    const codeOf = (f: () => unknown): string | undefined => {
      try {
        f();
        return undefined;
      } catch (err) {
        return (err as { code?: string }).code ?? 'no code';
      }
    };
    const nodeRes = () => new http.ServerResponse({ method: 'GET', httpVersionMajor: 1, httpVersionMinor: 1, headers: {} } as http.IncomingMessage);
    const bad: [string, unknown][] = [['bad name', 'v'], ['', 'v'], ['x-a', 'a\nb'], ['x-a', 'a\rb'], ['x-a', 'a\u0000b'], ['x-a', undefined], ['x-a', 'caf\u20ac'], ['x-é', 'v']];
    for (const [name, value] of bad) {
      const expected = codeOf(() => nodeRes().writeHead(200, [name, value] as string[]));
      assert.ok(expected !== undefined, `node:http refuses ${JSON.stringify([name, value])}`);
      assert.equal(codeOf(() => new LeanResponse(owner, false, true).writeHead(200, [name, value] as string[])), expected, JSON.stringify([name, value]));
      assert.equal(codeOf(() => new LeanResponse(owner, false, true).setHeader(name, value as string)), codeOf(() => nodeRes().setHeader(name, value as string)));
    }
    assert.equal(codeOf(() => new LeanResponse(owner, false, true).writeHead(200, ['x-a', 'tab\tand obs-text \xe9'])), undefined);
    client.destroy();
    accepted.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
});
