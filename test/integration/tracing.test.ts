// W3C Trace Context through the gateway, and OTLP export to a real OTLP/HTTP
// receiver: the upstream asserts the traceparent it received, the receiver
// asserts the spans it decoded.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Writable } from 'node:stream';
import pino from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { startGateway, simpleConfig, type TestGateway } from '../helpers/gateway.js';
import { echoMethods, grpcClient, startGrpcServer, unaryCall, type GrpcTestServer } from '../helpers/grpc.js';
import { send } from '../helpers/http.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js';
import { freePort, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

/** The traceparent the upstream received for its `i`-th request: [trace id, parent-id, flags]. */
function seen(up: TestUpstream, i: number): [string, string, string] {
  const tp = up.received[i]!.headers.traceparent;
  assert.equal(typeof tp, 'string', 'the upstream received one traceparent');
  const m = TRACEPARENT.exec(tp as string);
  assert.ok(m, `a version-00 traceparent: ${String(tp)}`);
  return [m[1]!, m[2]!, m[3]!];
}

/** A fresh trace id per request, so spans of one test are told apart. */
function traceId(n: number): string {
  return `${n.toString(16).padStart(8, '0')}${TRACE.slice(8)}`;
}

/** Waits for the span of trace `id`. */
function spanOf(rx: OtlpReceiver, id: string): Promise<ReceivedSpan> {
  return waitFor(() => rx.spans.find((s) => s.traceId === id), `the span of trace ${id}`);
}

describe('tracing: W3C propagation and OTLP export', () => {
  let up: TestUpstream;
  let rx: OtlpReceiver;
  let gw: TestGateway;
  let dir: string;
  let logPath: string;
  let n = 0;
  const config = (sample: number, otlp: Record<string, unknown> | null = { endpoint: rx.endpoint, serviceName: 'edge' }) => ({
    ...simpleConfig([up.address], {}, {}, { accessLog: { path: logPath, fields: ['traceId', 'path', 'status'] } }),
    tracing: { sample, ...(otlp ? { otlp } : {}) },
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portico-tracing-'));
    logPath = join(dir, 'access.log');
    up = await startUpstream();
    rx = await startOtlpReceiver();
    gw = await startGateway(config(1));
  });

  after(async () => {
    await gw.close();
    await Promise.all([up.close(), rx.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  test('an incoming sampled trace is continued: same trace id, Portico span as parent upstream, one SERVER span exported with its attributes', async () => {
    const id = traceId(++n);
    const i = up.received.length;
    const r = await send(gw.url(), { path: '/continued', headers: { traceparent: `00-${id}-${PARENT}-01`, tracestate: 'congo=t61rcWkgMzE, rojo=00f067aa0ba902b7' } });
    assert.equal(r.status, 200);
    const [trace, span, flags] = seen(up, i);
    assert.equal(trace, id);
    assert.notEqual(span, PARENT, 'the upstream sees the span of the gateway, not its caller');
    assert.equal(flags, '01');
    assert.equal(up.received[i]!.headers.tracestate, 'congo=t61rcWkgMzE, rojo=00f067aa0ba902b7');

    const s = await spanOf(rx, id);
    assert.equal(s.name, 'GET r');
    assert.equal(s.kind, 2, 'SERVER');
    assert.equal(s.spanId, span, 'the exported span is the one the upstream saw as its parent');
    assert.equal(s.parentSpanId, PARENT, 'its parent is the incoming parent-id');
    assert.equal(s.resource['service.name'], 'edge');
    assert.deepEqual(
      {
        route: s.attributes['portico.route'],
        upstream: s.attributes['portico.upstream'],
        target: s.attributes['portico.target'],
        listener: s.attributes['portico.listener'],
        method: s.attributes['http.request.method'],
        status: s.attributes['http.response.status_code'],
        path: s.attributes['url.path'],
      },
      { route: 'r', upstream: 'up', target: up.address, listener: 'web', method: 'GET', status: 200, path: '/continued' },
    );
    assert.ok(BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano));
    assert.equal(s.status.code ?? 0, 0);
  });

  test('a new trace (no traceparent) at sample 1 is exported under the id the upstream received, with no parent; the access log has that id', async () => {
    const i = up.received.length;
    const r = await send(gw.url(), { path: '/fresh' });
    assert.equal(r.status, 200);
    const [trace, span, flags] = seen(up, i);
    assert.equal(flags, '01');
    const s = await spanOf(rx, trace);
    assert.equal(s.spanId, span);
    assert.equal(s.parentSpanId, '');
    const line = await waitFor(() => readFileSync(logPath, 'utf8').split('\n').find((l) => l.includes('"/fresh"')), 'the access-log line');
    assert.equal(JSON.parse(line).traceId, trace, 'the access log has the trace id Portico created');
  });

  test('an unsampled incoming trace stays unsampled and is not exported; an invalid or repeated traceparent restarts the trace without its tracestate', async () => {
    const unsampled = traceId(++n);
    const marker = traceId(++n);
    const i = up.received.length;
    await send(gw.url(), { path: '/unsampled', headers: { traceparent: `00-${unsampled}-${PARENT}-00` } });
    const [trace, , flags] = seen(up, i);
    assert.equal(trace, unsampled);
    assert.equal(flags, '00', 'an unsampled trace is followed even at sample 1');

    await send(gw.url(), { path: '/invalid', headers: { traceparent: `00-${TRACE.toUpperCase()}-${PARENT}-01`, tracestate: 'congo=1' } });
    const [restarted, , restartedFlags] = seen(up, i + 1);
    assert.notEqual(restarted, TRACE.toLowerCase());
    assert.equal(restartedFlags, '01', 'a new trace, sampled at sample 1');
    assert.equal(up.received[i + 1]!.headers.tracestate, undefined, 'no tracestate without a valid traceparent');

    await send(gw.url(), { path: '/twice', headers: { traceparent: [`00-${traceId(++n)}-${PARENT}-01`, `00-${traceId(++n)}-${PARENT}-01`] } });
    const [twice] = seen(up, i + 2);
    assert.ok(!twice.endsWith(TRACE.slice(8)), 'two traceparent fields are invalid: a new trace');

    // Spans are exported in the order requests end: once the marker's is in, an unsampled one would be too.
    await send(gw.url(), { path: '/marker', headers: { traceparent: `00-${marker}-${PARENT}-01` } });
    await spanOf(rx, marker);
    assert.equal(rx.spans.filter((s) => s.traceId === unsampled).length, 0);
    assert.equal(rx.spans.filter((s) => s.traceId === restarted).length, 1);
  });

  test('sample 0 without traceparent: nothing exported, the upstream still gets a traceparent with flags 00', async () => {
    assert.equal((await gw.reload(config(0))).ok, true);
    const i = up.received.length;
    await send(gw.url(), { path: '/sample-0' });
    const [trace, , flags] = seen(up, i);
    assert.equal(flags, '00');
    const marker = traceId(++n);
    await send(gw.url(), { path: '/marker', headers: { traceparent: `00-${marker}-${PARENT}-01` } });
    await spanOf(rx, marker);
    assert.equal(rx.spans.filter((s) => s.traceId === trace).length, 0);
    assert.equal((await gw.reload(config(1))).ok, true);
  });

  test('a reload that changes tracing.otlp swaps the exporter; one that removes it stops export', async () => {
    const other = await startOtlpReceiver();
    try {
      assert.equal((await gw.reload(config(1, { endpoint: other.endpoint, serviceName: 'other' }))).ok, true);
      const id = traceId(++n);
      await send(gw.url(), { path: '/swapped', headers: { traceparent: `00-${id}-${PARENT}-01` } });
      const s = await spanOf(other, id);
      assert.equal(s.resource['service.name'], 'other');
      assert.equal(rx.spans.filter((x) => x.traceId === id).length, 0);

      assert.equal((await gw.reload(config(1, null))).ok, true);
      const off = traceId(++n);
      const i = up.received.length;
      await send(gw.url(), { path: '/export-off', headers: { traceparent: `00-${off}-${PARENT}-01` } });
      assert.equal(seen(up, i)[0], off, 'propagation goes on without an exporter');
      // Back to the first receiver: a marker sent after shows the off request went nowhere.
      assert.equal((await gw.reload(config(1))).ok, true);
      const marker = traceId(++n);
      await send(gw.url(), { path: '/marker', headers: { traceparent: `00-${marker}-${PARENT}-01` } });
      await spanOf(rx, marker);
      assert.equal([...rx.spans, ...other.spans].filter((x) => x.traceId === off).length, 0);
    } finally {
      await other.close();
    }
  });

  test('an upstream that cannot be reached: the span has status ERROR, the 502 and the gateway error code', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    assert.equal((await gw.reload({ ...config(1), upstreams: [{ name: 'up', targets: [{ address: dead }] }] })).ok, true);
    try {
      const id = traceId(++n);
      const r = await send(gw.url(), { path: '/dead', headers: { traceparent: `00-${id}-${PARENT}-01` } });
      assert.equal(r.status, 502);
      const s = await spanOf(rx, id);
      assert.equal(s.status.code, 2, 'ERROR');
      assert.equal(s.attributes['http.response.status_code'], 502);
      assert.equal(s.attributes['portico.target'], dead);
      assert.equal(s.attributes['error.type'], JSON.parse(r.body).code);
      assert.equal(s.status.message, JSON.parse(r.body).code);
    } finally {
      assert.equal((await gw.reload(config(1))).ok, true);
    }
  });

  test('a retried request is one span counting its tries; every try carried the same parent-id', async () => {
    const flaky = await startUpstream((_req, res) => res.writeHead(503, { 'content-length': '4' }).end('busy'));
    try {
      const doc = config(1);
      doc.upstreams = [{ name: 'up', targets: [{ address: flaky.address }, { address: up.address }], balancer: 'round-robin', retries: { attempts: 1, on: [503], backoff: { base: 0, max: 0 } } } as never];
      assert.equal((await gw.reload(doc)).ok, true);
      const ids: string[] = [];
      // Round robin: within two requests one starts on the failing target and is retried on the other.
      for (let k = 0; k < 2; k++) {
        const id = traceId(++n);
        ids.push(id);
        assert.equal((await send(gw.url(), { path: `/retried-${k}`, headers: { traceparent: `00-${id}-${PARENT}-01` } })).status, 200);
      }
      const spans = await Promise.all(ids.map((id) => spanOf(rx, id)));
      const retried = spans.find((s) => s.attributes['portico.tries'] === 2);
      assert.ok(retried, `one request was retried: ${JSON.stringify(spans.map((s) => s.attributes['portico.tries']))}`);
      assert.equal(retried.attributes['portico.target'], up.address);
      const first = flaky.received.find((x) => String(x.headers.traceparent).includes(retried.traceId))!;
      const second = up.received.find((x) => String(x.headers.traceparent).includes(retried.traceId))!;
      assert.equal(first.headers.traceparent, second.headers.traceparent);
      assert.equal(TRACEPARENT.exec(String(second.headers.traceparent))![2], retried.spanId);
    } finally {
      assert.equal((await gw.reload(config(1))).ok, true);
      await flaky.close();
    }
  });

  test('a long path is exported cut to 1024 characters', async () => {
    const id = traceId(++n);
    const path = `/${'p'.repeat(3000)}`;
    assert.equal((await send(gw.url(), { path, headers: { traceparent: `00-${id}-${PARENT}-01` } })).status, 200);
    const s = await spanOf(rx, id);
    assert.equal(s.attributes['url.path'], path.slice(0, 1024));
  });

  test('the OTLP headers are sent to the collector', async () => {
    assert.equal((await gw.reload(config(1, { endpoint: rx.endpoint, headers: { 'x-api-key': 'k-123' } }))).ok, true);
    const id = traceId(++n);
    await send(gw.url(), { path: '/keyed', headers: { traceparent: `00-${id}-${PARENT}-01` } });
    await spanOf(rx, id);
    assert.ok(rx.requests.some((h) => h['x-api-key'] === 'k-123'));
    assert.equal((await gw.reload(config(1))).ok, true);
  });
});

describe('tracing: HTTP/2 (gRPC) and WebSocket upgrades carry traceparent', () => {
  let g: GrpcTestServer;
  let rx: OtlpReceiver;
  let wsServer: http.Server;
  let wss: WebSocketServer;
  const wsHeaders: http.IncomingHttpHeaders[] = [];
  let gw: TestGateway;

  before(async () => {
    g = await startGrpcServer({ name: 'g' });
    rx = await startOtlpReceiver();
    wsServer = http.createServer();
    wss = new WebSocketServer({ server: wsServer });
    wss.on('connection', (ws, req) => {
      wsHeaders.push(req.headers);
      ws.on('message', (m) => ws.send(m));
    });
    await new Promise<void>((resolve) => wsServer.listen(0, '127.0.0.1', resolve));
    gw = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [
        { name: 'grpc', protocol: 'h2c', targets: [{ address: g.address }] },
        { name: 'ws', targets: [{ address: `127.0.0.1:${(wsServer.address() as AddressInfo).port}` }] },
      ],
      routes: [
        { name: 'echo', listener: 'web', match: { pathPrefix: '/echo.Echo/' }, upstream: 'grpc' },
        { name: 'socket', listener: 'web', match: { pathPrefix: '/ws' }, upstream: 'ws' },
      ],
      tracing: { sample: 0, otlp: { endpoint: rx.endpoint } },
    });
  });

  after(async () => {
    await gw.close();
    for (const c of wss.clients) c.terminate();
    wss.close();
    await new Promise<void>((resolve) => wsServer.close(() => resolve()));
    await Promise.all([g.close(), rx.close()]);
  });

  test('gRPC: the upstream call carries the trace with the span the gateway exports', async () => {
    const id = traceId(0xabc);
    const client = grpcClient(new URL(gw.url()).host);
    try {
      const r = await unaryCall(client, echoMethods().UnaryEcho, { message: 'hi' }, { metadata: { traceparent: `00-${id}-${PARENT}-01`, tracestate: 'k=v' } });
      assert.deepEqual(r.responses, [{ message: 'hi' }]);
    } finally {
      client.close();
    }
    const call = g.callsTo('/echo.Echo/UnaryEcho').at(-1)!;
    const m = TRACEPARENT.exec(String(call.metadata.get('traceparent')[0]));
    assert.ok(m, 'the gRPC upstream received a traceparent');
    assert.equal(m[1], id);
    assert.equal(m[3], '01');
    assert.deepEqual(call.metadata.get('tracestate'), ['k=v']);
    const s = await spanOf(rx, id);
    assert.equal(s.spanId, m[2]);
    assert.equal(s.parentSpanId, PARENT);
    assert.equal(s.name, 'POST echo');
    assert.equal(s.attributes['network.protocol.version'], '2');
    assert.equal(s.attributes['rpc.grpc.status_code'], 0);
  });

  test('WebSocket: the upgrade request carries a traceparent; the session is exported when it ends', async () => {
    const id = traceId(0xdef);
    const ws = new WebSocket(`${gw.url().replace('http', 'ws')}/ws`, { headers: { traceparent: `00-${id}-${PARENT}-01` } });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.send('ping');
    await new Promise((resolve) => ws.once('message', resolve));
    ws.close();
    const m = TRACEPARENT.exec(String(wsHeaders.at(-1)!.traceparent));
    assert.ok(m, 'the WebSocket upstream received a traceparent');
    assert.equal(m[1], id);
    const s = await spanOf(rx, id);
    assert.equal(s.spanId, m[2]);
    assert.equal(s.name, 'GET socket');
    assert.equal(s.attributes['http.response.status_code'], 101);
  });
});

describe('tracing: a collector that is down or stuck never holds up traffic', () => {
  for (const kind of ['down', 'stuck'] as const) {
    test(`collector ${kind}: requests are answered, the stop completes, no credential is logged, no descriptor leaks`, async () => {
      const up = await startUpstream();
      const stuck = kind === 'stuck' ? await startOtlpReceiver({ hang: true }) : undefined;
      const endpoint = stuck?.endpoint ?? `http://127.0.0.1:${await freePort()}/v1/traces`;
      const logged: string[] = [];
      const logger = pino({ level: 'debug' }, new Writable({ write: (c: Buffer, _e, cb) => (logged.push(c.toString()), cb()) }));
      const baseline = openFds();
      const gw = await startGateway(
        { ...simpleConfig([up.address]), tracing: { sample: 1, otlp: { endpoint, headers: { authorization: 'Bearer very-secret-token' } } } },
        logger,
      );
      try {
        for (let i = 0; i < 20; i++) assert.equal((await send(gw.url(), { path: `/${i}` })).status, 200);
        if (stuck !== undefined) await waitFor(() => stuck.requests.length > 0, 'an export attempt at the stuck collector');
        // The exporter retries a refused connection until its 10 s export timeout: the failure is logged after that.
        else await waitFor(() => logged.some((l) => l.includes('spans could not be exported')), 'the export failure logged', 30_000);
      } finally {
        await gw.close();
        await up.close();
        await stuck?.close();
      }
      assert.ok(!logged.join('').includes('very-secret-token'), 'the collector headers are never logged');
      if (stuck !== undefined) assert.equal(stuck.requests[0]!.authorization, 'Bearer very-secret-token');
      await fdsSettle(baseline);
    });
  }
});

test('without tracing.otlp no OpenTelemetry SDK module is loaded; with it, the SDK is', () => {
  // A fresh process: starts a gateway, serves a request, then lists the CommonJS modules loaded (the SDK's packages are CommonJS).
  const script = `
    import { createRequire } from 'node:module';
    import http from 'node:http';
    const { startGateway, simpleConfig } = await import(${JSON.stringify(new URL('../helpers/gateway.js', import.meta.url).href)});
    const { startUpstream } = await import(${JSON.stringify(new URL('../helpers/upstream.js', import.meta.url).href)});
    const { send } = await import(${JSON.stringify(new URL('../helpers/http.js', import.meta.url).href)});
    const up = await startUpstream();
    const otlp = process.argv.at(-1) === 'on' ? { otlp: { endpoint: 'http://127.0.0.1:9/v1/traces' } } : {};
    const gw = await startGateway({ ...simpleConfig([up.address]), tracing: { sample: 1, ...otlp } });
    const r = await send(gw.url());
    // @opentelemetry/api is not the SDK: prom-client (metrics) loads that small facade itself.
    const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('@opentelemetry/') && !k.includes('@opentelemetry/api/'));
    await gw.close();
    await up.close();
    console.log(JSON.stringify({ status: r.status, traceparent: JSON.parse(r.body).headers.traceparent, loaded: loaded.length }));
  `;
  const run = (mode: string) => {
    const out = spawnSync(process.execPath, ['--input-type=module', '-e', script, mode], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(out.status, 0, out.stderr);
    return JSON.parse(out.stdout.split('\n').find((l) => l.startsWith('{"status"'))!) as { status: number; traceparent: string; loaded: number };
  };
  const off = run('off');
  assert.equal(off.status, 200);
  assert.match(off.traceparent, TRACEPARENT, 'propagation works without the SDK');
  assert.equal(off.loaded, 0);
  assert.ok(run('on').loaded > 0, 'the check sees the SDK when it is loaded');
});
