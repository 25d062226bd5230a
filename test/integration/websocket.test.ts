import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket, WebSocketServer, type RawData, type ServerOptions } from 'ws';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';
import { createPki, type Pki } from '../helpers/certs.js';

// ---------------------------------------------------------------------------
// Helpers: real servers on 127.0.0.1:0, real clients.

interface WsUpstream {
  address: string;
  server: http.Server;
  wss: WebSocketServer;
  /** Open TCP connections to this server. */
  sockets: Set<net.Socket>;
  /** Handshake requests, in order. */
  handshakes: http.IncomingMessage[];
  /** Server-side WebSockets, in order. */
  peers: WebSocket[];
  close(): Promise<void>;
}

/** A `ws` server; by default every connection echoes what it receives. */
async function startWsUpstream(options: Omit<ServerOptions, 'server' | 'port'> = {}, onConnection?: (ws: WebSocket, req: http.IncomingMessage) => void): Promise<WsUpstream> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('not a websocket');
  });
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const wss = new WebSocketServer({ server, ...options });
  const handshakes: http.IncomingMessage[] = [];
  const peers: WebSocket[] = [];
  wss.on('connection', (ws, req) => {
    handshakes.push(req);
    peers.push(ws);
    ws.on('error', () => undefined);
    if (onConnection) onConnection(ws, req);
    else ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    server,
    wss,
    sockets,
    handshakes,
    peers,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        wss.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function wsUrl(gw: TestGateway, path: string): string {
  return gw.url().replace(/^http/, 'ws') + path;
}

/** Opens a client; rejects with the status on a non-101 answer. */
function open(url: string, protocols?: string | string[], options: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = protocols === undefined ? new WebSocket(url, options) : new WebSocket(url, protocols, options);
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (req, res) => {
      res.resume();
      req.destroy();
      reject(new Error(`unexpected response ${res.statusCode}`));
    });
    ws.once('error', reject);
  });
}

interface Refusal {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Tries to open a client that must be refused before any 101; resolves with the plain answer. */
function refused(url: string, options: WebSocket.ClientOptions = {}): Promise<Refusal> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.on('error', () => undefined);
    ws.once('open', () => reject(new Error('the upgrade was accepted')));
    ws.once('unexpected-response', (req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() });
      });
    });
  });
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve) => ws.once('message', (data: RawData, isBinary: boolean) => resolve({ data: toBuffer(data), isBinary })));
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve({ code: 1006, reason: '', ms: 0 });
    ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString(), ms: performance.now() - started }));
  });
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** Live WebSocket sessions of the gateway's `web` listener. */
function sessionsOf(gw: TestGateway): { readonly size: number } {
  return {
    get size() {
      return gw.gateway.websocketSessions('web');
    },
  };
}

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** An RFC 6455 frame; masked when `mask` is set (client to server). */
function wsFrame(opcode: number, payload: Buffer, mask: boolean): Buffer {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, (mask ? 0x80 : 0) | len]) : Buffer.from([0x80 | opcode, (mask ? 0x80 : 0) | 126, len >> 8, len & 0xff]);
  if (!mask) return Buffer.concat([head, payload]);
  const key = randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ key[i & 3]!));
  return Buffer.concat([head, key, body]);
}

/** A raw TCP client that sends a WebSocket handshake (plus `extra` bytes in the same write) and collects everything it gets back. */
async function rawClient(gw: TestGateway, path: string, extra: Buffer = Buffer.alloc(0)) {
  const u = new URL(gw.url());
  const socket = net.connect({ host: u.hostname, port: Number(u.port), allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const key = randomBytes(16).toString('base64');
  const received: Buffer[] = [];
  let ended = false;
  socket.on('data', (c: Buffer) => received.push(c));
  socket.on('end', () => (ended = true));
  socket.write(
    Buffer.concat([
      Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`),
      extra,
    ]),
  );
  return {
    socket,
    key,
    bytes: () => Buffer.concat(received),
    ended: () => ended,
    /** What came after the response head. */
    body: () => {
      const all = Buffer.concat(received);
      const end = all.indexOf('\r\n\r\n');
      return end < 0 ? Buffer.alloc(0) : all.subarray(end + 4);
    },
    head: () => {
      const all = Buffer.concat(received);
      const end = all.indexOf('\r\n\r\n');
      return end < 0 ? '' : all.subarray(0, end).toString('latin1');
    },
  };
}

/** An upstream that completes handshakes by hand and hands over the raw socket. */
async function startRawWsUpstream(onSocket: (socket: net.Socket, head: Buffer) => void, earlyBytes: Buffer = Buffer.alloc(0)) {
  const server = http.createServer((_req, res) => res.end());
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    socket.allowHalfOpen = true;
    socket.on('error', () => undefined);
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}${GUID}`).digest('base64');
    socket.write(
      Buffer.concat([Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`), earlyBytes]),
    );
    onSocket(socket, head);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------

describe('WebSocket proxying', () => {
  const KEY = 'ws-key-of-the-app-0123456789';
  let echo: WsUpstream;
  let deflate: WsUpstream;
  let picky: WsUpstream;
  let plain: TestUpstream;
  let hold: net.Server;
  const held = new Set<net.Socket>();
  let gw: TestGateway;
  let logDir: string;

  before(async () => {
    echo = await startWsUpstream();
    deflate = await startWsUpstream({ perMessageDeflate: { threshold: 0 } });
    picky = await startWsUpstream({
      handleProtocols: (protocols) => (protocols.has('b') ? 'b' : false),
      verifyClient: (info, cb) => (info.req.headers['x-let-me-in'] === 'no' ? cb(false, 401, 'Unauthorized', { 'x-upstream-says': 'no' }) : cb(true)),
    });
    plain = await startUpstream();
    // Accepts TCP connections, reads (and drops) what comes, never answers.
    hold = net.createServer((s) => {
      held.add(s);
      s.resume();
      s.on('error', () => undefined);
      s.on('close', () => held.delete(s));
    });
    await new Promise<void>((resolve) => hold.listen(0, '127.0.0.1', resolve));
    const down = await freePort();
    logDir = mkdtempSync(join(tmpdir(), 'portico-ws-'));
    const route = (name: string, upstream: string, extra: Record<string, unknown> = {}) => ({ name, listener: 'web', match: { pathPrefix: `/${name}` }, upstream, ...extra });
    gw = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: { path: join(logDir, 'access.log') } }],
      upstreams: [
        { name: 'echo', targets: [{ address: echo.address }] },
        { name: 'deflate', targets: [{ address: deflate.address }] },
        { name: 'picky', targets: [{ address: picky.address }] },
        { name: 'plain', targets: [{ address: plain.address }] },
        { name: 'down', targets: [{ address: `127.0.0.1:${down}` }] },
        { name: 'hold', targets: [{ address: `127.0.0.1:${(hold.address() as AddressInfo).port}` }], timeouts: { response: '300ms' } },
        { name: 'parked', targets: [{ address: `127.0.0.1:${(hold.address() as AddressInfo).port}` }], timeouts: { response: '60s' } },
        { name: 'h2', protocol: 'h2c', targets: [{ address: `127.0.0.1:${down}` }] },
        { name: 'fused', targets: [{ address: `127.0.0.1:${down}` }], circuitBreaker: { volumeThreshold: 2, errorPercent: 50, sleepWindow: '1m' } },
      ],
      routes: [
        route('echo', 'echo'),
        route('deflate', 'deflate'),
        route('picky', 'picky'),
        route('plain', 'plain'),
        route('down', 'down'),
        route('hold', 'hold'),
        route('parked', 'parked'),
        route('h2', 'h2'),
        route('fused', 'fused'),
        route('auth', 'echo', { middlewares: [{ 'key-auth': {} }] }),
        route('deny', 'echo', { middlewares: [{ 'ip-restriction': { deny: ['127.0.0.0/8'] } }] }),
        route('limited', 'echo', { middlewares: [{ 'rate-limit': { rate: 0.01, burst: 1 } }] }),
        route('off', 'echo', { websocket: { enabled: false } }),
        route('idle', 'echo', { websocket: { idleTimeout: '300ms' } }),
        route('small', 'echo', { websocket: { maxFrameSize: 1024 } }),
        route('strip', 'echo', { stripPrefix: true }),
        { name: 'static', listener: 'web', match: { pathPrefix: '/static' }, respond: { status: 200, body: 'static answer' } },
      ],
      consumers: [{ id: 'app', secret: 'app-secret-123', keys: [KEY] }],
    });
  });

  after(async () => {
    await gw.close();
    await Promise.all([echo.close(), deflate.close(), picky.close(), plain.close(), new Promise((r) => hold.close(r))]);
    for (const s of held) s.destroy();
    rmSync(logDir, { recursive: true, force: true });
  });

  test('echo: the handshake headers go upstream end to end, with X-Forwarded-* and X-Request-Id', async () => {
    const ws = await open(wsUrl(gw, '/echo/room?x=1'), undefined, {
      origin: 'https://app.example',
      headers: { cookie: 'session=abc', authorization: 'Bearer t0ken', 'x-request-id': 'ws-req-1' },
    });
    ws.send('hello');
    const m = await nextMessage(ws);
    assert.equal(m.data.toString(), 'hello');
    assert.equal(m.isBinary, false);
    const req = echo.handshakes.at(-1)!;
    assert.equal(req.url, '/echo/room?x=1');
    assert.equal(req.headers.origin, 'https://app.example');
    assert.equal(req.headers.cookie, 'session=abc');
    assert.equal(req.headers.authorization, 'Bearer t0ken');
    assert.equal(req.headers['x-request-id'], 'ws-req-1');
    assert.equal(req.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(req.headers['x-forwarded-proto'], 'http');
    assert.equal(req.headers['sec-websocket-version'], '13');
    assert.ok(req.headers['sec-websocket-key']);
    assert.equal(req.headers.upgrade, 'websocket');
    const c = closed(ws);
    ws.close(1000, 'done');
    assert.equal((await c).code, 1000);
  });

  test('the 101 carries the upstream headers and the request id; stripPrefix applies', async () => {
    const r = await rawClient(gw, '/strip/chat');
    await waitFor(() => r.head() !== '', '101 head');
    const head = r.head();
    assert.match(head, /^HTTP\/1\.1 101 /);
    assert.match(head, /\r\nupgrade: websocket/i);
    assert.match(head, /\r\nconnection: upgrade/i);
    const accept = createHash('sha1').update(`${r.key}${GUID}`).digest('base64');
    assert.match(head, new RegExp(`\\r\\nsec-websocket-accept: ${accept.replace(/[+/=]/g, '\\$&')}`, 'i'));
    assert.match(head, /\r\nx-request-id: [0-9a-f-]{36}/i);
    assert.equal(echo.handshakes.at(-1)!.url, '/chat');
    r.socket.destroy();
  });

  test('10,000 messages each way arrive complete and in order', async () => {
    const N = 10_000;
    let upstreamSaw = 0;
    let upstreamInOrder = true;
    const ws = await open(wsUrl(gw, '/echo/many'));
    const peer = echo.peers.at(-1)!;
    peer.on('message', (data) => {
      if (toBuffer(data).toString() !== `m${upstreamSaw}`) upstreamInOrder = false;
      upstreamSaw++;
    });
    const got: string[] = [];
    const all = new Promise<void>((resolve) =>
      ws.on('message', (data) => {
        got.push(toBuffer(data).toString());
        if (got.length === N) resolve();
      }),
    );
    for (let i = 0; i < N; i++) ws.send(`m${i}`);
    await all;
    assert.equal(upstreamSaw, N);
    assert.ok(upstreamInOrder, 'the upstream got them in order');
    for (let i = 0; i < N; i++) assert.equal(got[i], `m${i}`);
    const c = closed(ws);
    ws.close();
    await c;
  });

  test('binary messages, large and small, arrive intact', async () => {
    const ws = await open(wsUrl(gw, '/echo/bin'));
    for (const size of [0, 1, 125, 126, 65_535, 65_536, 3 * 1024 * 1024]) {
      const payload = randomBytes(size);
      ws.send(payload);
      const m = await nextMessage(ws);
      assert.equal(m.isBinary, true);
      assert.ok(m.data.equals(payload), `size ${size}`);
    }
    const c = closed(ws);
    ws.close();
    await c;
  });

  test('subprotocols are negotiated end to end: the client offers a and b, the upstream picks b', async () => {
    const ws = await open(wsUrl(gw, '/picky'), ['a', 'b']);
    assert.equal(ws.protocol, 'b');
    assert.equal(picky.handshakes.at(-1)!.headers['sec-websocket-protocol'], 'a,b', 'as the client sent it');
    const c = closed(ws);
    ws.close();
    await c;
  });

  test('permessage-deflate is negotiated end to end; large compressible messages arrive intact', async () => {
    const ws = await open(wsUrl(gw, '/deflate'), undefined, { perMessageDeflate: true });
    assert.match(ws.extensions, /permessage-deflate/);
    assert.match(String(deflate.handshakes.at(-1)!.headers['sec-websocket-extensions']), /permessage-deflate/);
    const text = 'all work and no play makes jack a dull boy. '.repeat(50_000); // ~2.2 MB
    const before = (ws as unknown as { _socket: net.Socket })._socket.bytesRead;
    ws.send(text);
    const m = await nextMessage(ws);
    assert.equal(m.data.toString(), text);
    const wire = (ws as unknown as { _socket: net.Socket })._socket.bytesRead - before;
    assert.ok(wire < text.length / 10, `compressed on the wire (${wire} bytes for ${text.length})`);
    const c = closed(ws);
    ws.close();
    await c;
  });

  test('no extension when the upstream does not offer it', async () => {
    const ws = await open(wsUrl(gw, '/echo'), undefined, { perMessageDeflate: true });
    assert.equal(ws.extensions, '');
    const c = closed(ws);
    ws.close();
    await c;
  });

  test('key-auth runs on the handshake: 401 before any 101, success with the key (not sent upstream)', async () => {
    const r = await refused(wsUrl(gw, '/auth'));
    assert.equal(r.status, 401);
    assert.match(String(r.headers['www-authenticate']), /^ApiKey/);
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'UNAUTHORIZED');
    const ws = await open(wsUrl(gw, '/auth'), undefined, { headers: { 'x-api-key': KEY } });
    assert.equal(echo.handshakes.at(-1)!.headers['x-api-key'], undefined);
    assert.equal(echo.handshakes.at(-1)!.headers['x-consumer-id'], 'app');
    ws.send('authed');
    assert.equal((await nextMessage(ws)).data.toString(), 'authed');
    const c = closed(ws);
    ws.close();
    await c;
  });

  test('ip-restriction: 403; rate-limit: 429 with Retry-After; websocket.enabled false: 403', async () => {
    assert.equal((await refused(wsUrl(gw, '/deny'))).status, 403);
    const first = await open(wsUrl(gw, '/limited'));
    const limited = await refused(wsUrl(gw, '/limited'));
    assert.equal(limited.status, 429);
    assert.ok(limited.headers['retry-after']);
    const off = await refused(wsUrl(gw, '/off'));
    assert.equal(off.status, 403);
    assert.match(off.body, /disabled/);
    const c = closed(first);
    first.close();
    await c;
  });

  test('no route: 404; a respond: route answers as usual', async () => {
    const r = await refused(wsUrl(gw, '/nowhere'));
    assert.equal(r.status, 404);
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'ROUTE_NOT_FOUND');
    const s = await refused(wsUrl(gw, '/static'));
    assert.equal(s.status, 200);
    assert.equal(s.body, 'static answer');
  });

  test('upstream down: 502 before any 101; upstream that never answers: 504', async () => {
    const down = await refused(wsUrl(gw, '/down'));
    assert.equal(down.status, 502);
    assert.equal((JSON.parse(down.body) as { code: string }).code, 'UPSTREAM_CONNECT_REFUSED');
    const started = performance.now();
    const slow = await refused(wsUrl(gw, '/hold'));
    assert.equal(slow.status, 504);
    assert.ok(performance.now() - started < 5000);
    await waitFor(() => held.size === 0, 'the gateway to drop the unanswered upstream connection');
  });

  test('the circuit breaker counts failed handshakes and, once open, answers 503 before any dial', async () => {
    assert.equal((await refused(wsUrl(gw, '/fused'))).status, 502);
    assert.equal((await refused(wsUrl(gw, '/fused'))).status, 502);
    const r = await refused(wsUrl(gw, '/fused'));
    assert.equal(r.status, 503);
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'CIRCUIT_OPEN');
  });

  test('an HTTP/2 upstream is refused with 502 (RFC 8441 is not supported)', async () => {
    const r = await refused(wsUrl(gw, '/h2'));
    assert.equal(r.status, 502);
    assert.match(r.body, /RFC 8441/);
  });

  test('a non-101 upstream answer goes to the client as a plain response', async () => {
    const r = await refused(wsUrl(gw, '/picky'), { headers: { 'x-let-me-in': 'no' } });
    assert.equal(r.status, 401);
    assert.equal(r.headers['x-upstream-says'], 'no');
    assert.ok(r.headers['x-request-id']);
    const p = await refused(wsUrl(gw, '/plain'));
    assert.equal(p.status, 200);
    assert.equal((JSON.parse(p.body) as { method: string }).method, 'GET');
  });

  test('malformed handshakes: 400', async () => {
    const u = new URL(gw.url());
    const ask = (head: string) =>
      new Promise<string>((resolve, reject) => {
        const s = net.connect({ host: u.hostname, port: Number(u.port) }, () => s.write(head));
        const chunks: Buffer[] = [];
        s.on('data', (c: Buffer) => chunks.push(c));
        s.on('close', () => resolve(Buffer.concat(chunks).toString()));
        s.on('error', reject);
      });
    const noKey = await ask('GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n');
    assert.match(noKey, /^HTTP\/1\.1 400 /);
    assert.match(noKey, /Sec-WebSocket-Key/);
    const post = await ask('POST /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 0\r\n\r\n');
    assert.match(post, /^HTTP\/1\.1 400 /);
  });

  test('another upgrade token (h2c) is ignored: the request is served as plain HTTP/1.1', async () => {
    const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const u = new URL(gw.url());
      const req = http.request({
        host: u.hostname,
        port: u.port,
        path: '/plain/x',
        agent: false,
        headers: { connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAARAAAAAAAIAAAAA' },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body) as { url: string; headers: Record<string, string> };
    assert.equal(seen.url, '/plain/x');
    assert.equal(seen.headers.upgrade, undefined);
    assert.equal(seen.headers['http2-settings'], undefined);
  });

  test('backpressure: a client that stops reading stops the upstream (bounded buffering), then everything arrives', async () => {
    const ws = await open(wsUrl(gw, '/echo/slow'));
    const peer = echo.peers.at(-1)!;
    ws.pause();
    const chunk = Buffer.alloc(1024 * 1024, 7);
    const total = 64;
    for (let i = 0; i < total; i++) peer.send(chunk);
    // The gateway keeps at most its sockets' buffers: most of the 64 MiB must still be waiting in the upstream.
    await waitFor(() => peer.bufferedAmount > 24 * 1024 * 1024 && peer.bufferedAmount, 'the upstream to be held back');
    let got = 0;
    const done = new Promise<void>((resolve) =>
      ws.on('message', (data) => {
        got += toBuffer(data).length;
        if (got === total * chunk.length) resolve();
      }),
    );
    ws.resume();
    await done;
    const c = closed(ws);
    ws.close();
    await c;
  });

  test('the upstream killed mid-session: the client gets a 1001 close promptly', async () => {
    const ws = await open(wsUrl(gw, '/echo/kill'));
    ws.send('ping');
    await nextMessage(ws);
    const c = closed(ws);
    echo.peers.at(-1)!.terminate();
    const r = await c;
    assert.equal(r.code, 1001);
    assert.ok(r.ms < 2000, `closed after ${r.ms} ms`);
  });

  test('the upstream connection reset mid-session: the client gets a 1011 close promptly', async () => {
    const ws = await open(wsUrl(gw, '/echo/reset'));
    ws.send('ping');
    await nextMessage(ws);
    const c = closed(ws);
    (echo.peers.at(-1)! as unknown as { _socket: net.Socket })._socket.resetAndDestroy();
    const r = await c;
    assert.equal(r.code, 1011);
    assert.ok(r.ms < 2000, `closed after ${r.ms} ms`);
  });

  test('the client going away mid-session closes the upstream side', async () => {
    const ws = await open(wsUrl(gw, '/echo/leave'));
    const peer = echo.peers.at(-1)!;
    const upstreamClosed = closed(peer);
    ws.terminate();
    const r = await upstreamClosed;
    assert.equal(r.code, 1006, 'no close frame: the client vanished');
    assert.ok(r.ms < 2000);
  });

  test('idle timeout: traffic keeps the session open; silence closes it with 1001 both ways', async () => {
    const ws = await open(wsUrl(gw, '/idle'));
    const peer = echo.peers.at(-1)!;
    const upstreamSide = closed(peer);
    const clientSide = closed(ws);
    // 8 messages 100 ms apart: longer than the 300 ms timeout, never idle that long.
    let sent = 0;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (ws.readyState !== WebSocket.OPEN || ++sent > 8) {
          clearInterval(timer);
          resolve();
          return;
        }
        ws.send('tick');
      }, 100);
    });
    assert.equal(ws.readyState, WebSocket.OPEN, 'still open while there is traffic');
    const started = performance.now();
    const r = await clientSide;
    const quiet = performance.now() - started;
    assert.equal(r.code, 1001);
    assert.ok(quiet < 3000, `closed ${quiet} ms after the last message`);
    assert.equal((await upstreamSide).code, 1001);
  });

  test('a frame over maxFrameSize: the client is closed with 1009, the upstream with 1001, the frame never reaches it', async () => {
    const ws = await open(wsUrl(gw, '/small'));
    const peer = echo.peers.at(-1)!;
    let upstreamGot = 0;
    peer.on('message', () => upstreamGot++);
    ws.send(Buffer.alloc(1024, 1));
    await nextMessage(ws); // at the limit: fine
    const upstreamSide = closed(peer);
    const clientSide = closed(ws);
    ws.send(Buffer.alloc(2000, 2));
    const r = await clientSide;
    assert.equal(r.code, 1009);
    assert.ok(r.ms < 2000);
    assert.equal((await upstreamSide).code, 1001);
    assert.equal(upstreamGot, 1);
  });

  test('half-close: the client ends its side, the upstream still answers; early bytes on both sides are kept', async () => {
    const fromClient: Buffer[] = [];
    let upstreamSawEnd = false;
    const early = wsFrame(0x1, Buffer.from('early from upstream'), false);
    const raw = await startRawWsUpstream((socket, head) => {
      if (head.length > 0) fromClient.push(head);
      socket.on('data', (c: Buffer) => fromClient.push(c));
      socket.on('end', () => {
        upstreamSawEnd = true;
        // After the client's FIN: still allowed to talk, then close properly.
        socket.write(wsFrame(0x1, Buffer.from('after your FIN'), false));
        socket.end(wsFrame(0x8, Buffer.from([0x03, 0xe8]), false));
      });
    }, early);
    const gw2 = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [{ name: 'raw', targets: [{ address: raw.address }] }],
      routes: [{ name: 'raw', listener: 'web', upstream: 'raw' }],
    });
    try {
      const hello = wsFrame(0x1, Buffer.from('hello with the handshake'), true);
      const client = await rawClient(gw2, '/raw', hello);
      // A second frame in its own write, most likely before the 101 is back: it waits in the socket, in order.
      const hello2 = wsFrame(0x1, Buffer.from('right after'), true);
      client.socket.write(hello2);
      await waitFor(() => client.body().length >= early.length, 'the upstream early frame');
      assert.match(client.head(), /^HTTP\/1\.1 101 /);
      assert.ok(client.body().subarray(0, early.length).equals(early));
      await waitFor(() => Buffer.concat(fromClient).length >= hello.length + hello2.length, 'the client early frames upstream');
      assert.ok(Buffer.concat(fromClient).equals(Buffer.concat([hello, hello2])));
      const second = wsFrame(0x2, Buffer.from([1, 2, 3]), true);
      client.socket.end(second);
      await waitFor(() => client.ended(), 'the upstream to end its side');
      assert.ok(upstreamSawEnd);
      assert.ok(Buffer.concat(fromClient).equals(Buffer.concat([hello, hello2, second])));
      const expected = Buffer.concat([early, wsFrame(0x1, Buffer.from('after your FIN'), false), wsFrame(0x8, Buffer.from([0x03, 0xe8]), false)]);
      assert.ok(client.body().equals(expected), 'the frames after the FIN, and no close frame of the gateway (the upstream sent one)');
      await waitFor(() => raw.sockets.size === 0 && sessionsOf(gw2).size === 0, 'both sides closed');
      client.socket.destroy();
    } finally {
      await gw2.close();
      await raw.close();
    }
  });

  test('a client that leaves during the dial (FIN) aborts the upstream connection at once', async () => {
    const before = new Set(held);
    const u = new URL(gw.url());
    const s = net.connect({ host: u.hostname, port: Number(u.port) });
    s.on('error', () => undefined);
    s.resume();
    // The upstream never answers and its response timeout is 60 s: only the client leaving ends the dial.
    s.write('GET /parked HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    const dialed = await waitFor(() => [...held].find((c) => !before.has(c)), 'the dial to reach the upstream');
    s.end();
    // (undici's pool may open a fresh idle connection after an abort; the dialed one must close.)
    await waitFor(() => dialed.destroyed, 'the dialed upstream connection to be closed', 3000);
    await waitFor(() => s.destroyed || s.readableEnded, 'the client connection to be closed', 3000);
  });

  test('a session is logged with status 101, its bytes and the route', async () => {
    const ws = await open(wsUrl(gw, '/echo/logged'), undefined, { headers: { 'x-request-id': 'ws-logged-1' } });
    ws.send('x'.repeat(1000));
    await nextMessage(ws);
    const c = closed(ws);
    ws.close();
    await c;
    const line = await waitFor(() => {
      const text = readFileSync(join(logDir, 'access.log'), 'utf8');
      return text.split('\n').find((l) => l.includes('"ws-logged-1"'));
    }, 'the access log line', 5000, 100);
    const entry = JSON.parse(line) as { status: number; route: string; bytesSent: number; bytesReceived: number; upstream: string };
    assert.equal(entry.status, 101);
    assert.equal(entry.route, 'echo');
    assert.equal(entry.upstream, 'echo');
    assert.ok(entry.bytesSent >= 1000, `bytesSent ${entry.bytesSent}`);
    assert.ok(entry.bytesReceived >= 1000, `bytesReceived ${entry.bytesReceived}`);
    const view = await gw.gateway.stats.view('route', 'echo');
    assert.ok(view !== undefined && view.statusClasses[1]! >= 1);
  });

  test('afterwards: no session left in the gateway, no socket left on the upstreams', async () => {
    await waitFor(() => sessionsOf(gw).size === 0, 'no live session');
    await waitFor(() => echo.sockets.size === 0, 'no open socket on the echo upstream');
    await waitFor(() => deflate.sockets.size === 0 && picky.sockets.size === 0, 'no open socket on the other upstreams');
    // Every client connection of every test (sessions, refusals, malformed handshakes) is closed on the gateway side too.
    await waitFor(() => gw.gateway.connections('web') === 0, 'no client connection left open in the gateway');
  });
});

describe('WebSocket sessions and gateway stop', () => {
  test('stopping the gateway closes every session with 1001 Going Away', async () => {
    const up = await startWsUpstream();
    const gw = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [{ name: 'up', targets: [{ address: up.address }] }],
      routes: [{ name: 'r', listener: 'web', upstream: 'up' }],
    });
    try {
      const clients = await Promise.all([open(wsUrl(gw, '/a')), open(wsUrl(gw, '/b')), open(wsUrl(gw, '/c'))]);
      const sessions = sessionsOf(gw);
      assert.equal(sessions.size, 3);
      const upstreamSides = up.peers.map((p) => closed(p));
      const clientSides = clients.map((c) => closed(c));
      const stopping = gw.close();
      for (const r of await Promise.all(clientSides)) {
        assert.equal(r.code, 1001);
        assert.ok(r.ms < 2000);
      }
      for (const r of await Promise.all(upstreamSides)) assert.equal(r.code, 1001);
      assert.equal(sessions.size, 0);
      await stopping;
      await waitFor(() => up.sockets.size === 0, 'no socket left on the upstream');
    } finally {
      await gw.close().catch(() => undefined);
      await up.close();
    }
  });
});

describe('wss: a TLS listener and a TLS upstream', () => {
  let pki: Pki;
  let upstream: https.Server;
  let wss: WebSocketServer;
  const upstreamSockets = new Set<net.Socket>();
  const handshakes: http.IncomingMessage[] = [];
  const peers: WebSocket[] = [];
  let gw: TestGateway;
  let url: string;

  before(async () => {
    pki = await createPki();
    const [gatewayCert, upstreamCert] = await Promise.all([
      pki.issue('gateway.test', { sans: ['gateway.test', 'IP:127.0.0.1'] }),
      pki.issue('upstream.internal', { sans: ['upstream.internal', 'IP:127.0.0.1'] }),
    ]);
    upstream = https.createServer({ cert: upstreamCert.certPem, key: upstreamCert.keyPem });
    upstream.on('secureConnection', (s: net.Socket) => {
      upstreamSockets.add(s);
      s.on('close', () => upstreamSockets.delete(s));
    });
    wss = new WebSocketServer({ server: upstream, perMessageDeflate: true });
    wss.on('connection', (ws, req) => {
      handshakes.push(req);
      peers.push(ws);
      ws.on('error', () => undefined);
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    gw = await startGateway({
      listeners: [{ name: 'web', protocol: 'https', listen: '127.0.0.1:0', accessLog: false, tls: { certificates: [{ cert: gatewayCert.cert, key: gatewayCert.key, default: true }] } }],
      upstreams: [
        { name: 'up', tls: { ca: pki.caCert, serverName: 'upstream.internal' }, targets: [{ address: `127.0.0.1:${(upstream.address() as AddressInfo).port}` }] },
      ],
      routes: [{ name: 'r', listener: 'web', upstream: 'up', websocket: { maxFrameSize: 100_000 } }],
    });
    const a = gw.gateway.listenerAddress('web')!;
    url = `wss://127.0.0.1:${a.port}`;
  });

  after(async () => {
    await gw.close();
    for (const ws of wss.clients) ws.terminate();
    wss.close();
    await new Promise<void>((r) => {
      upstream.close(() => r());
      upstream.closeAllConnections();
    });
    await pki.cleanup();
  });

  test('echo with permessage-deflate through TLS on both sides; X-Forwarded-Proto is https', async () => {
    const ws = await open(`${url}/secure`, undefined, { ca: pki.caPem, perMessageDeflate: true });
    assert.match(ws.extensions, /permessage-deflate/);
    assert.equal(handshakes.at(-1)!.headers['x-forwarded-proto'], 'https');
    assert.equal((handshakes.at(-1)!.socket as import('node:tls').TLSSocket & { servername?: string }).servername, 'upstream.internal');
    for (const size of [10, 50_000]) {
      const payload = randomBytes(size);
      ws.send(payload);
      assert.ok((await nextMessage(ws)).data.equals(payload));
    }
    const c = closed(ws);
    ws.close(1000);
    assert.equal((await c).code, 1000);
  });

  test('an oversized frame and an upstream that goes away are closed over TLS too', async () => {
    const ws = await open(`${url}/big`, undefined, { ca: pki.caPem, perMessageDeflate: false });
    const c = closed(ws);
    ws.send(randomBytes(200_000));
    assert.equal((await c).code, 1009);

    const ws2 = await open(`${url}/gone`, undefined, { ca: pki.caPem });
    ws2.send('x');
    await nextMessage(ws2);
    const c2 = closed(ws2);
    peers.at(-1)!.terminate();
    const r = await c2;
    assert.equal(r.code, 1001);
    assert.ok(r.ms < 2000);
    await waitFor(() => sessionsOf(gw).size === 0 && upstreamSockets.size === 0, 'every session and upstream socket closed');
  });
});
