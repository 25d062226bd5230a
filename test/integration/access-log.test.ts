// The access log through real listeners and upstreams: every default field
// with its value for HTTP/1.1 and HTTP/2 requests, credential masking, a
// chosen field list, the upstream status against the downstream one, trace
// ids; and, through the real binary, SIGUSR1 reopening the log files after
// a logrotate-style rename (one process, and `workers: 2`).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { stringify } from 'yaml';
import { startCli, stopAfter, tempDir } from '../helpers/cli.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { freePort, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACEPARENT = `00-${TRACE}-00f067aa0ba902b7-01`;
const B3 = '463ac35c9f6413ad';

type Line = Record<string, unknown>;

function lines(file: string): Line[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);
}

/** Waits (lines are flushed every second) until `file` has `n` lines; returns them. */
function waitLines(file: string, n: number): Promise<Line[]> {
  return waitFor(() => {
    const l = lines(file);
    return l.length >= n ? l : undefined;
  }, `${n} access-log lines in ${path.basename(file)}`);
}

/** The line of the request with id `id`. */
async function lineOf(file: string, id: string): Promise<Line> {
  return waitFor(() => lines(file).find((l) => l.requestId === id), `the line of ${id}`);
}

/** One h2c (prior knowledge) request; resolves with the status and body. */
function h2get(url: string, headers: http2.OutgoingHttpHeaders): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on('error', reject);
    const req = session.request({ ':method': 'GET', ...headers });
    let body = '';
    let status = 0;
    req.on('response', (h) => (status = Number(h[':status'])));
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      session.close();
      resolve({ status, body });
    });
    req.on('error', reject);
    req.end();
  });
}

const DEFAULT_KEYS = ['time', 'type', 'requestId', 'traceId', 'listener', 'route', 'client', 'method', 'path', 'query', 'protocol', 'userAgent', 'status', 'bytesReceived', 'bytesSent', 'durationMs', 'upstream', 'target', 'upstreamStatus', 'upstreamMs'];

describe('access-log fields', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  let dir: string;
  const file = () => path.join(dir, 'access.log');
  const selected = () => path.join(dir, 'selected.log');
  /** Hits per path, for the retry upstream below. */
  const hits = new Map<string, number>();

  test.before(async () => {
    dir = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'portico-access-'));
    upstream = await startUpstream((req, res, body) => {
      const url = req.url!;
      const n = (hits.get(url) ?? 0) + 1;
      hits.set(url, n);
      if (url.startsWith('/flaky/') && n === 1) {
        // The first try: a retryable 503 (after a pause, for /flaky/slow).
        setTimeout(() => res.writeHead(503, { 'content-length': '4' }).end('busy'), url.startsWith('/flaky/slow') ? 150 : 0);
        return;
      }
      if (url.startsWith('/flaky/reset')) {
        req.socket.destroy();
        return;
      }
      const text = JSON.stringify({ url, body });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
    gw = await startGateway({
      listeners: [
        { name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: { path: path.join(dir, 'access.log') } },
        {
          name: 'sel',
          protocol: 'http',
          listen: '127.0.0.1:0',
          accessLog: { path: path.join(dir, 'selected.log'), fields: ['upstreamStatus', 'status', 'query', 'path', 'traceId', 'consumer'], maskQueryParams: ['session'] },
        },
      ],
      upstreams: [
        { name: 'up', targets: [{ address: upstream.address }] },
        { name: 'retried', targets: [{ address: upstream.address }], retries: { attempts: 1, on: [503, 'reset'], backoff: { base: 0, max: 0 } } },
      ],
      routes: [
        { name: 'flaky', listener: 'web', match: { pathPrefix: '/flaky/' }, upstream: 'retried' },
        { name: 'r', listener: 'web', upstream: 'up' },
        { name: 's', listener: 'sel', upstream: 'up' },
      ],
    });
  });

  test.after(async () => {
    await gw.close();
    await upstream.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('HTTP/1.1: every default field, with its value; credentials masked in the log only', async () => {
    const q = 'a=1&access_token=SECRET1&Password=hunter2&next=https://bob:pw1@example.com/x&empty=';
    const r = await send(gw.url(), {
      path: `/items/7?${q}`,
      headers: { 'user-agent': 'agent/1.0 "quoted" \u00e9', traceparent: TRACEPARENT, 'x-request-id': 'h1-fields' },
    });
    assert.equal(r.status, 200);
    assert.equal(upstream.received.at(-1)!.url, `/items/7?${q}`, 'the upstream gets the query as sent');
    const l = await lineOf(file(), 'h1-fields');
    assert.deepEqual(Object.keys(l), DEFAULT_KEYS);
    assert.match(l.time as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual(
      { ...l, time: 0, durationMs: 0, upstreamMs: 0 },
      {
        time: 0,
        type: 'access',
        requestId: 'h1-fields',
        traceId: TRACE,
        listener: 'web',
        route: 'r',
        client: '127.0.0.1',
        method: 'GET',
        path: '/items/7',
        query: 'a=1&access_token=***&Password=***&next=https://***@example.com/x&empty=',
        protocol: 'HTTP/1.1',
        userAgent: 'agent/1.0 "quoted" \u00e9',
        status: 200,
        bytesReceived: 0,
        bytesSent: Buffer.byteLength(r.body),
        durationMs: 0,
        upstream: 'up',
        target: upstream.address,
        upstreamStatus: 200,
        upstreamMs: 0,
      },
    );
    assert.ok(typeof l.upstreamMs === 'number' && typeof l.durationMs === 'number' && l.upstreamMs >= 0 && l.durationMs >= l.upstreamMs);
    const raw = fs.readFileSync(file(), 'utf8');
    for (const secret of ['SECRET1', 'hunter2', 'bob:pw1']) assert.ok(!raw.includes(secret), `${secret} in the log`);
    assert.ok(raw.includes('"userAgent":"agent/1.0 \\"quoted\\" \\u00e9"'), 'non-ASCII header bytes are escaped');
  });

  test('HTTP/2: the same fields, protocol HTTP/2; a malformed traceparent starts a new trace, whose id is logged (not B3)', async () => {
    const r = await h2get(gw.url(), { ':path': '/h2?token=T2&x=%41', 'user-agent': 'h2-agent', traceparent: `00-${TRACE.toUpperCase()}-00f067aa0ba902b7-01`, 'x-b3-traceid': B3, 'x-request-id': 'h2-fields' });
    assert.equal(r.status, 200);
    const l = await lineOf(file(), 'h2-fields');
    assert.deepEqual(Object.keys(l), DEFAULT_KEYS);
    assert.equal(l.protocol, 'HTTP/2');
    // The trace id Portico used: a new one (W3C Trace Context), the one the upstream received.
    assert.match(String(l.traceId), /^[0-9a-f]{32}$/);
    assert.notEqual(l.traceId, TRACE);
    assert.notEqual(l.traceId, B3);
    assert.equal(l.query, 'token=***&x=%41');
    assert.equal(l.userAgent, 'h2-agent');
    assert.equal(l.path, '/h2');
    assert.equal(l.status, 200);
    assert.equal(l.upstreamStatus, 200);
    assert.equal(l.bytesSent, Buffer.byteLength(r.body));
  });

  test('a malformed traceparent alone: the new trace id sent upstream is logged; no query, no user agent: those fields are left out', async () => {
    await send(gw.url(), { path: '/plain', headers: { traceparent: `00-${TRACE}-0000000000000000-01`, 'x-request-id': 'bad-trace' } });
    const l = await lineOf(file(), 'bad-trace');
    const sent = /^00-([0-9a-f]{32})-[0-9a-f]{16}-0[01]$/.exec(String(upstream.received.find((x) => x.url === '/plain')?.headers.traceparent));
    assert.ok(sent, 'the upstream received a traceparent');
    assert.notEqual(sent[1], TRACE);
    assert.equal(l.traceId, sent[1]);
    assert.equal('query' in l || 'userAgent' in l, false);
    assert.equal(l.status, 200);
  });

  test('a chosen field list gives exactly those keys (consumer left out: none identified); maskQueryParams adds names', async () => {
    await send(gw.url('sel'), { path: '/s?session=S3&x=1&key=K3', headers: { traceparent: TRACEPARENT } });
    const [l] = await waitLines(selected(), 1);
    assert.deepEqual(l, { traceId: TRACE, path: '/s', query: 'session=***&x=1&key=***', status: 200, upstreamStatus: 200 });
  });

  test('the upstream status differs from the downstream one when the gateway answered an error after a retried 503', async () => {
    const r = await send(gw.url(), { path: '/flaky/reset', headers: { 'x-request-id': 'retry-error' } });
    assert.equal(r.status, 502);
    assert.equal(hits.get('/flaky/reset'), 2, 'two tries');
    const l = await lineOf(file(), 'retry-error');
    assert.equal(l.status, 502);
    assert.equal(l.upstreamStatus, 503);
    assert.equal(l.route, 'flaky');
    assert.match(l.error as string, /^UPSTREAM_/);
  });

  test('after a retried 503, upstreamStatus is the answer forwarded and upstreamMs spans every try', async () => {
    const r = await send(gw.url(), { path: '/flaky/slow', headers: { 'x-request-id': 'retry-ok' } });
    assert.equal(r.status, 200);
    assert.equal(hits.get('/flaky/slow'), 2);
    const l = await lineOf(file(), 'retry-ok');
    assert.equal(l.status, 200);
    assert.equal(l.upstreamStatus, 200);
    // The first try alone took at least 150 ms.
    assert.ok((l.upstreamMs as number) >= 150, `upstreamMs ${String(l.upstreamMs)}`);
    assert.ok((l.durationMs as number) >= (l.upstreamMs as number));
  });

  test('no upstream reached: no upstreamStatus, upstreamMs or target', async () => {
    const closed = await freePort();
    const g = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: { path: path.join(dir, 'down.log') } }],
      upstreams: [{ name: 'down', targets: [{ address: `127.0.0.1:${closed}` }] }],
      routes: [{ name: 'r', listener: 'web', upstream: 'down' }],
    });
    try {
      assert.equal((await send(g.url(), { path: '/nope' })).status, 502);
    } finally {
      await g.close();
    }
    const [l] = lines(path.join(dir, 'down.log'));
    assert.equal(l!.status, 502);
    assert.equal('upstreamStatus' in l!, false);
    assert.equal(l!.target, `127.0.0.1:${closed}`);
  });
});

// ---------------------------------------------------------------- SIGUSR1

/** A config whose listener answers by itself and logs to `log`. */
function cliConfig(port: number, log: string, workers?: number) {
  return {
    ...(workers !== undefined ? { workers } : {}),
    shutdownTimeout: '2s',
    log: { level: 'info' },
    listeners: [{ name: 'web', protocol: 'http', listen: `127.0.0.1:${port}`, accessLog: { path: log } }],
    routes: [{ name: 'hello', listener: 'web', respond: { body: 'hi' } }],
  };
}

/** Sends `n` requests, each on a fresh connection, with ids `${prefix}-0…`. */
async function sendMany(url: string, prefix: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = `${prefix}-${i}`;
    assert.equal((await send(url, { path: `/${id}`, headers: { 'x-request-id': id } })).status, 200);
    ids.push(id);
  }
  return ids;
}

const ids = (file: string) => lines(file).map((l) => l.requestId as string);

async function rotate(t: TestContext, workers?: number): Promise<void> {
  const dir = tempDir(t, 'access-rotate');
  const log = path.join(dir, 'logs', 'access.log');
  const config = path.join(dir, 'portico.yaml');
  fs.writeFileSync(config, stringify(cliConfig(await freePort(), log, workers)));
  const gw = await startCli(config);
  stopAfter(t, gw.child, gw.exited, 10_000);
  const url = gw.urls.web!;
  const reopened = () => gw.logs.filter((l) => l.msg === 'access logs reopened').length;

  const before = await sendMany(url, 'before', 12);
  await waitLines(log, before.length);
  // logrotate: rename, then signal. Requests between the two still go to the renamed file.
  fs.renameSync(log, `${log}.1`);
  const between = await sendMany(url, 'between', 4);
  gw.child.kill('SIGUSR1');
  await waitFor(() => reopened() === (workers ?? 1), 'every process to reopen its log');
  const after = await sendMany(url, 'after', 12);
  await waitLines(log, after.length);
  assert.equal(await gw.stop(), 0);

  assert.deepEqual(ids(`${log}.1`).sort(), [...before, ...between].sort(), 'the renamed file keeps every line from before the signal');
  assert.deepEqual(ids(log).sort(), [...after].sort(), 'the new file at the path has every line from after it');
  assert.ok(!gw.stderr.join('').includes('Debugger'), 'SIGUSR1 did not start the inspector');
}

test('SIGUSR1 reopens the access-log file after a logrotate-style rename: no line lost', async (t) => {
  await rotate(t);
});

test('workers: 2 — the primary forwards SIGUSR1 and every worker reopens', async (t) => {
  await rotate(t, 2);
});
