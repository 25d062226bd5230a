import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { WebSocket, WebSocketServer } from 'ws';
import { formatHostPort } from '../../src/net/address.js';
import { sealV1 } from '../../src/l4/sealed/codec.js';
import { connectSealed } from '../../src/l4/sealed/client.js';
import type { ConnectionInfo } from '../../src/runtime/connection-registry.js';
import { createPki, type Pki } from '../helpers/certs.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { connect, echo, startTcpServer, type TcpServer } from '../helpers/tcp.js';
import { waitFor } from '../helpers/wait.js';

const API_KEY = 'connections-test-admin-key';
const SECRET = 'connections-test-sealed-secret';

/** An HTTP upstream: `/hold` answers only when released; anything else at once; WebSocket sessions echo and record their close code. */
async function startHttpUpstream() {
  const held: http.ServerResponse[] = [];
  const closeCodes: number[] = [];
  const server = http.createServer((req, res) => {
    if (req.url === '/hold') {
      held.push(res);
      return;
    }
    res.end('fast');
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => {
    ws.on('message', (m) => ws.send(m));
    ws.on('close', (code) => closeCodes.push(code));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    held,
    closeCodes,
    release() {
      for (const res of held.splice(0)) if (!res.destroyed) res.end('released');
    },
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('connection registry: GET /connections and DELETE /connections/:id, every kind', () => {
  let pki: Pki;
  let upstream: Awaited<ReturnType<typeof startHttpUpstream>>;
  let backend: TcpServer;
  let udpEcho: dgram.Socket;
  let gw: TestGateway;
  /** Descriptors open when a test starts (the gateway running); each close test ends back there (pooled upstream connections aside). */
  let fdsAtStart = 0;

  const admin = () => `http://${formatHostPort(gw.gateway.adminAddress()!)}`;
  const portOf = (name: string) => gw.gateway.listenerAddress(name)!.port;

  /** One admin request on its own connection (no keep-alive: the admin API's request timeout counts per connection). */
  function call(method: string, path: string, key: string | null = API_KEY): Promise<{ status: number; body: any }> {
    return new Promise((resolve, reject) => {
      const req = http.request(admin() + path, { method, agent: false, headers: key === null ? {} : { authorization: `Bearer ${key}` } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, body: text === '' ? undefined : JSON.parse(text) }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  async function list(query = ''): Promise<ConnectionInfo[]> {
    const r = await call('GET', `/connections${query}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.connections as ConnectionInfo[];
  }

  /** The one entry of `kind` whose peer is `127.0.0.1:<localPort>`, once listed. */
  function entryFor(kind: string, localPort: number, listener?: string): Promise<ConnectionInfo> {
    const q = `?kind=${kind}${listener !== undefined ? `&listener=${listener}` : ''}`;
    return waitFor(async () => (await list(q)).find((c) => c.peer === `127.0.0.1:${localPort}`), `a ${kind} entry for port ${localPort}`);
  }

  async function remove(id: string): Promise<void> {
    const r = await call('DELETE', `/connections/${id}`);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.deepEqual(r.body, { id, status: 'closing' });
  }

  function ended(socket: net.Socket): Promise<'end' | 'close'> {
    return new Promise((resolve) => {
      socket.once('end', () => resolve('end'));
      socket.once('close', () => resolve('close'));
      socket.on('error', () => undefined);
      socket.resume();
    });
  }

  before(async () => {
    pki = await createPki();
    const cert = await pki.issue('tls.test');
    upstream = await startHttpUpstream();
    backend = await startTcpServer(echo);
    udpEcho = dgram.createSocket('udp4');
    udpEcho.on('message', (m, r) => udpEcho.send(m, r.port, r.address));
    await new Promise<void>((r) => udpEcho.bind(0, '127.0.0.1', r));
    gw = await startGateway({
      admin: { listen: '127.0.0.1:0', apiKey: API_KEY },
      listeners: [
        { name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false },
        { name: 'tcp', protocol: 'tcp', listen: '127.0.0.1:0', accessLog: false, upstream: 'echo' },
        { name: 'tls', protocol: 'tls', listen: '127.0.0.1:0', accessLog: false, tls: { certificates: [{ cert: cert.cert, key: cert.key }] }, upstream: 'echo' },
        { name: 'sealed', protocol: 'sealed', listen: '127.0.0.1:0', accessLog: false, secret: SECRET, allow: [{ cidr: '127.0.0.1/32' }] },
        { name: 'fp', protocol: 'forward-proxy', listen: '127.0.0.1:0', accessLog: false, allow: [{ cidr: '127.0.0.1/32' }] },
        { name: 'dns', protocol: 'udp', listen: '127.0.0.1:0', accessLog: false, upstream: 'dns' },
      ],
      upstreams: [
        { name: 'up', targets: [{ address: upstream.address }] },
        { name: 'echo', targets: [{ address: backend.address }] },
        { name: 'dns', targets: [{ address: `127.0.0.1:${udpEcho.address().port}` }] },
      ],
      routes: [{ name: 'r', listener: 'web', upstream: 'up' }],
    });
  });

  beforeEach(() => {
    fdsAtStart = openFds();
  });

  afterEach(async () => {
    await fdsSettle(fdsAtStart, 4);
  });

  after(async () => {
    await gw?.close();
    // The last sockets were destroyed by the stop; their 'close' events come a tick later.
    await waitFor(() => gw.gateway.connectionRegistry.size === 0 || undefined, 'the registry empty after a graceful stop', 2000);
    await upstream?.close();
    await backend?.close();
    udpEcho?.close();
    await pki?.cleanup();
  });

  test('the admin API checks the key, the filters and the ids', async () => {
    assert.equal((await call('GET', '/connections', null)).status, 401);
    assert.equal((await call('DELETE', '/connections/0-1', null)).status, 401);
    const unknownKind = await call('GET', '/connections?kind=quic');
    assert.equal(unknownKind.status, 400);
    assert.match(unknownKind.body.error, /unknown connection kind "quic" \(one of: http1, h2-session, h2-stream, websocket, tcp, tls, sealed, forward-proxy, udp, tunnel-agent, tunnel-service, tunnel-port, tunnel-stream, relay-pair\)/);
    assert.equal((await call('GET', '/connections?kind=')).status, 400);
    assert.equal((await call('GET', '/connections?kind=tcp&kind=udp')).status, 400);
    assert.match((await call('GET', '/connections?peer=1')).body.error, /unknown query parameter "peer"/);
    for (const id of ['0-zzzz', 'nope', '1-1', '0-', '%ZZ', '0-1%00']) {
      const r = await call('DELETE', `/connections/${id}`);
      assert.equal(r.status, 404, id);
      assert.equal(r.body.code, 'CONNECTION_NOT_FOUND');
    }
    assert.equal((await call('POST', '/connections')).status, 405);
    assert.equal((await call('GET', '/connections/0-1')).status, 405);
    assert.deepEqual(await list('?listener=nosuch'), []);
  });

  test('websocket: listed with its route, upstream and target; DELETE sends 1001 to the client and the upstream', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${portOf('web')}/chat`);
    await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
    ws.send('hello');
    await new Promise((r) => ws.once('message', r));
    const localPort = (ws as unknown as { _socket: net.Socket })._socket.localPort!;
    const entry = await entryFor('websocket', localPort, 'web');
    assert.equal(entry.route, 'r');
    assert.equal(entry.upstream, 'up');
    assert.equal(entry.target, upstream.address);
    assert.ok(entry.bytesIn! > 0 && entry.bytesOut! > 0, JSON.stringify(entry));
    assert.ok(!Number.isNaN(Date.parse(entry.startedAt)) && entry.ageMs >= 0);
    // The HTTP/1.1 connection the session came from is listed as the session, not also as http1.
    assert.equal((await list('?kind=http1')).filter((c) => c.peer === entry.peer).length, 0);
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    await remove(entry.id);
    assert.equal(await closed, 1001);
    await waitFor(() => upstream.closeCodes.includes(1001) || undefined, 'the upstream got 1001');
    await waitFor(async () => ((await list('?kind=websocket')).length === 0 ? true : undefined), 'the session unlisted');
    assert.equal((await call('DELETE', `/connections/${entry.id}`)).status, 404);
  });

  test('h2-stream: DELETE resets one stream with CANCEL and the session lives on; h2-session: DELETE sends GOAWAY', async () => {
    const session = http2.connect(`http://127.0.0.1:${portOf('web')}`);
    session.on('error', () => undefined);
    await new Promise((r) => session.once('connect', r));
    const localPort = (session.socket as net.Socket).localPort!;
    const held = session.request({ ':path': '/hold' });
    held.on('error', () => undefined);
    held.resume();
    const reset = new Promise<number>((r) => held.once('close', () => r(held.rstCode)));
    const sessionEntry = await entryFor('h2-session', localPort);
    const stream = await entryFor('h2-stream', localPort);
    assert.equal(stream.listener, 'web');
    assert.equal(stream.bytesIn, null);
    await remove(stream.id);
    assert.equal(await reset, http2.constants.NGHTTP2_CANCEL);
    // The session survives: another request on it is answered.
    const again = session.request({ ':path': '/fast' });
    let body = '';
    again.setEncoding('utf8').on('data', (c) => (body += c));
    await new Promise((r) => again.once('end', r));
    assert.equal(body, 'fast');
    await waitFor(async () => ((await list('?kind=h2-stream')).length === 0 ? true : undefined), 'streams unlisted');

    const goaway = new Promise<number>((r) => session.once('goaway', (code) => r(code)));
    await remove(sessionEntry.id);
    assert.equal(await goaway, http2.constants.NGHTTP2_NO_ERROR);
    await new Promise((r) => (session.closed ? r(undefined) : session.once('close', r)));
    await waitFor(async () => ((await list('?kind=h2-session')).length === 0 ? true : undefined), 'session unlisted');
    upstream.release();
  });

  test('http1: a request in flight gets its response with Connection: close, then the close; an idle connection is closed at once', async () => {
    const busy = await connect(portOf('web'));
    let got = '';
    busy.setEncoding('latin1').on('data', (c) => (got += c));
    const busyEnd = ended(busy);
    busy.write('GET /hold HTTP/1.1\r\nhost: a\r\n\r\n');
    await waitFor(() => upstream.held.length > 0 || undefined, 'the request reached the upstream');
    const entry = await entryFor('http1', busy.localPort!, 'web');
    await remove(entry.id);
    upstream.release();
    assert.equal(await busyEnd, 'end');
    assert.match(got, /^HTTP\/1\.1 200 /);
    assert.match(got, /\r\nconnection: close\r\n/i);
    assert.match(got, /released$/);

    const idle = await connect(portOf('web'));
    let idleGot = '';
    idle.setEncoding('latin1').on('data', (c) => (idleGot += c));
    idle.write('GET /fast HTTP/1.1\r\nhost: a\r\n\r\n');
    await waitFor(() => idleGot.endsWith('fast') || undefined, 'a keep-alive response');
    assert.match(idleGot, /connection: keep-alive/i);
    const idleEntry = await entryFor('http1', idle.localPort!);
    const idleEnd = ended(idle);
    await remove(idleEntry.id);
    assert.equal(await idleEnd, 'end');
    idle.destroy();
    busy.destroy();
    await waitFor(async () => ((await list('?kind=http1')).length === 0 ? true : undefined), 'http1 unlisted');
  });

  /** Echoes one message through `socket`, DELETEs its `kind` entry and expects a FIN. */
  async function closesWithFin(kind: string, listener: string, socket: net.Socket, localPort: number): Promise<void> {
    let got = '';
    socket.setEncoding('latin1').on('data', (c) => (got += c));
    socket.write('ping');
    await waitFor(() => got.endsWith('ping') || undefined, `an echo through ${kind}`);
    const entry = await entryFor(kind, localPort, listener);
    assert.equal(entry.listener, listener);
    assert.equal(entry.target, backend.address);
    if (kind === 'tcp' || kind === 'tls') assert.equal(entry.upstream, 'echo');
    assert.ok(entry.bytesIn! > 0 && entry.bytesOut! > 0, JSON.stringify(entry));
    const fin = ended(socket);
    await remove(entry.id);
    assert.equal(await fin, 'end');
    // A second DELETE while it finishes closing starts nothing new (202), or the entry is already gone (404).
    assert.ok([202, 404].includes((await call('DELETE', `/connections/${entry.id}`)).status));
    socket.end();
    await waitFor(async () => ((await list(`?kind=${kind}`)).length === 0 ? true : undefined), `${kind} unlisted`);
    socket.destroy();
  }

  test('tcp: DELETE sends FIN', async () => {
    const s = await connect(portOf('tcp'));
    await closesWithFin('tcp', 'tcp', s, s.localPort!);
  });

  test('tls (terminated): DELETE sends close_notify and FIN', async () => {
    const s = tls.connect({ port: portOf('tls'), host: '127.0.0.1', servername: 'tls.test', ca: pki.caPem });
    await new Promise((r, j) => (s.once('secureConnect', r), s.once('error', j)));
    await closesWithFin('tls', 'tls', s, s.localPort!);
  });

  test('sealed: DELETE sends FIN', async () => {
    const s = await connectSealed(gw.gateway.listenerAddress('sealed')!, sealV1(backend.address, { secret: SECRET, kdf: 'md5' }));
    await closesWithFin('sealed', 'sealed', s, s.localPort!);
  });

  test('forward-proxy (CONNECT tunnel): DELETE sends FIN', async () => {
    const s = await connect(portOf('fp'));
    let head = '';
    const onHead = (c: Buffer) => (head += c.toString('latin1'));
    s.on('data', onHead);
    s.write(`CONNECT ${backend.address} HTTP/1.1\r\nhost: ${backend.address}\r\n\r\n`);
    await waitFor(() => head.includes('\r\n\r\n') || undefined, 'the CONNECT answer');
    assert.match(head, /^HTTP\/1\.1 200 /);
    s.off('data', onHead);
    await closesWithFin('forward-proxy', 'fp', s, s.localPort!);
  });

  test('udp: DELETE drops the session; the next datagram opens a new one', async () => {
    const client = dgram.createSocket('udp4');
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
    const replies: string[] = [];
    client.on('message', (m) => replies.push(m.toString()));
    const sendOne = async (text: string) => {
      client.send(text, portOf('dns'), '127.0.0.1');
      await waitFor(() => replies.includes(text) || undefined, `the reply to ${text}`);
    };
    await sendOne('one');
    const first = await entryFor('udp', client.address().port, 'dns');
    assert.equal(first.upstream, 'dns');
    assert.equal(first.bytesIn, 3);
    assert.equal(first.bytesOut, 3);
    await remove(first.id);
    await waitFor(async () => ((await list('?kind=udp')).length === 0 ? true : undefined), 'the session unlisted');
    await sendOne('two');
    const second = await entryFor('udp', client.address().port, 'dns');
    assert.notEqual(second.id, first.id);
    assert.equal(second.bytesIn, 3);
    await remove(second.id);
    await waitFor(async () => ((await list('?kind=udp')).length === 0 ? true : undefined), 'the new session unlisted');
    client.close();
  });

  test('every kind listed at once, filters by kind and listener; then the registry is empty and the descriptors back', async () => {
    const tcp = await connect(portOf('tcp'));
    const h1 = await connect(portOf('web'));
    // A plain connection is listed once its first bytes show it is HTTP/1.1 (not the HTTP/2 preface).
    h1.write('GET /fast HTTP/1.1\r\nhost: a\r\n\r\n');
    h1.resume();
    const h2 = http2.connect(`http://127.0.0.1:${portOf('web')}`);
    h2.on('error', () => undefined);
    await new Promise((r) => h2.once('connect', r));
    const all = await waitFor(async () => {
      const l = await list();
      return l.some((c) => c.kind === 'tcp') && l.some((c) => c.kind === 'http1') && l.some((c) => c.kind === 'h2-session') ? l : undefined;
    }, 'three kinds listed');
    assert.equal(new Set(all.map((c) => c.id)).size, all.length, 'ids are unique');
    for (const c of all) assert.match(c.id, /^0-[0-9a-z]+$/);
    assert.deepEqual(new Set((await list('?listener=web')).map((c) => c.kind)), new Set(['http1', 'h2-session']));
    assert.deepEqual((await list('?kind=tcp&listener=web')), []);
    assert.equal((await list('?kind=tcp&listener=tcp')).length, 1);
    tcp.destroy();
    h1.destroy();
    h2.destroy();
    await waitFor(() => (gw.gateway.connectionRegistry.size === 0 ? true : undefined), 'the registry empty after the clients left');
  });
});

describe('connection registry: removal on every exit path', () => {
  test('a client reset, an upstream that refuses, and a graceful stop with live connections all leave the registry empty', async () => {
    const backend = await startTcpServer(echo);
    const dead = await startTcpServer((s) => s.destroy());
    const before = openFds();
    const gw = await startGateway({
      listeners: [
        { name: 'tcp', protocol: 'tcp', listen: '127.0.0.1:0', accessLog: false, upstream: 'echo' },
        { name: 'reset', protocol: 'tcp', listen: '127.0.0.1:0', accessLog: false, upstream: 'dead' },
        { name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false },
      ],
      upstreams: [
        { name: 'echo', targets: [{ address: backend.address }] },
        { name: 'dead', targets: [{ address: dead.address }] },
      ],
      routes: [{ name: 'r', listener: 'web', respond: { status: 200, body: 'ok' } }],
    });
    const registry = gw.gateway.connectionRegistry;
    const port = (n: string) => gw.gateway.listenerAddress(n)!.port;

    // A client that resets.
    const a = await connect(port('tcp'));
    await waitFor(() => registry.count({ kind: 'tcp' }) === 1 || undefined, 'listed');
    a.resetAndDestroy();
    await waitFor(() => registry.size === 0 || undefined, 'unlisted after a reset');

    // An upstream that drops the connection at once.
    const b = await connect(port('reset'));
    b.on('error', () => undefined);
    b.resume();
    await new Promise((r) => (b.once('end', r), b.once('close', r)));
    b.destroy();
    await waitFor(() => registry.size === 0 || undefined, 'unlisted after the upstream failed');

    // Malformed HTTP: answered 400 and closed.
    const c = await connect(port('web'));
    c.on('error', () => undefined);
    c.resume();
    c.write('GARBAGE GARBAGE GARBAGE GARBAGE\r\n\r\n');
    await new Promise((r) => (c.once('end', r), c.once('close', r)));
    c.destroy();
    await waitFor(() => registry.size === 0 || undefined, 'unlisted after a parse error');

    // A graceful stop with live connections of three kinds.
    const live = [await connect(port('tcp')), await connect(port('web'))];
    // Half a request head: an HTTP/1.1 connection (listed once its first bytes are not the HTTP/2 preface).
    live[1]!.write('GET /slow HTTP/1.1\r\nhost: a\r\n');
    const h2 = http2.connect(`http://127.0.0.1:${port('web')}`);
    h2.on('error', () => undefined);
    await new Promise((r) => h2.once('connect', r));
    await waitFor(() => registry.size === 3 || undefined, 'three listed');
    for (const s of live) s.on('error', () => undefined);
    await gw.close();
    await waitFor(() => registry.size === 0 || undefined, 'the registry empty after the stop', 2000);
    for (const s of live) s.destroy();
    h2.destroy();
    await backend.close();
    await dead.close();
    await fdsSettle(before, 4);
  });
});
