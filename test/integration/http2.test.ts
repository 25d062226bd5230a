import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, simpleConfig, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { createPki, type Pki } from '../helpers/certs.js';
import { send } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';

interface H2Reply {
  status: number;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders | undefined;
  body: string;
}

/** One request on an HTTP/2 session; resolves with the whole response. */
function h2request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: string | Buffer): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    let status = 0;
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      status = Number(h[':status']);
      head = h;
    });
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve({ status, headers: head, trailers, body: Buffer.concat(chunks).toString() }));
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  });
}

function closeSession(session: http2.ClientHttp2Session): Promise<void> {
  return new Promise((resolve) => (session.closed ? resolve() : session.close(() => resolve())));
}

describe('HTTP/2 downstream', () => {
  let upstream: TestUpstream;
  let pki: Pki;
  let gw: TestGateway;
  let tlsGw: TestGateway;
  let caPem: string;

  before(async () => {
    upstream = await startUpstream((req, res, body) => {
      if (req.url === '/trailers') {
        // A chunked HTTP/1.1 response with trailers (RFC 9112 §7.1.2).
        res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
        res.write('part');
        res.addTrailers({ 'x-checksum': 'abc123' });
        res.end();
        return;
      }
      const text = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders, body, httpVersion: req.httpVersion });
      res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'], 'x-upstream': 'yes' });
      res.end(text);
    });
    pki = await createPki();
    caPem = pki.caPem;
    const api = await pki.issue('api.example.com');
    gw = await startGateway(simpleConfig([upstream.address]));
    tlsGw = await startGateway({
      ...simpleConfig([upstream.address]),
      listeners: [{ name: 'web', protocol: 'https', listen: '127.0.0.1:0', accessLog: false, tls: { certificates: [{ cert: api.cert, key: api.key, default: true }] } }],
    });
  });

  after(async () => {
    await gw.close();
    await tlsGw.close();
    await upstream.close();
    await pki.cleanup();
  });

  it('proxies h2c (prior knowledge) requests to an HTTP/1.1 upstream, translating pseudo-headers', async () => {
    const session = http2.connect(gw.url());
    try {
      const r = await h2request(session, { ':method': 'POST', ':path': '/submit?x=1', 'content-type': 'text/plain', cookie: ['a=1', 'b=2'] }, 'hello h2');
      assert.equal(r.status, 200);
      const seen = JSON.parse(r.body);
      assert.equal(seen.httpVersion, '1.1');
      assert.equal(seen.method, 'POST');
      assert.equal(seen.url, '/submit?x=1');
      assert.equal(seen.body, 'hello h2');
      assert.equal(seen.headers.host, new URL(gw.url()).host, ':authority becomes Host');
      assert.equal(seen.headers.cookie, 'a=1; b=2', 'split cookies are joined (RFC 9113 §8.2.3)');
      assert.equal(seen.headers['x-forwarded-proto'], 'http');
      assert.ok(!seen.rawHeaders.some((n: string) => n.startsWith(':')), 'no pseudo-header reaches HTTP/1.1');
      assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
      assert.equal(r.headers['x-upstream'], 'yes');
      assert.ok(r.headers['x-request-id']);
      assert.equal(r.headers.connection, undefined);
    } finally {
      await closeSession(session);
    }
  });

  it('serves many concurrent streams on one connection', async () => {
    const session = http2.connect(gw.url());
    try {
      const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => h2request(session, { ':path': `/n/${i}` })));
      replies.forEach((r, i) => {
        assert.equal(r.status, 200);
        assert.equal(JSON.parse(r.body).url, `/n/${i}`);
      });
    } finally {
      await closeSession(session);
    }
  });

  it('still serves HTTP/1.1 on the same cleartext port', async () => {
    const r = await send(gw.url(), { path: '/plain' });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).url, '/plain');
  });

  it('forwards an HTTP/1.1 upstream\'s trailers to an HTTP/2 client', async () => {
    const session = http2.connect(gw.url());
    try {
      const r = await h2request(session, { ':path': '/trailers', te: 'trailers' });
      assert.equal(r.body, 'part');
      assert.equal(r.trailers?.['x-checksum'], 'abc123');
    } finally {
      await closeSession(session);
    }
  });

  it('gateway errors reach HTTP/2 clients as JSON with the mapped status', async () => {
    const noRoute = await startGateway({ ...simpleConfig([upstream.address], { match: { path: '/only' } }) });
    const session = http2.connect(noRoute.url());
    try {
      const r = await h2request(session, { ':path': '/elsewhere' });
      assert.equal(r.status, 404);
      assert.equal(JSON.parse(r.body).code, 'ROUTE_NOT_FOUND');
    } finally {
      await closeSession(session);
      await noRoute.close();
    }
  });

  it('negotiates h2 by ALPN on an https listener and http/1.1 for HTTP/1.1 clients', async () => {
    const session = http2.connect(tlsGw.url().replace('http:', 'https:'), { ca: caPem, servername: 'api.example.com' });
    try {
      const r = await h2request(session, { ':path': '/secure' });
      assert.equal(r.status, 200);
      const seen = JSON.parse(r.body);
      assert.equal(seen.headers['x-forwarded-proto'], 'https');
      assert.equal((session.socket as tls.TLSSocket).alpnProtocol, 'h2');
    } finally {
      await closeSession(session);
    }
    const body = await new Promise<{ alpn: string | false | null; status: number }>((resolve, reject) => {
      const u = new URL(tlsGw.url());
      const req = https.request(
        { host: '127.0.0.1', port: u.port, path: '/h1', ca: caPem, servername: 'api.example.com', agent: false, ALPNProtocols: ['http/1.1'] } as https.RequestOptions,
        (res) => {
          res.resume();
          res.on('end', () => resolve({ alpn: (res.socket as tls.TLSSocket).alpnProtocol, status: res.statusCode! }));
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(body.status, 200);
    assert.equal(body.alpn, 'http/1.1');
  });

  it('a reload with a renewed certificate keeps open HTTP/2 connections; new ones get the new certificate', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portico-h2-reload-'));
    const first = await pki.issue('reload.example.com');
    const cert = join(dir, 'c.crt');
    const key = join(dir, 'c.key');
    await writeFile(cert, first.certPem);
    await writeFile(key, first.keyPem);
    const doc = {
      ...simpleConfig([upstream.address]),
      listeners: [{ name: 'web', protocol: 'https', listen: '127.0.0.1:0', accessLog: false, tls: { certificates: [{ cert, key, default: true }] } }],
    };
    const g = await startGateway(doc);
    const url = g.url().replace('http:', 'https:');
    const fingerprint = (session: http2.ClientHttp2Session) => (session.socket as tls.TLSSocket).getPeerX509Certificate()!.fingerprint256;
    const open = http2.connect(url, { ca: caPem, servername: 'reload.example.com' });
    try {
      assert.equal((await h2request(open, { ':path': '/before' })).status, 200);
      const before = fingerprint(open);
      const renewed = await pki.issue('reload.example.com');
      await writeFile(cert, renewed.certPem);
      await writeFile(key, renewed.keyPem);
      const result = await g.reload(doc);
      assert.ok(result.ok, JSON.stringify(result));
      // The open connection goes on, on its certificate.
      assert.equal((await h2request(open, { ':path': '/after' })).status, 200);
      assert.equal(before, new X509Certificate(first.certPem).fingerprint256);
      const fresh = http2.connect(url, { ca: caPem, servername: 'reload.example.com' });
      try {
        assert.equal((await h2request(fresh, { ':path': '/fresh' })).status, 200);
        assert.equal(fingerprint(fresh), new X509Certificate(renewed.certPem).fingerprint256);
      } finally {
        await closeSession(fresh);
      }
    } finally {
      await closeSession(open);
      await g.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('HTTP/1.1 clients reach HTTP/2 upstreams (h2c and h2 over TLS), and HTTP/2 clients too', async () => {
    const seen: http2.IncomingHttpHeaders[] = [];
    const handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
      seen.push(req.headers);
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        res.setHeader('x-h2-upstream', 'yes');
        res.end(`${req.method} ${req.url} ${Buffer.concat(chunks).toString()}`);
      });
    };
    const cleartext = http2.createServer(handler);
    const serverCert = await pki.issue('h2.internal');
    const secure = http2.createSecureServer({ cert: serverCert.certPem, key: serverCert.keyPem }, handler);
    await Promise.all([cleartext, secure].map((srv) => new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))));
    const port = (srv: net.Server) => (srv.address() as net.AddressInfo).port;
    const caFile = pki.caCert;
    const g = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [
        { name: 'h2c', protocol: 'h2c', targets: [{ address: `127.0.0.1:${port(cleartext)}` }] },
        { name: 'h2', protocol: 'h2', tls: { ca: caFile, serverName: 'h2.internal' }, targets: [{ address: `127.0.0.1:${port(secure)}` }] },
      ],
      routes: [
        { name: 'a', listener: 'web', match: { pathPrefix: '/c/' }, upstream: 'h2c' },
        { name: 'b', listener: 'web', match: { pathPrefix: '/s/' }, upstream: 'h2' },
      ],
    });
    try {
      const c = await send(g.url(), { method: 'POST', path: '/c/x?q=1', body: 'one', headers: { 'x-custom': 'v', connection: 'keep-alive' } });
      assert.equal(c.status, 200);
      assert.equal(c.body, 'POST /c/x?q=1 one');
      assert.equal(c.headers['x-h2-upstream'], 'yes');
      assert.equal(seen.at(-1)![':authority'], new URL(g.url()).host, 'Host becomes :authority');
      assert.equal(seen.at(-1)!['x-custom'], 'v');
      assert.equal(seen.at(-1)!.connection, undefined, 'no connection-specific header reaches HTTP/2');
      const s2 = await send(g.url(), { path: '/s/y' });
      assert.equal(s2.status, 200);
      assert.equal(s2.body, 'GET /s/y ');
      const session = http2.connect(g.url());
      try {
        const r = await h2request(session, { ':method': 'PUT', ':path': '/c/z' }, 'two');
        assert.equal(r.body, 'PUT /c/z two');
      } finally {
        await closeSession(session);
      }
    } finally {
      await g.close();
      await Promise.all([cleartext, secure].map((srv) => new Promise<void>((r) => srv.close(() => r()))));
    }
  });

  it('refuses TLS below 1.2 by default', async () => {
    const u = new URL(tlsGw.url());
    const err = await new Promise<Error>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: Number(u.port), ca: caPem, servername: 'api.example.com', maxVersion: 'TLSv1.1', minVersion: 'TLSv1' });
      s.on('secureConnect', () => resolve(new Error('connected')));
      s.on('error', resolve);
    });
    assert.notEqual(err.message, 'connected');
  });

  it('answers a malformed frame with GOAWAY, keeps serving others and leaves no socket behind', async () => {
    // node:http2 sends the GOAWAY but leaves closing to the peer; a peer that ignores it is closed as idle.
    const strict = await startGateway(simpleConfig([upstream.address], {}, {}, { timeouts: { keepAlive: 300 } }));
    const u = new URL(strict.url());
    const socket = net.connect(Number(u.port), '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    const received: Buffer[] = [];
    socket.on('data', (c: Buffer) => received.push(c));
    socket.on('error', () => undefined);
    // Preface, empty SETTINGS, then a DATA frame on stream 0 (a connection error, RFC 9113 §6.1).
    socket.write(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'));
    socket.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]));
    socket.write(Buffer.from([0, 0, 4, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]));
    await waitFor(() => socket.destroyed || socket.readableEnded, 'gateway closes the broken connection', 5000);
    const all = Buffer.concat(received);
    // A GOAWAY frame (type 7) was sent before closing.
    let off = 0;
    let sawGoaway = false;
    while (off + 9 <= all.length) {
      const len = all.readUIntBE(off, 3);
      if (all[off + 3] === 7) sawGoaway = true;
      off += 9 + len;
    }
    assert.ok(sawGoaway, 'GOAWAY sent');
    socket.destroy();
    const session = http2.connect(strict.url());
    try {
      assert.equal((await h2request(session, { ':path': '/after' })).status, 200);
    } finally {
      await closeSession(session);
    }
    await waitFor(() => strict.gateway.connections() === 0, 'no connection left');
    await strict.close();
  });

  it('a client that ends its TCP side with streams in flight leaves no connection behind', async () => {
    const slow = await startUpstream((_req, res) => setTimeout(() => res.end('late'), 300));
    const g = await startGateway(simpleConfig([slow.address]));
    const u = new URL(g.url());
    const socket = net.connect(Number(u.port), '127.0.0.1');
    const session = http2.connect(g.url(), { createConnection: () => socket });
    session.on('error', () => undefined);
    for (let i = 0; i < 5; i++) session.request({ ':path': `/s${i}` }).on('error', () => undefined);
    await waitFor(() => slow.received.length === 5, 'requests reached the upstream');
    socket.end();
    await waitFor(() => g.gateway.connections() === 0, 'the gateway dropped the connection', 3000);
    session.destroy();
    await g.close();
    await slow.close();
  });

  it('a connection that never sends its first bytes is closed after the headers timeout', async () => {
    const quick = await startGateway(simpleConfig([upstream.address], {}, {}, { timeouts: { headers: 300 } }));
    try {
      const u = new URL(quick.url());
      const socket = net.connect(Number(u.port), '127.0.0.1');
      socket.on('error', () => undefined);
      await new Promise((r) => socket.once('connect', r));
      const closed = await waitFor(() => socket.destroyed || socket.readableEnded, 'idle connection closed', 5000);
      assert.ok(closed);
      socket.destroy();
    } finally {
      await quick.close();
    }
  });

  it('with http2 disabled, a prior-knowledge preface is refused as bad HTTP/1.1', async () => {
    const h1only = await startGateway(simpleConfig([upstream.address], {}, {}, { http2: { enabled: false } }));
    try {
      const session = http2.connect(h1only.url());
      const failed = await new Promise<boolean>((resolve) => {
        session.on('error', () => resolve(true));
        session.on('close', () => resolve(true));
        const s = session.request({ ':path': '/' });
        s.on('error', () => resolve(true));
        s.on('response', () => resolve(false));
      });
      assert.ok(failed);
      session.destroy();
      assert.equal((await send(h1only.url(), { path: '/h1' })).status, 200);
    } finally {
      await h1only.close();
    }
  });

  it('a graceful stop lets an open stream finish and sends GOAWAY', async () => {
    const slow = await startUpstream((_req, res) => setTimeout(() => res.end('late'), 400));
    const g = await startGateway(simpleConfig([slow.address]));
    const session = http2.connect(g.url());
    let goaway = false;
    session.on('goaway', () => (goaway = true));
    session.on('error', () => undefined);
    const pending = h2request(session, { ':path': '/slow' });
    await waitFor(() => slow.received.length === 1, 'request reached the upstream');
    const stopping = g.gateway.stop(5000);
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(r.body, 'late');
    await stopping;
    assert.ok(goaway || session.closed || session.destroyed);
    session.destroy();
    await slow.close();
  });
});
