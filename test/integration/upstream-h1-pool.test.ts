import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { createPki } from '../helpers/certs.js';
import type net from 'node:net';
import type { Dispatcher } from 'undici';
import { startGateway, simpleConfig } from '../helpers/gateway.js';
import { startUpstream, type Handler } from '../helpers/upstream.js';
import { startTcpServer, type TcpServer } from '../helpers/tcp.js';
import { send } from '../helpers/http.js';
import { openFds, fdsSettle } from '../helpers/fds.js';
import { waitFor, deferred } from '../helpers/wait.js';
import { createPool } from '../../src/upstream/pool.js';
import { TcpConnector } from '../../src/runtime/tcp-connector.js';

/**
 * The gateway's own HTTP/1.1 upstream client (src/upstream/h1/) through
 * the real gateway, against node:http and raw TCP upstreams on port 0:
 * keep-alive reuse, every body framing, the Keep-Alive hint, timeouts,
 * aborts, the connection limit, request bodies, and the class of invalid
 * responses (502 UPSTREAM_PROTOCOL_ERROR). Each upstream counts the
 * connections it accepted: that is what the reuse rules are about.
 */

/** A node:http upstream that counts its connections (and how many are open). */
async function counted(handler: Handler) {
  const up = await startUpstream(handler);
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  let maxOpen = 0;
  up.server.on('connection', (s: net.Socket) => {
    accepted++;
    sockets.add(s);
    maxOpen = Math.max(maxOpen, sockets.size);
    s.on('close', () => sockets.delete(s));
  });
  return Object.assign(up, { accepted: () => accepted, open: () => sockets.size, maxOpen: () => maxOpen });
}

interface Full {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  trailers: NodeJS.Dict<string>;
  cut: boolean;
}

/** One request over a fresh connection; resolves with the response, or `cut` when the response was cut off. */
function fetchFull(url: string, opts: { method?: string; path?: string; headers?: Record<string, string>; body?: Buffer[] } = {}): Promise<Full> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const req = http.request({ host: u.hostname, port: u.port, method: opts.method ?? 'GET', path: opts.path ?? '/', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let cut = false;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('aborted', () => (cut = true));
      res.on('error', () => (cut = true));
      res.on('close', () =>
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('latin1'), trailers: res.trailers, cut: cut || !res.complete }),
      );
    });
    req.on('error', () => resolve({ status: 0, headers: {}, body: '', trailers: {}, cut: true }));
    for (const c of opts.body ?? []) req.write(c);
    req.end();
  });
}

/** A raw upstream: `answer` gets each request head (and the socket) once the head is complete. */
function rawUpstream(answer: (head: string, socket: net.Socket) => void): Promise<TcpServer> {
  return startTcpServer((socket) => {
    // The gateway closing its end closes the connection (the helper's sockets are half-open capable).
    socket.on('end', () => socket.destroy());
    let buf = '';
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end !== -1; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        answer(head, socket);
      }
    });
  });
}

describe('upstream HTTP/1.1 client: keep-alive and framing', () => {
  test('sequential requests reuse one upstream connection', async (t) => {
    const up = await counted((_req, res) => res.end('ok'));
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    for (let i = 0; i < 5; i++) {
      const r = await send(gw.url(), { path: `/${i}` });
      assert.equal(r.status, 200);
      assert.equal(r.body, 'ok');
    }
    assert.equal(up.accepted(), 1);
    assert.deepEqual(
      up.received.map((r) => r.url),
      ['/0', '/1', '/2', '/3', '/4'],
    );
  });

  test('a chunked response with trailers reaches a chunked downstream with its trailers', async (t) => {
    const up = await counted((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
      res.write('hello ');
      res.write('world');
      res.addTrailers({ 'x-checksum': 'abc' });
      res.end();
    });
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    const r = await fetchFull(gw.url());
    assert.equal(r.status, 200);
    assert.equal(r.body, 'hello world');
    assert.equal(r.trailers['x-checksum'], 'abc');
    assert.equal(r.cut, false);
    assert.equal((await fetchFull(gw.url())).body, 'hello world');
    assert.equal(up.accepted(), 1, 'the connection is reused after a chunked response');
  });

  test('HEAD, 204 and 304 responses end without a body and keep the connection', async (t) => {
    const up = await counted((req, res) => {
      if (req.url === '/204') return void res.writeHead(204).end();
      if (req.url === '/304') return void res.writeHead(304, { etag: '"x"' }).end();
      res.writeHead(200, { 'content-length': '100' });
      res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(100));
    });
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    const head = await fetchFull(gw.url(), { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], '100');
    assert.equal(head.body, '');
    assert.equal((await fetchFull(gw.url(), { path: '/204' })).status, 204);
    const nm = await fetchFull(gw.url(), { path: '/304' });
    assert.equal(nm.status, 304);
    assert.equal(nm.headers.etag, '"x"');
    assert.equal((await fetchFull(gw.url())).body, 'x'.repeat(100));
    assert.equal(up.accepted(), 1);
  });

  test('a close-delimited body is read to the end, and its connection is not reused', async (t) => {
    const up = await rawUpstream((_head, socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end'));
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    for (let i = 0; i < 2; i++) {
      const r = await fetchFull(gw.url());
      assert.equal(r.status, 200);
      assert.equal(r.body, 'until the end');
      assert.equal(r.cut, false);
    }
    assert.equal(up.accepted.length, 2);
  });

  test('bytes after a complete response close that connection; the response itself is delivered', async (t) => {
    const up = await rawUpstream((_head, socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA'));
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    assert.equal((await fetchFull(gw.url())).body, 'ok');
    await waitFor(() => up.open() === 0, 'the gateway closes the connection that carried extra bytes');
    assert.equal((await fetchFull(gw.url())).body, 'ok');
    assert.equal(up.accepted.length, 2);
  });

  test("the upstream's Keep-Alive hint: timeout=1 is not reused at all; timeout=2 closes the idle connection a second early", async (t) => {
    const up = await counted((req, res) => {
      res.writeHead(200, { 'keep-alive': req.url === '/1' ? 'timeout=1' : 'timeout=2', 'content-length': '2' });
      res.end('ok');
    });
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    assert.equal((await send(gw.url(), { path: '/1' })).status, 200);
    await waitFor(() => up.open() === 0, 'the gateway closes a connection with less than a second left');
    assert.equal((await send(gw.url(), { path: '/2' })).status, 200);
    assert.equal(up.accepted(), 2);
    assert.equal(up.open(), 1);
    await waitFor(() => up.open() === 0, 'the gateway closes the idle connection before the upstream does', 5000);
  });

  test('an HTTP/1.0 upstream without keep-alive gets a new connection per request', async (t) => {
    const up = await rawUpstream((_head, socket) => socket.write('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    assert.equal((await fetchFull(gw.url())).body, 'ok');
    assert.equal((await fetchFull(gw.url())).body, 'ok');
    assert.equal(up.accepted.length, 2);
  });
});

describe('upstream HTTP/1.1 client: request bodies', () => {
  test('a Content-Length body is streamed as is; a chunked upload is sent chunked; the upstream gets every byte', async (t) => {
    const up = await counted((req, res, body) => res.end(`${req.headers['content-length'] ?? '-'} ${req.headers['transfer-encoding'] ?? '-'} ${body.length} ${body.slice(0, 3)}`));
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    const big = Buffer.alloc(1024 * 1024, 'a');
    const sized = await fetchFull(gw.url(), { method: 'POST', headers: { 'content-length': String(big.length) }, body: [big] });
    assert.equal(sized.body, `${big.length} - ${big.length} aaa`);
    const chunked = await fetchFull(gw.url(), { method: 'POST', body: [Buffer.from('abc'), Buffer.from('def'), big] });
    assert.equal(chunked.body, `- chunked ${big.length + 6} abc`);
    const empty = await fetchFull(gw.url(), { method: 'POST', headers: { 'content-length': '0' } });
    assert.equal(empty.body, '0 - 0 ');
  });

  test('an upstream that answers before reading the upload: the answer is forwarded, its connection closed', async (t) => {
    const up = await counted(() => undefined);
    // Answers at once, without reading the body (startUpstream's handler would wait for its end).
    up.server.removeAllListeners('request');
    up.server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => res.writeHead(413).end('too big'));
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    const r = await fetchFull(gw.url(), { method: 'POST', headers: { 'content-length': String(8 * 1024 * 1024) }, body: [Buffer.alloc(8 * 1024 * 1024)] });
    assert.ok(r.status === 413 || r.cut, `413 or a cut upload, got ${r.status}`);
    assert.equal((await fetchFull(gw.url())).body, 'too big');
  });

  test('an upload cut by its client aborts the upstream request: the upstream never sees a complete body', async (t) => {
    const baseline = openFds();
    const up = await counted((_req, res) => res.end('complete'));
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    const u = new URL(gw.url());
    const req = http.request({ host: u.hostname, port: u.port, method: 'POST', path: '/', agent: false });
    req.on('error', () => undefined);
    req.write(Buffer.alloc(1000, 'a'));
    await waitFor(() => up.accepted() === 1, 'the upstream connection');
    req.destroy();
    await waitFor(() => up.accepted() === 1 && up.open() === 0, 'the upstream connection closed');
    assert.equal(up.received.length, 0, 'no complete request reached the upstream');
    await gw.close();
    await up.close();
    await fdsSettle(baseline, 3);
  });

  test('a header value with CR or LF fails the request before anything is sent, and nothing is connected', async (t) => {
    const up = await rawUpstream((_head, socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
    t.after(() => up.close());
    const pool = createPool(new TcpConnector({ host: '127.0.0.1', port: up.port }), '127.0.0.1', {
      protocol: 'http1',
      tls: undefined,
      connectTimeout: 1000,
      responseTimeout: 1000,
      idleTimeout: 1000,
      maxConnections: 0,
    });
    t.after(() => pool.destroy());
    for (const headers of [['x-a', 'a\r\nx-injected: 1'], ['x-a', 'a\nb'], ['x-a', 'a\0b'], ['x-a\r\nb', 'c']]) {
      const err = await new Promise<Error>((resolve) => {
        pool.dispatch({ method: 'GET', path: '/', headers }, { onError: resolve, onConnect() {}, onHeaders: () => true, onData: () => true, onComplete() {} } as Dispatcher.DispatchHandler);
      });
      assert.equal((err as Error & { code: string }).code, 'UND_ERR_INVALID_ARG', JSON.stringify(headers));
      assert.match(err.message, /CR, LF or NUL/);
    }
    assert.equal(up.accepted.length, 0);
  });
});

describe('upstream HTTP/1.1 client: limits, timeouts and aborts', () => {
  test('maxConnections: requests past the limit wait in line and are served on the same connection', async (t) => {
    const release: (() => void)[] = [];
    const up = await counted((_req, res) => release.push(() => res.end('done')));
    const gw = await startGateway(simpleConfig([up.address], {}, { maxConnections: 1 }));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    const replies = [0, 1, 2].map((i) => fetchFull(gw.url(), { path: `/${i}` }));
    for (let served = 1; served <= 3; served++) {
      await waitFor(() => release.length === served, `request ${served} at the upstream`);
      assert.equal(up.received.length, served, 'one request at a time');
      release[served - 1]!();
    }
    for (const r of await Promise.all(replies)) assert.equal(r.body, 'done');
    assert.equal(up.accepted(), 1);
    assert.equal(up.maxOpen(), 1);
  });

  test('response timeout: no head in time → 504 UPSTREAM_RESPONSE_TIMEOUT, and the connection is closed', async (t) => {
    const up = await rawUpstream(() => undefined);
    const gw = await startGateway(simpleConfig([up.address], {}, { timeouts: { response: '200ms' } }));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    const r = await fetchFull(gw.url());
    assert.equal(r.status, 504);
    assert.equal(JSON.parse(r.body).code, 'UPSTREAM_RESPONSE_TIMEOUT');
    await waitFor(() => up.open() === 0, 'the timed-out connection closed');
  });

  test('body idle timeout: a body that stops → the downstream response is cut, the connection closed', async (t) => {
    const up = await rawUpstream((_head, socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome'));
    const gw = await startGateway(simpleConfig([up.address], {}, { timeouts: { idle: '200ms' } }));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    const r = await fetchFull(gw.url());
    assert.equal(r.cut, true);
    await waitFor(() => up.open() === 0, 'the stalled connection closed');
  });

  test('a client leaving mid-body closes the upstream connection; descriptors come back', async (t) => {
    const baseline = openFds();
    const started = deferred();
    const up = await counted((_req, res) => {
      res.writeHead(200, { 'content-length': String(64 * 1024 * 1024) });
      res.write(Buffer.alloc(64 * 1024));
      started.resolve();
    });
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    const u = new URL(gw.url());
    const req = http.request({ host: u.hostname, port: u.port, path: '/', agent: false }, (res) => {
      res.once('data', () => req.destroy());
    });
    req.on('error', () => undefined);
    req.end();
    await started.promise;
    await waitFor(() => up.accepted() === 1 && up.open() === 0, 'the upstream connection closed after the client left');
    await gw.close();
    await up.close();
    await fdsSettle(baseline, 3);
  });

  test('a slow downstream holds the upstream back (bounded memory), and gets every byte', async (t) => {
    const size = 16 * 1024 * 1024;
    const up = await counted((_req, res) => {
      res.writeHead(200, { 'content-length': String(size) });
      const piece = Buffer.alloc(64 * 1024, 'z');
      let sent = 0;
      const more = () => {
        while (sent < size) {
          sent += piece.length;
          if (!res.write(piece)) return void res.once('drain', more);
        }
        res.end();
      };
      more();
    });
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    const u = new URL(gw.url());
    const got = await new Promise<number>((resolve) => {
      http.get({ host: u.hostname, port: u.port, path: '/', agent: false }, (res) => {
        let n = 0;
        res.pause();
        // Read nothing for a while: the gateway must pause the upstream, not buffer 16 MiB.
        setTimeout(() => {
          res.on('data', (c: Buffer) => (n += c.length));
          res.on('end', () => resolve(n));
          res.resume();
        }, 300);
      });
    });
    assert.equal(got, size);
  });
});

describe('upstream HTTP/1.1 client: reads into a reused buffer', () => {
  // Plain TCP connections read into one buffer that the next read reuses (connection.ts onRead). A body
  // chunk still queued downstream (a slow client, HTTP/2 flow control) must make the next read take a new
  // buffer: no byte of any body may change. Bodies differ per request, so a chunk overwritten by the next
  // response's bytes would show. HTTP/2 clients hold responses back (flow control), so connections are paused
  // and resumed, and a response that completes on resume must leave its connection reading for the next one.
  test('every body arrives intact, to fast and slow clients over HTTP/1.1 and HTTP/2, chunked and sized', async (t) => {
    const body = (n: number) => {
      const b = Buffer.allocUnsafe(200 * 1024 + n * 7);
      for (let i = 0; i < b.length; i++) b[i] = (i * 31 + n * 17) & 0xff;
      return b;
    };
    const up = await counted((req, res) => {
      const n = Number(new URL(req.url!, 'http://x').searchParams.get('n'));
      const b = body(n);
      if (n % 2 === 0) res.writeHead(200, { 'content-length': String(b.length) });
      // Written in pieces so responses cross several reads, some split mid-chunk.
      const pieces = [b.subarray(0, 70_001), b.subarray(70_001, 150_000), b.subarray(150_000)];
      for (const p of pieces) res.write(p);
      res.end();
    });
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    const u = new URL(gw.url());
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    t.after(() => agent.destroy());
    const h1 = (n: number, slow: boolean) =>
      new Promise<boolean>((resolve, reject) => {
        http
          .get({ host: u.hostname, port: u.port, path: `/?n=${n}`, agent }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => {
              chunks.push(c);
              if (slow) {
                res.pause();
                setTimeout(() => res.resume(), 1);
              }
            });
            res.on('end', () => resolve(res.statusCode === 200 && Buffer.concat(chunks).equals(body(n))));
          })
          .on('error', reject);
      });
    const session = http2.connect(gw.url());
    t.after(() => session.close());
    const h2 = (n: number) =>
      new Promise<boolean>((resolve, reject) => {
        const s = session.request({ ':path': `/?n=${n}` });
        const chunks: Buffer[] = [];
        s.on('data', (c: Buffer) => chunks.push(c));
        s.on('end', () => resolve(Buffer.concat(chunks).equals(body(n))));
        s.on('error', reject);
      });
    let n = 0;
    for (let round = 0; round < 6; round++) {
      const results = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 4 === 3 ? h2(n++) : h1(n++, i % 3 === 0))));
      assert.deepEqual(results, results.map(() => true), `round ${round}: every body intact`);
    }
    assert.ok(up.accepted() <= 16, 'connections were reused across rounds');
  });
});

/** Responses each of which must be refused with 502 UPSTREAM_PROTOCOL_ERROR. */
const BAD: Record<string, string> = {
  'bad status line': 'HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok',
  'not HTTP/1.x': 'HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok',
  'bad Content-Length': 'HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok',
  'Content-Length and Transfer-Encoding': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
  'a coding other than chunked': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok',
  'bad chunk size': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nqq\r\nok\r\n0\r\n\r\n',
  'bare LF': 'HTTP/1.1 200 OK\nContent-Length: 2\n\nok',
  'obs-fold': 'HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok',
  'header overflow': `HTTP/1.1 200 OK\r\nX-A: ${'a'.repeat(20 * 1024)}\r\nContent-Length: 2\r\n\r\nok`,
  'unrequested 101': 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n',
};

describe('upstream HTTP/1.1 client: invalid responses', () => {
  test('each class of invalid response → 502 UPSTREAM_PROTOCOL_ERROR; the gateway keeps serving; descriptors come back', async (t) => {
    const baseline = openFds();
    const cases = Object.entries(BAD);
    const up = await rawUpstream((head, socket) => {
      const n = Number(/^GET \/(\d+)/.exec(head)?.[1] ?? -1);
      socket.write(n >= 0 ? cases[n]![1] : 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood', 'latin1');
    });
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    for (let n = 0; n < cases.length; n++) {
      const r = await fetchFull(gw.url(), { path: `/${n}` });
      assert.equal(r.status, 502, `${cases[n]![0]}: status`);
      assert.equal(JSON.parse(r.body).code, 'UPSTREAM_PROTOCOL_ERROR', `${cases[n]![0]}: code`);
      await waitFor(() => up.open() === 0, `${cases[n]![0]}: the connection is closed`);
    }
    assert.equal((await fetchFull(gw.url(), { path: '/ok' })).body, 'good');
    await gw.close();
    await up.close();
    await fdsSettle(baseline, 3);
  });
});

interface Outcome {
  status: number;
  body: string;
  error: (Error & { code?: string }) | null;
  events: string[];
}

/** Dispatches on `pool` with a handler that records every call; `onConnect` may act on the abort it gets. */
function dispatch(pool: ReturnType<typeof createPool>, path: string, onConnect?: (abort: (err?: Error) => void) => void): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { status: 0, body: '', error: null, events: [] };
    const chunks: Buffer[] = [];
    pool.dispatch({ method: 'GET', path, headers: ['host', 'x'] }, {
      onConnect(abort: (err?: Error) => void) {
        out.events.push('connect');
        onConnect?.(abort);
      },
      onHeaders(status: number) {
        out.events.push('headers');
        out.status = status;
        return true;
      },
      onData(c: Buffer) {
        chunks.push(Buffer.from(c));
        return true;
      },
      onComplete() {
        out.events.push('complete');
        out.body = Buffer.concat(chunks).toString();
        resolve(out);
      },
      onError(err: Error) {
        out.events.push('error');
        out.error = err;
        resolve(out);
      },
    } as unknown as Dispatcher.DispatchHandler);
  });
}

function poolTo(port: number, maxConnections = 0) {
  return createPool(new TcpConnector({ host: '127.0.0.1', port }), '127.0.0.1', {
    protocol: 'http1',
    tls: undefined,
    connectTimeout: 1000,
    responseTimeout: 5000,
    idleTimeout: 5000,
    maxConnections,
  });
}

describe('upstream HTTP/1.1 pool contract', () => {
  test('abort from onConnect ends the request once and closes its connection; nothing connects again for it', async (t) => {
    const up = await counted((_req, res) => res.end('ok'));
    const pool = poolTo(up.port);
    t.after(async () => {
      await pool.destroy();
      await up.close();
    });
    const why = new Error('gone');
    const r = await dispatch(pool, '/', (abort) => abort(why));
    assert.deepEqual(r.events, ['connect', 'error']);
    assert.equal(r.error, why);
    await waitFor(() => up.open() === 0, 'the aborted connection closed');
    assert.equal(up.accepted(), 1);
    // The pool still serves, on a new connection.
    assert.equal((await dispatch(pool, '/')).body, 'ok');
    assert.equal(up.accepted(), 2);
  });

  test('close() lets the request in flight finish, then closes every connection; later dispatches fail', async (t) => {
    let finish: (() => void) | null = null;
    const up = await counted((_req, res) => (finish = () => res.end('late')));
    const pool = poolTo(up.port);
    t.after(() => up.close());
    const pending = dispatch(pool, '/');
    await waitFor(() => finish !== null, 'the request at the upstream');
    let closed = false;
    const closing = pool.close().then(() => (closed = true));
    const refused = await dispatch(pool, '/');
    assert.equal(refused.error?.code, 'UND_ERR_CLOSED');
    assert.equal(closed, false, 'close waits for the request in flight');
    finish!();
    assert.equal((await pending).body, 'late');
    await closing;
    await waitFor(() => up.open() === 0, 'the connection closed after the last response');
  });

  test('destroy() fails requests in flight and queued with UND_ERR_DESTROYED and closes their connections', async (t) => {
    const up = await counted(() => undefined);
    const pool = poolTo(up.port, 1);
    t.after(() => up.close());
    const first = dispatch(pool, '/1');
    const queued = dispatch(pool, '/2');
    await waitFor(() => up.received.length === 1, 'the first request at the upstream');
    await pool.destroy();
    for (const r of await Promise.all([first, queued])) assert.equal(r.error?.code, 'UND_ERR_DESTROYED');
    await waitFor(() => up.open() === 0, 'the connection closed');
    assert.equal(up.accepted(), 1);
  });

  test('a refused connect fails its request with the connect error, before onConnect', async () => {
    const srv = await startTcpServer(() => undefined);
    const port = srv.port;
    await srv.close();
    const pool = poolTo(port);
    const r = await dispatch(pool, '/');
    assert.deepEqual(r.events, ['error']);
    assert.equal(r.error?.code, 'ECONNREFUSED');
    await pool.destroy();
  });
});

describe('upstream HTTP/1.1 client over TLS', () => {
  test('https: the server name is sent, the certificate checked, and one TLS connection carries every request', async (t) => {
    const pki = await createPki();
    const cert = await pki.issue('upstream.internal');
    let handshakes = 0;
    const names: (string | false | null | undefined)[] = [];
    const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
      names.push((req.socket as import('node:tls').TLSSocket).servername);
      res.end(`tls ${req.url}`);
    });
    server.on('secureConnection', () => handshakes++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const gw = await startGateway(simpleConfig([address], {}, { tls: { ca: pki.caCert, serverName: 'upstream.internal' } }));
    t.after(async () => {
      await gw.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await pki.cleanup();
    });
    for (let i = 0; i < 3; i++) assert.equal((await fetchFull(gw.url(), { path: `/${i}` })).body, `tls /${i}`);
    assert.equal(handshakes, 1);
    assert.deepEqual(names, ['upstream.internal', 'upstream.internal', 'upstream.internal']);
  });
});
