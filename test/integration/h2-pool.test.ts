import assert from 'node:assert/strict';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import tls from 'node:tls';
import type { Dispatcher } from 'undici';
import { fromUpstreamError } from '../../src/errors.js';
import { H2Pool, type H2DispatchHandler, type H2DispatchOptions, type H2PoolOptions } from '../../src/upstream/h2-pool.js';
import { createPki, type Issued, type Pki } from '../helpers/certs.js';
import { waitFor } from '../helpers/wait.js';

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_NO_ERROR } = http2.constants;
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------
// Servers

type StreamHandler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, raw: string[]) => void;

interface H2Server {
  raw: http2.Http2Server;
  port: number;
  origin: string;
  /** Sessions ever accepted. */
  sessions: http2.ServerHttp2Session[];
  /** Open TCP connections. */
  connections(): Promise<number>;
  close(): Promise<void>;
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function connectionCount(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
}

/** A node:http2 server on 127.0.0.1:0: h2c, or h2 over TLS when `tls` is given. */
async function startH2(handler: StreamHandler, settings: http2.Settings = {}, tls?: Issued): Promise<H2Server> {
  // Both server kinds emit the same events; one type keeps the listeners' overloads simple.
  const server = (
    tls === undefined ? http2.createServer({ settings }) : http2.createSecureServer({ settings, key: tls.keyPem, cert: tls.certPem })
  ) as http2.Http2Server;
  const sessions: http2.ServerHttp2Session[] = [];
  server.on('session', (s) => {
    sessions.push(s);
    s.on('error', () => undefined);
  });
  // Node passes the raw header list as a 4th argument its types do not declare.
  server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, raw?: string[]) => {
    stream.on('error', () => undefined);
    handler(stream, headers, raw ?? []);
  });
  const port = await listen(server);
  return {
    raw: server,
    port,
    origin: `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    sessions,
    connections: () => connectionCount(server),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** 200 with a JSON echo of the request head and body. */
const echo: StreamHandler = (stream, headers, raw) => {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  stream.on('end', () => {
    if (stream.destroyed) return;
    const text = JSON.stringify({ headers, raw, body: Buffer.concat(chunks).toString(), session: stream.session?.socket?.remotePort });
    stream.respond({ ':status': 200, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    stream.end(text);
  });
};

// ---------------------------------------------------------------------------
// Client side

/** A handler recording what the pool calls, in order; `done` settles on onComplete or onError. */
class Recorder implements H2DispatchHandler {
  events: string[] = [];
  status = 0;
  statusText: string | undefined;
  raw: Buffer[] = [];
  endStream: boolean | undefined;
  chunks: Buffer[] = [];
  bytes = 0;
  keepChunks = true;
  /** onData returns false once this many bytes arrived (until `resume`). */
  pauseAfter = Infinity;
  trailers: Buffer[] | null = null;
  error: Error | null = null;
  abort: ((err?: Error) => void) | null = null;
  resume: (() => void) | null = null;
  readonly done: Promise<void>;
  private settle!: () => void;

  constructor() {
    this.done = new Promise((resolve) => (this.settle = resolve));
  }

  onConnect(abort: (err?: Error) => void): void {
    this.events.push('connect');
    this.abort = abort;
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void, statusText: string, endStream?: boolean): boolean {
    this.events.push('headers');
    this.status = status;
    this.raw = raw;
    this.resume = resume;
    this.statusText = statusText;
    this.endStream = endStream;
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    if (this.keepChunks) this.chunks.push(chunk);
    if (this.events[this.events.length - 1] !== 'data') this.events.push('data');
    return this.bytes < this.pauseAfter;
  }

  onComplete(trailers: Buffer[] | string[] | null): void {
    this.events.push('complete');
    this.trailers = trailers as Buffer[];
    this.settle();
  }

  onError(err: Error): void {
    this.events.push('error');
    this.error = err;
    this.settle();
  }

  body(): string {
    return Buffer.concat(this.chunks).toString();
  }

  json(): { headers: Record<string, string>; raw: string[]; body: string; session: number } {
    return JSON.parse(this.body());
  }
}

function send(pool: H2Pool, opts: Partial<H2DispatchOptions> = {}, rec = new Recorder()): Recorder {
  pool.dispatch({ path: '/', method: 'GET', headers: [], body: null, ...opts }, rec);
  return rec;
}

/** Flat raw fields as [name, value] string pairs. */
function pairs(raw: Buffer[] | string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i]!.toString(), raw[i + 1]!.toString()]);
  return out;
}

function values(raw: Buffer[] | string[], name: string): string[] {
  return pairs(raw)
    .filter(([n]) => n === name)
    .map(([, v]) => v);
}

const BASE: Omit<H2PoolOptions, 'origin'> = { connectTimeout: 2000, responseTimeout: 5000, idleTimeout: 5000 };

/** A pool and server torn down after the test, checking no connection is left open. */
async function setup(
  t: { after(fn: () => Promise<void>): void },
  handler: StreamHandler,
  o: Partial<H2PoolOptions> = {},
  settings: http2.Settings = {},
): Promise<{ server: H2Server; pool: H2Pool }> {
  const server = await startH2(handler, settings);
  const pool = new H2Pool({ ...BASE, origin: server.origin, ...o });
  t.after(async () => {
    await pool.destroy();
    await waitFor(async () => (await server.connections()) === 0, 'no connection left');
    await server.close();
  });
  return { server, pool };
}

/** Node's own AbortError (what `stream.destroy` turns into RST_STREAM CANCEL), from an aborted timer. */
async function abortError(): Promise<Error> {
  const ac = new AbortController();
  ac.abort();
  return delay(1, undefined, { signal: ac.signal }).then(
    () => new Error('not aborted'),
    (e: Error) => e,
  );
}

function freePort(): Promise<number> {
  const s = net.createServer();
  return listen(s).then((port) => new Promise<number>((resolve) => s.close(() => resolve(port))));
}

// ---------------------------------------------------------------------------

describe('h2c requests and responses', () => {
  test('GET: the pseudo-headers, status, raw headers and body; the handler is called in order', async (t) => {
    const { pool } = await setup(t, echo);
    const r = send(pool, { path: '/a/b?x=1' });
    await r.done;
    assert.deepEqual(r.events, ['connect', 'headers', 'data', 'complete']);
    assert.equal(r.status, 200);
    assert.equal(r.statusText, '');
    assert.equal(r.endStream, false);
    assert.ok(r.raw.every((b) => Buffer.isBuffer(b)));
    assert.deepEqual(values(r.raw, 'content-type'), ['application/json']);
    assert.ok(!pairs(r.raw).some(([n]) => n.startsWith(':')), 'no pseudo-header in the raw head');
    assert.deepEqual(r.trailers, []);
    const got = r.json();
    assert.equal(got.headers[':method'], 'GET');
    assert.equal(got.headers[':path'], '/a/b?x=1');
    assert.equal(got.headers[':scheme'], 'http');
    assert.equal(got.headers[':authority'], `127.0.0.1:${new URL(pool.origin).port}`, 'the origin without a Host header');
  });

  test('POST: Host becomes :authority, connection-specific fields are dropped, names lower-cased, repeats kept', async (t) => {
    const { pool } = await setup(t, (stream, headers, raw) => {
      stream.respond({ ':status': 201, 'set-cookie': ['a=1', 'b=2'], 'x-reply': 'yes' });
      stream.end(JSON.stringify({ headers, raw }));
    });
    const headers = [
      'Host', 'api.example.test', 'X-Custom', 'A', 'x-multi', '1', 'x-multi', '2',
      'Connection', 'keep-alive, X-Hop', 'X-Hop', 'secret', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked',
      'Upgrade', 'websocket', 'Proxy-Connection', 'keep-alive', 'TE', 'trailers',
      'Content-Type', 'text/plain', 'content-type', 'text/html', 'cookie', 'a=1', 'cookie', 'b=2',
    ];
    const r = send(pool, { method: 'POST', path: '/p', headers, body: Buffer.from('hello') });
    await r.done;
    assert.equal(r.status, 201);
    assert.deepEqual(values(r.raw, 'set-cookie'), ['a=1', 'b=2'], 'a repeated response field comes as repeated pairs');
    assert.deepEqual(values(r.raw, 'x-reply'), ['yes']);
    const got = JSON.parse(r.body()) as { headers: Record<string, unknown>; raw: string[] };
    assert.equal(got.headers[':method'], 'POST');
    assert.equal(got.headers[':authority'], 'api.example.test');
    assert.equal(got.headers[':scheme'], 'http');
    const names = pairs(got.raw).map(([n]) => n);
    for (const gone of ['host', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'x-hop']) {
      assert.ok(!names.includes(gone), `${gone} is not sent`);
    }
    assert.deepEqual(values(got.raw, 'x-custom'), ['A']);
    assert.deepEqual(values(got.raw, 'x-multi'), ['1', '2']);
    assert.deepEqual(values(got.raw, 'te'), ['trailers']);
    assert.deepEqual(values(got.raw, 'content-type'), ['text/plain'], 'a single-value field keeps its first value');
    assert.deepEqual(values(got.raw, 'cookie'), ['a=1', 'b=2']);
  });

  test('bodies: Buffer, Readable and none; TE other than trailers is dropped', async (t) => {
    const { pool } = await setup(t, echo);
    const a = send(pool, { method: 'POST', body: Buffer.from('from a buffer') });
    const b = send(pool, { method: 'PUT', body: Readable.from([Buffer.from('from '), Buffer.from('a '), Buffer.from('stream')]) });
    const c = send(pool, { method: 'DELETE', headers: ['te', 'gzip'] });
    const d = send(pool, { method: 'POST', body: Buffer.alloc(0) });
    await Promise.all([a.done, b.done, c.done, d.done]);
    assert.equal(a.json().body, 'from a buffer');
    assert.equal(b.json().body, 'from a stream');
    assert.equal(c.json().headers.te, undefined);
    assert.equal(c.json().headers[':method'], 'DELETE');
    assert.equal(d.json().body, '');
    assert.equal(pool.stats().sessions, 1, 'one session carried them all');
  });

  test('an invalid header name fails that request only, before anything is sent', async (t) => {
    const { pool } = await setup(t, echo);
    const ok = send(pool);
    const bad = send(pool, { headers: ['x-ok', '1', 'bad name', 'v'] });
    assert.deepEqual(bad.events, ['connect', 'error']);
    assert.equal((bad.error as Error & { code: string }).code, 'UND_ERR_INVALID_ARG');
    await ok.done;
    assert.equal(ok.status, 200);
    const later = send(pool);
    await later.done;
    assert.equal(later.status, 200);
    assert.equal(pool.stats().sessions, 1, 'the session is unaffected');
  });

  test('sequential and concurrent requests reuse one session', async (t) => {
    const { pool, server } = await setup(t, echo);
    for (let i = 0; i < 5; i++) await send(pool).done;
    await Promise.all(Array.from({ length: 20 }, () => send(pool).done));
    assert.equal(server.sessions.length, 1);
    // A stream's slot is free once it is closed, just after its END_STREAM was read.
    await waitFor(() => pool.stats().streams === 0, 'every stream to close');
    assert.deepEqual(pool.stats(), { sessions: 1, streams: 0, queued: 0 });
  });

  test('trailers (grpc-status, grpc-message, -bin) come through onComplete exactly', async (t) => {
    const { pool } = await setup(t, (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () =>
        stream.sendTrailers({ 'grpc-status': '3', 'grpc-message': 'bad%20thing', 'x-detail-bin': 'AAEC/w==', 'x-multi': ['1', '2'] }),
      );
      stream.end(Buffer.from([0, 0, 0, 0, 2, 8, 1]));
    });
    const r = send(pool, { method: 'POST', headers: ['content-type', 'application/grpc', 'te', 'trailers'], body: Buffer.from([0, 0, 0, 0, 0]) });
    await r.done;
    assert.deepEqual(r.events, ['connect', 'headers', 'data', 'complete']);
    assert.equal(r.endStream, false);
    assert.deepEqual(Buffer.concat(r.chunks), Buffer.from([0, 0, 0, 0, 2, 8, 1]));
    assert.ok(r.trailers!.every((b) => Buffer.isBuffer(b)));
    assert.deepEqual(pairs(r.trailers!), [
      ['grpc-status', '3'],
      ['grpc-message', 'bad%20thing'],
      ['x-detail-bin', 'AAEC/w=='],
      ['x-multi', '1'],
      ['x-multi', '2'],
    ]);
  });

  test('a trailers-only response (HEADERS with END_STREAM): endStream is true, no data, empty trailers', async (t) => {
    const { pool } = await setup(t, (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'not found' }, { endStream: true });
    });
    const r = send(pool, { method: 'POST', body: Buffer.from([0, 0, 0, 0, 0]) });
    await r.done;
    assert.deepEqual(r.events, ['connect', 'headers', 'complete']);
    assert.equal(r.endStream, true);
    assert.deepEqual(values(r.raw, 'grpc-status'), ['5']);
    assert.deepEqual(values(r.raw, 'grpc-message'), ['not found']);
    assert.deepEqual(r.trailers, []);
  });

  test('1xx interim heads are not delivered; the final head is', async (t) => {
    const { pool } = await setup(t, (stream) => {
      stream.additionalHeaders({ ':status': 103, link: '</a.css>; rel=preload' });
      stream.respond({ ':status': 200 });
      stream.end('ok');
    });
    const r = send(pool);
    await r.done;
    assert.deepEqual(r.events, ['connect', 'headers', 'data', 'complete']);
    assert.equal(r.status, 200);
    assert.equal(r.body(), 'ok');
  });

  test('an undici DispatchHandler is accepted as is', async (t) => {
    const { pool } = await setup(t, echo);
    let status = 0;
    const done = new Promise<void>((resolve, reject) => {
      const handler: Dispatcher.DispatchHandler = {
        onConnect: () => undefined,
        onHeaders: (s) => ((status = s), true),
        onData: () => true,
        onComplete: () => resolve(),
        onError: reject,
      };
      pool.dispatch({ path: '/', method: 'GET', headers: [], body: null }, handler);
    });
    await done;
    assert.equal(status, 200);
  });
});

describe('backpressure', () => {
  test('a paused response holds the server back (flow control) without blocking other streams', async (t) => {
    const total = 50 * MiB;
    const state = { written: 0, blocked: false };
    const { pool } = await setup(t, (stream, headers) => {
      if (headers[':path'] === '/small') {
        stream.respond({ ':status': 200 });
        stream.end('small');
        return;
      }
      stream.respond({ ':status': 200 });
      const chunk = Buffer.alloc(64 * 1024, 1);
      const write = (): void => {
        while (state.written < total) {
          state.written += chunk.length;
          if (!stream.write(chunk)) {
            state.blocked = true;
            stream.once('drain', () => {
              state.blocked = false;
              write();
            });
            return;
          }
        }
        stream.end();
      };
      write();
    });
    const big = new Recorder();
    big.keepChunks = false;
    big.pauseAfter = 1;
    send(pool, { path: '/big' }, big);
    await waitFor(() => big.bytes > 0 && state.blocked, 'the server to be blocked');
    // The connection window is not held by the paused stream: another request gets through.
    const small = send(pool, { path: '/small' });
    await small.done;
    assert.equal(small.body(), 'small');
    assert.equal(pool.stats().sessions, 1);
    assert.ok(state.blocked, 'the server is still blocked');
    assert.ok(state.written < 4 * MiB, `the server wrote ${state.written} bytes while the client was paused`);
    assert.ok(big.bytes < 2 * MiB);
    big.pauseAfter = Infinity;
    big.resume!();
    await big.done;
    assert.equal(big.error, null);
    assert.equal(big.bytes, total);
  });

  test('a request body is read only as fast as the server takes it', async (t) => {
    const total = 50 * MiB;
    let produced = 0;
    const source = new Readable({
      read() {
        if (produced >= total) return void this.push(null);
        produced += 64 * 1024;
        this.push(Buffer.alloc(64 * 1024, 2));
      },
    });
    let upstream: http2.ServerHttp2Stream | undefined;
    const { pool } = await setup(t, (stream) => {
      upstream = stream; // not read until the test says so
    });
    const r = send(pool, { method: 'POST', path: '/upload', body: source });
    await waitFor(() => upstream !== undefined && source.isPaused() && produced > 0, 'the body source to be paused');
    assert.ok(produced < 4 * MiB, `${produced} bytes were read from the source while the server was not reading`);
    let received = 0;
    upstream!.on('data', (c: Buffer) => (received += c.length));
    upstream!.on('end', () => {
      upstream!.respond({ ':status': 200 });
      upstream!.end(String(received));
    });
    await r.done;
    assert.equal(r.error, null);
    assert.equal(r.body(), String(total));
  });
});

describe('resets and aborts', () => {
  test('a server RST_STREAM(CANCEL) before or after the head: onError with rstCode 8', async (t) => {
    const { pool } = await setup(t, (stream, headers) => {
      if (headers[':path'] === '/after') {
        stream.respond({ ':status': 200 });
        // close(CANCEL) after respond() would send END_STREAM first; destroy(AbortError) resets with CANCEL.
        stream.write('partial', () => void abortError().then((e) => stream.destroy(e)));
      } else if (headers[':path'] === '/ok') {
        echo(stream, headers, []);
      } else {
        stream.close(NGHTTP2_CANCEL);
      }
    });
    const before = send(pool, { path: '/before' });
    const afterHead = send(pool, { path: '/after' });
    await Promise.all([before.done, afterHead.done]);
    for (const r of [before, afterHead]) {
      const err = r.error as Error & { code: string; rstCode: number };
      assert.equal(err.code, 'UPSTREAM_STREAM_RESET');
      assert.equal(err.rstCode, NGHTTP2_CANCEL);
      assert.equal(fromUpstreamError(err).code, 'UPSTREAM_RESET');
    }
    assert.deepEqual(before.events, ['connect', 'error']);
    assert.deepEqual(afterHead.events.filter((e) => e !== 'data'), ['connect', 'headers', 'error']);
    const next = send(pool, { path: '/ok' });
    await next.done;
    assert.equal(next.status, 200);
    assert.equal(pool.stats().sessions, 1, 'a stream reset leaves the session up');
  });

  test('abort(): the server sees the stream cancelled; onError once with the given error', async (t) => {
    const seen: { stream?: http2.ServerHttp2Stream; rst?: number; aborted?: boolean } = {};
    const { pool } = await setup(t, (stream) => {
      seen.stream = stream;
      stream.on('aborted', () => (seen.aborted = true));
      stream.on('close', () => (seen.rst = stream.rstCode));
    });
    const r = send(pool, { method: 'POST', body: Readable.from(['x']) });
    await waitFor(() => seen.stream, 'the request to reach the server');
    const reason = new Error('client went away');
    r.abort!(reason);
    r.abort!(new Error('twice'));
    await r.done;
    assert.equal(r.error, reason);
    assert.deepEqual(r.events, ['connect', 'error']);
    await waitFor(() => seen.rst !== undefined, 'the server stream to close');
    assert.equal(seen.rst, NGHTTP2_CANCEL);
    assert.equal(seen.aborted, true);
    await waitFor(() => pool.stats().streams === 0, 'the slot to be freed');
  });

  test('abort() inside onConnect and while queued: no stream is ever opened', async (t) => {
    let streams = 0;
    const { pool } = await setup(t, (stream) => {
      streams++;
      echo(stream, {}, []);
    });
    const early = new Recorder();
    early.onConnect = (abort) => {
      early.events.push('connect');
      abort(new Error('early'));
    };
    assert.equal(pool.dispatch({ path: '/', method: 'GET', headers: [], body: null }, early), true);
    assert.deepEqual(early.events, ['connect', 'error']);
    const queued = send(pool); // waits for the session to connect
    queued.abort!();
    await queued.done;
    assert.equal((queued.error as Error & { code: string }).code, 'UND_ERR_ABORTED');
    await send(pool).done;
    assert.equal(streams, 1);
  });

  test('REFUSED_STREAM: the request is sent again transparently, with its body', async (t) => {
    const attempts = new Map<string, number>();
    const { pool } = await setup(t, (stream, headers) => {
      const path = headers[':path'] as string;
      const n = (attempts.get(path) ?? 0) + 1;
      attempts.set(path, n);
      if (path === '/always' || (path === '/once' && n === 1)) return void stream.close(NGHTTP2_REFUSED_STREAM);
      echo(stream, headers, []);
    });
    const once = send(pool, { method: 'POST', path: '/once', body: Buffer.from('again') });
    await once.done;
    assert.deepEqual(once.events, ['connect', 'headers', 'data', 'complete']);
    assert.equal(once.json().body, 'again');
    assert.equal(attempts.get('/once'), 2);
    const always = send(pool, { path: '/always' });
    await always.done;
    const err = always.error as Error & { code: string; rstCode: number };
    assert.equal(err.code, 'UPSTREAM_STREAM_RESET');
    assert.equal(err.rstCode, NGHTTP2_REFUSED_STREAM);
    assert.equal(attempts.get('/always'), 4, 'sent 1 + 3 times');
  });
});

describe('GOAWAY and session failures', () => {
  test('GOAWAY with a last stream id below in-flight streams: those are re-sent on a new session', async (t) => {
    const first: http2.ServerHttp2Stream[] = [];
    const { pool, server } = await setup(t, (stream, headers, raw) => {
      if (stream.session === server.sessions[0] && headers[':path'] !== '/warm') {
        first.push(stream);
        stream.resume();
        if (first.length === 5) {
          // Only the first of the five is processed (RFC 9113 §6.8); the client must send the others again.
          stream.session.goaway(NGHTTP2_NO_ERROR, first[0]!.id!);
          first[0]!.respond({ ':status': 200 });
          first[0]!.end('processed');
        }
        return;
      }
      echo(stream, headers, raw);
    });
    // Connect first, so that the five streams go out together on one session.
    await send(pool, { path: '/warm' }).done;
    const rs = [
      send(pool, { path: '/0' }),
      send(pool, { path: '/1' }),
      send(pool, { method: 'POST', path: '/2', body: Buffer.from('replayed body') }),
      send(pool, { path: '/3' }),
      send(pool, { method: 'POST', path: '/4', body: Readable.from([Buffer.from('read once')]) }),
    ];
    await Promise.all(rs.map((r) => r.done));
    assert.equal(rs[0]!.status, 200, 'the stream at the last stream id is answered on the old session');
    assert.equal(rs[0]!.body(), 'processed');
    for (const i of [1, 2, 3]) {
      assert.equal(rs[i]!.error, null, `request ${i}`);
      assert.equal(rs[i]!.status, 200);
      assert.equal(rs[i]!.json().headers[':path'], `/${i}`);
    }
    assert.equal(rs[2]!.json().body, 'replayed body');
    const err = rs[4]!.error as Error & { code: string; rstCode: number };
    assert.ok(err, 'a streamed body already read cannot be replayed');
    assert.equal(err.code, 'UPSTREAM_STREAM_RESET');
    assert.equal(err.rstCode, NGHTTP2_REFUSED_STREAM);
    assert.equal(server.sessions.length, 2);
    // The old session closes once its last stream is done, even though this server never closes its side.
    await waitFor(() => pool.stats().sessions === 1, 'the old session to close');
    server.sessions[0]!.destroy(); // the server, half-closed with unanswered streams, lets go too
  });

  test('the server closing the session mid-response fails that request; the next one opens a new session', async (t) => {
    const sockets: net.Socket[] = [];
    const { pool, server } = await setup(t, (stream, headers, raw) => {
      if (headers[':path'] === '/die') {
        stream.respond({ ':status': 200 });
        stream.write('some', () => sockets[0]!.destroy());
        return;
      }
      echo(stream, headers, raw);
    });
    server.raw.on('connection', (s: net.Socket) => sockets.push(s));
    const dead = send(pool, { path: '/die' });
    await dead.done;
    assert.ok(dead.error, 'the truncated response is an error');
    assert.equal(fromUpstreamError(dead.error).code, 'UPSTREAM_RESET');
    assert.equal(dead.events.filter((e) => e === 'error').length, 1);
    const next = send(pool);
    await next.done;
    assert.equal(next.status, 200);
    assert.equal(server.sessions.length, 2);
  });

  test('a server limit of 2 concurrent streams and 20 requests on one session: all succeed, never more than 2 open', async (t) => {
    let open = 0;
    let peak = 0;
    const { pool, server } = await setup(
      t,
      (stream, headers, raw) => {
        peak = Math.max(peak, ++open);
        stream.on('close', () => open--);
        setImmediate(() => echo(stream, headers, raw));
      },
      { maxSessions: 1 },
      { maxConcurrentStreams: 2 },
    );
    const rs = Array.from({ length: 20 }, (_, i) => send(pool, { path: `/${i}` }));
    assert.ok(pool.stats().queued > 0);
    await Promise.all(rs.map((r) => r.done));
    assert.ok(rs.every((r) => r.status === 200 && r.error === null));
    assert.ok(peak <= 2, `peak ${peak}`);
    assert.equal(server.sessions.length, 1);
  });

  test('with room for more sessions, requests beyond the stream limit open another session', async (t) => {
    const peaks = new Map<http2.Http2Session, { open: number; peak: number }>();
    const { pool, server } = await setup(
      t,
      (stream, headers, raw) => {
        const s = peaks.get(stream.session!) ?? { open: 0, peak: 0 };
        peaks.set(stream.session!, s);
        s.peak = Math.max(s.peak, ++s.open);
        stream.on('close', () => s.open--);
        setImmediate(() => echo(stream, headers, raw));
      },
      { maxSessions: 4 },
      { maxConcurrentStreams: 2 },
    );
    const rs = Array.from({ length: 20 }, (_, i) => send(pool, { method: 'POST', path: `/${i}`, body: Buffer.from(String(i)) }));
    await Promise.all(rs.map((r) => r.done));
    rs.forEach((r, i) => assert.equal(r.json().body, String(i)));
    assert.ok(server.sessions.length > 1 && server.sessions.length <= 4, `${server.sessions.length} sessions`);
    for (const s of peaks.values()) assert.ok(s.peak <= 2);
  });
});

describe('connect failures and timeouts', () => {
  test('connection refused: every queued request fails with ECONNREFUSED', async () => {
    const pool = new H2Pool({ ...BASE, origin: `http://127.0.0.1:${await freePort()}` });
    const rs = [send(pool), send(pool), send(pool)];
    await Promise.all(rs.map((r) => r.done));
    for (const r of rs) {
      assert.deepEqual(r.events, ['connect', 'error']);
      assert.equal((r.error as Error & { code: string }).code, 'ECONNREFUSED');
      assert.equal(fromUpstreamError(r.error).code, 'UPSTREAM_CONNECT_REFUSED');
    }
    assert.equal(pool.stats().sessions, 0);
    await pool.close();
  });

  test('connect timeout: a server that accepts and never sends SETTINGS', async () => {
    const silent = net.createServer((s) => {
      s.on('error', () => undefined);
      s.resume(); // reads (and ignores) the preface, so it sees the client's FIN
    });
    const port = await listen(silent);
    const pool = new H2Pool({ ...BASE, origin: `http://127.0.0.1:${port}`, connectTimeout: 150 });
    const started = Date.now();
    const r = send(pool);
    await r.done;
    assert.equal((r.error as Error & { code: string }).code, 'UND_ERR_CONNECT_TIMEOUT');
    assert.equal(fromUpstreamError(r.error).code, 'UPSTREAM_CONNECT_TIMEOUT');
    assert.ok(Date.now() - started >= 140);
    await waitFor(async () => (await connectionCount(silent)) === 0, 'the socket to be closed');
    await pool.close();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  test('response head timeout (pool default and per dispatch): UND_ERR_HEADERS_TIMEOUT, stream cancelled', async (t) => {
    const closed: (number | undefined)[] = [];
    const { pool } = await setup(
      t,
      (stream) => {
        stream.on('close', () => closed.push(stream.rstCode));
      },
      { responseTimeout: 150 },
    );
    const a = send(pool);
    const b = send(pool, { headersTimeout: 100 });
    await Promise.all([a.done, b.done]);
    for (const r of [a, b]) {
      assert.equal((r.error as Error & { code: string }).code, 'UND_ERR_HEADERS_TIMEOUT');
      assert.equal(fromUpstreamError(r.error).code, 'UPSTREAM_RESPONSE_TIMEOUT');
    }
    assert.deepEqual(a.events, ['connect', 'error']);
    assert.deepEqual(b.events, ['connect', 'error']);
    await waitFor(() => closed.length === 2, 'the server streams to close');
    assert.deepEqual(closed, [NGHTTP2_CANCEL, NGHTTP2_CANCEL]);
  });

  test('stream idle timeout after the head: UND_ERR_BODY_TIMEOUT', async (t) => {
    const { pool } = await setup(
      t,
      (stream) => {
        stream.respond({ ':status': 200 });
        stream.write('first');
      },
      { idleTimeout: 150 },
    );
    const r = send(pool);
    await r.done;
    assert.equal(r.body(), 'first');
    assert.equal((r.error as Error & { code: string }).code, 'UND_ERR_BODY_TIMEOUT');
    assert.deepEqual(r.events, ['connect', 'headers', 'data', 'error']);
  });

  test('an idle session is closed after idleTimeout', async (t) => {
    const { pool, server } = await setup(t, echo, { idleTimeout: 150 });
    await send(pool).done;
    assert.equal(pool.stats().sessions, 1);
    await waitFor(() => pool.stats().sessions === 0, 'the idle session to close');
    await waitFor(async () => (await server.connections()) === 0, 'the connection to close');
    await send(pool).done; // a new session is opened on demand
    assert.equal(server.sessions.length, 2);
  });
});

describe('close and destroy', () => {
  test('close(): in-flight and queued requests finish, new ones are refused, then every connection closes', async () => {
    const held: (() => void)[] = [];
    const server = await startH2(
      (stream, headers, raw) => {
        held.push(() => echo(stream, headers, raw));
        if (headers[':path'] !== '/slow') held.pop()!();
      },
      { maxConcurrentStreams: 1 },
    );
    const pool = new H2Pool({ ...BASE, origin: server.origin, maxSessions: 1 });
    const slow = send(pool, { path: '/slow' });
    const queued = send(pool, { path: '/queued' });
    await waitFor(() => held.length === 1, 'the slow request to arrive');
    const closing = pool.close();
    const late = send(pool);
    await late.done;
    assert.equal((late.error as Error & { code: string }).code, 'UND_ERR_CLOSED');
    held[0]!();
    await Promise.all([slow.done, queued.done, closing]);
    assert.equal(slow.error, null);
    assert.equal(queued.error, null);
    assert.equal(slow.status, 200);
    assert.equal(queued.status, 200);
    assert.deepEqual(pool.stats(), { sessions: 0, streams: 0, queued: 0 });
    await waitFor(async () => (await server.connections()) === 0, 'no connection left');
    await server.close();
  });

  test('destroy(): in-flight requests fail at once and the connection closes', async () => {
    const server = await startH2(() => undefined);
    const pool = new H2Pool({ ...BASE, origin: server.origin });
    const r = send(pool);
    await waitFor(() => pool.stats().streams === 1, 'the request to be in flight');
    await pool.destroy();
    await r.done;
    assert.equal((r.error as Error & { code: string }).code, 'UND_ERR_DESTROYED');
    assert.deepEqual(r.events, ['connect', 'error']);
    await waitFor(async () => (await server.connections()) === 0, 'no connection left');
    await server.close();
  });
});

describe('h2 over TLS', () => {
  let pki: Pki;
  let leaf: Issued;
  before(async () => {
    pki = await createPki();
    leaf = await pki.issue('upstream.test', { sans: ['upstream.test', 'IP:127.0.0.1'] });
  });
  after(() => pki.cleanup());

  test('a verified session (ALPN h2): :scheme https', async (t) => {
    const server = await startH2(echo, {}, leaf);
    const pool = new H2Pool({ ...BASE, origin: server.origin, tls: { ca: pki.caPem, servername: 'upstream.test' } });
    t.after(async () => {
      await pool.close();
      await server.close();
    });
    const r = send(pool, { headers: ['host', 'upstream.test'] });
    await r.done;
    assert.equal(r.status, 200);
    assert.equal(r.json().headers[':scheme'], 'https');
    assert.equal(r.json().headers[':authority'], 'upstream.test');
    // An IP target without serverName is checked against the certificate's IP SANs.
    const byIp = new H2Pool({ ...BASE, origin: server.origin, tls: { ca: pki.caPem } });
    t.after(() => byIp.close());
    const r2 = send(byIp);
    await r2.done;
    assert.equal(r2.status, 200);
  });

  test('verification failures keep the TLS error code', async (t) => {
    const server = await startH2(echo, {}, leaf);
    t.after(() => server.close());
    const cases: [H2PoolOptions['tls'], string][] = [
      [{}, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
      [{ ca: pki.caPem, servername: 'other.test' }, 'ERR_TLS_CERT_ALTNAME_INVALID'],
    ];
    for (const [tls, code] of cases) {
      const pool = new H2Pool({ ...BASE, origin: server.origin, tls });
      const r = send(pool);
      await r.done;
      assert.equal((r.error as Error & { code: string }).code, code);
      await pool.close();
    }
    await waitFor(async () => (await server.connections()) === 0, 'no connection left');
  });

  test('a TLS server that does not negotiate h2 is refused', async (t) => {
    // An HTTP/1.1 server with ALPN answers no_application_protocol; one without ALPN selects nothing.
    const http1 = https.createServer({ key: leaf.keyPem, cert: leaf.certPem }, (_req, res) => res.end('http/1.1'));
    const noAlpn = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem }, (s) => s.end());
    const servers: [net.Server, string][] = [
      [http1, 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL'],
      [noAlpn, 'UPSTREAM_ALPN_MISMATCH'],
    ];
    t.after(() => Promise.all(servers.map(([s]) => new Promise<void>((resolve) => s.close(() => resolve())))).then(() => undefined));
    for (const [server, code] of servers) {
      const port = await listen(server);
      const pool = new H2Pool({ ...BASE, origin: `https://127.0.0.1:${port}`, tls: { ca: pki.caPem } });
      const r = send(pool);
      await r.done;
      assert.equal((r.error as Error & { code: string }).code, code);
      await pool.close();
      await waitFor(async () => (await connectionCount(server)) === 0, 'no connection left');
    }
  });
});
