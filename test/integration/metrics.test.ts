// GET /metrics end to end: a real gateway with an admin API, a real HTTP
// upstream and a real TCP echo server; known traffic in, exact values out.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import http from 'node:http';
import { AggregatorRegistry } from 'prom-client';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { connect, echo, readAll, startTcpServer, type TcpServer } from '../helpers/tcp.js';
import { deadPort } from '../helpers/tcp.js';
import { openFds, fdsSettle } from '../helpers/fds.js';
import { waitFor } from '../helpers/wait.js';
import { validateConfig } from '../../src/config/load.js';
import { formatHostPort } from '../../src/net/address.js';

const TOKEN = 'metrics-test-admin-token';
const QUOTA_KEY = 'metrics-test-consumer-key-0001';

/** One sample line of the text exposition. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The text exposition, checked line by line: every line is a HELP, a TYPE or a sample of a declared family. */
interface Exposition {
  types: Map<string, string>;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\["\\\\n])*"`;
const SAMPLE_LINE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*)?\\})? (-?[0-9.e+-]+|\\+Inf|-Inf|NaN|Nan)$`);
const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"/g;

function parseExposition(text: string): Exposition {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# HELP (\S+) (.*)$/.exec(line);
    if (m !== null) continue;
    m = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (m !== null) {
      assert.ok(!types.has(m[1]!), `one TYPE line per family: ${m[1]}`);
      types.set(m[1]!, m[2]!);
      continue;
    }
    m = SAMPLE_LINE.exec(line);
    assert.ok(m !== null, `not an exposition line: ${JSON.stringify(line)}`);
    const name = m[1]!;
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(family), `sample of an undeclared family: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(LABEL_PAIR)) labels[k!] = v!.replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
    samples.push({ name, labels, value: m[3] === 'Nan' ? NaN : Number(m[3]) });
  }
  return { types, samples };
}

/** The value of the one sample named `name` whose labels include `labels`; undefined when none. */
function value(e: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}

describe('GET /metrics', () => {
  let up: TestUpstream;
  let tcp: TcpServer;
  let gw: TestGateway;
  let dead: number;
  let udpEcho: dgram.Socket;
  let doc: any;
  let fdsAtStart = 0;
  const admin = () => `http://${formatHostPort(gw.gateway.adminAddress()!)}`;

  function scrapeRaw(method = 'GET', token: string | null = TOKEN): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
    return send(admin(), { method, path: '/metrics', headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  }

  async function scrape(): Promise<Exposition> {
    const r = await scrapeRaw();
    assert.equal(r.status, 200, r.body);
    return parseExposition(r.body);
  }

  before(async () => {
    fdsAtStart = openFds();
    // Fixed bodies, so the byte counters have exact expected values.
    up = await startUpstream((req, res) => {
      const missing = req.url!.includes('missing');
      const body = missing ? 'nope\n' : 'ok\n';
      res.writeHead(missing ? 404 : 200, { 'content-type': 'text/plain', 'content-length': body.length });
      res.end(body);
    });
    tcp = await startTcpServer(echo);
    udpEcho = dgram.createSocket('udp4');
    udpEcho.on('message', (msg, rinfo) => udpEcho.send(msg, rinfo.port, rinfo.address));
    await new Promise<void>((r) => udpEcho.bind(0, '127.0.0.1', r));
    dead = await deadPort();
    doc = {
      admin: { listen: '127.0.0.1:0', token: TOKEN },
      listeners: [
        { name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false },
        { name: 'tcp', protocol: 'tcp', listen: '127.0.0.1:0', accessLog: false, upstream: 'echo' },
        { name: 'dns', protocol: 'udp', listen: '127.0.0.1:0', accessLog: false, upstream: 'dnsup', idleTimeout: '100ms' },
      ],
      upstreams: [
        // A drained target (weight 0) is not healthy: the balancer never picks it.
        { name: 'up', targets: [{ address: up.address }, { address: `127.0.0.1:${dead}`, weight: 0 }], circuitBreaker: {} },
        { name: 'echo', targets: [{ address: tcp.address }] },
        { name: 'dnsup', targets: [{ address: `127.0.0.1:${(udpEcho.address()).port}` }] },
      ],
      routes: [
        { name: 'api', listener: 'web', upstream: 'up', match: { pathPrefix: '/api' } },
        { name: 'limited', listener: 'web', upstream: 'up', match: { pathPrefix: '/limited' }, middlewares: [{ 'rate-limit': { rate: 0.001, burst: 1 } }] },
        { name: 'quota', listener: 'web', upstream: 'up', match: { pathPrefix: '/quota' }, middlewares: [{ 'key-auth': {} }] },
      ],
      // One request a day: the second is 429 QUOTA_EXCEEDED (consumer-quota, added after key-auth).
      consumers: [{ id: 'quota-consumer', keys: [QUOTA_KEY], qpd: 1 }],
    };
    gw = await startGateway(doc);
  });

  after(async () => {
    await gw.close();
    await up.close();
    await tcp.close();
    await new Promise<void>((r) => udpEcho.close(() => r()));
    await fdsSettle(fdsAtStart, 4);
  });

  test('the admin token guards it; only GET and HEAD; the content type is the registry\'s', async () => {
    assert.equal((await scrapeRaw('GET', null)).status, 401);
    assert.equal((await scrapeRaw('GET', 'wrong')).status, 401);
    const post = await scrapeRaw('POST');
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    const ok = await scrapeRaw();
    assert.equal(ok.headers['content-type'], gw.gateway.metrics.registry.contentType);
    assert.equal(ok.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    const head = await scrapeRaw('HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });

  test('known HTTP traffic gives exact request, byte, latency and rejection values', async () => {
    for (let i = 0; i < 6; i++) assert.equal((await send(gw.url(), { path: '/api/x' })).status, 200);
    assert.equal((await send(gw.url(), { method: 'POST', path: '/api/x', body: 'hello world' })).status, 200);
    for (let i = 0; i < 3; i++) assert.equal((await send(gw.url(), { path: '/api/missing' })).status, 404);
    for (let i = 0; i < 2; i++) assert.equal((await send(gw.url(), { path: '/nowhere' })).status, 404);
    assert.equal((await send(gw.url(), { path: '/limited/a' })).status, 200);
    assert.equal((await send(gw.url(), { path: '/limited/a' })).status, 429);
    assert.equal((await send(gw.url(), { path: '/quota/a', headers: { 'x-api-key': QUOTA_KEY } })).status, 200);
    const overQuota = await send(gw.url(), { path: '/quota/a', headers: { 'x-api-key': QUOTA_KEY } });
    assert.equal(overQuota.status, 429);
    assert.equal(JSON.parse(overQuota.body).code, 'QUOTA_EXCEEDED');

    const e = await scrape();
    const api = { listener: 'web', route: 'api', upstream: 'up' };
    assert.equal(e.types.get('portico_http_requests_total'), 'counter');
    assert.equal(value(e, 'portico_http_requests_total', { ...api, status_class: '2xx' }), 7);
    assert.equal(value(e, 'portico_http_requests_total', { ...api, status_class: '4xx' }), 3);
    assert.equal(value(e, 'portico_http_requests_total', { ...api, status_class: '5xx' }), undefined, 'no series for a class never seen');
    // No route matched: route and upstream are empty, which the exposition writes as "".
    assert.equal(value(e, 'portico_http_requests_total', { listener: 'web', route: '', upstream: '', status_class: '4xx' }), 2);
    assert.equal(value(e, 'portico_http_requests_total', { route: 'limited', status_class: '2xx' }), 1);
    assert.equal(value(e, 'portico_http_requests_total', { route: 'limited', status_class: '4xx' }), 1);

    assert.equal(value(e, 'portico_http_received_bytes_total', api), 'hello world'.length);
    assert.equal(value(e, 'portico_http_sent_bytes_total', api), 7 * 'ok\n'.length + 3 * 'nope\n'.length);

    assert.equal(value(e, 'portico_http_limit_rejections_total', { listener: 'web', route: 'limited', middleware: 'rate-limit' }), 1);
    assert.equal(value(e, 'portico_http_limit_rejections_total', { listener: 'web', route: 'quota', middleware: 'consumer-quota' }), 1);
    assert.equal(value(e, 'portico_http_limit_rejections_total', { route: 'quota', middleware: 'rate-limit' }), undefined);
    assert.equal(value(e, 'portico_http_limit_rejections_total', { route: 'api' }), undefined);
    assert.doesNotMatch(await (await scrapeRaw()).body, /quota-consumer|metrics-test-consumer-key/, 'no consumer id or key in a label');

    assert.equal(e.types.get('portico_http_request_duration_seconds'), 'histogram');
    assertHistogram(e, 'portico_http_request_duration_seconds', api, 10);
    assertHistogram(e, 'portico_http_upstream_response_duration_seconds', api, 10);
    assertHistogram(e, 'portico_http_request_duration_seconds', { listener: 'web', route: '', upstream: '' }, 2);
    // A request that never went upstream has no upstream latency: the no-route series has none.
    assert.equal(value(e, 'portico_http_upstream_response_duration_seconds_count', { route: '' }), undefined);
    // The rejected request did not go upstream either: one upstream response for the limited route.
    assertHistogram(e, 'portico_http_upstream_response_duration_seconds', { route: 'limited' }, 1);
  });

  test('target health and breaker state are read from the live state', async () => {
    const e = await scrape();
    assert.equal(value(e, 'portico_upstream_target_healthy', { upstream: 'up', target: up.address }), 1);
    assert.equal(value(e, 'portico_upstream_target_healthy', { upstream: 'up', target: `127.0.0.1:${dead}` }), 0);
    assert.equal(value(e, 'portico_upstream_target_healthy', { upstream: 'echo', target: tcp.address }), 1);
    assert.equal(value(e, 'portico_upstream_circuit_breaker_state', { upstream: 'up', state: 'closed' }), 1);
    assert.equal(value(e, 'portico_upstream_circuit_breaker_state', { upstream: 'up', state: 'open' }), 0);
    assert.equal(value(e, 'portico_upstream_circuit_breaker_state', { upstream: 'up', state: 'half-open' }), 0);
    assert.equal(value(e, 'portico_upstream_circuit_breaker_state', { upstream: 'echo' }), undefined, 'no breaker configured: no series');
    assert.equal(value(e, 'portico_tunnel_service_codes'), 0);
    // Process metrics, prefixed.
    assert.equal(e.types.get('portico_process_cpu_user_seconds_total'), 'counter');
    assert.ok(value(e, 'portico_process_start_time_seconds')! > 0);
  });

  test('an L4 connection: open while it lasts, then counted with its bytes', async () => {
    const socket = await connect(gw.gateway.listenerAddress('tcp')!.port);
    const payload = Buffer.from('0123456789abcdef'); // 16 bytes each way
    const echoed = readAll(socket);
    socket.write(payload);
    await waitFor(async () => value(await scrape(), 'portico_open_connections', { listener: 'tcp', kind: 'tcp' }) === 1 || undefined, 'the connection counted as open');
    socket.end();
    assert.deepEqual(await echoed, payload);
    const e = await waitFor(async () => {
      const x = await scrape();
      return value(x, 'portico_l4_connections_total', { listener: 'tcp', upstream: 'echo', code: 'ok' }) === 1 ? x : undefined;
    }, 'the connection counted once ended');
    assert.equal(value(e, 'portico_l4_received_bytes_total', { listener: 'tcp', upstream: 'echo' }), 16);
    assert.equal(value(e, 'portico_l4_sent_bytes_total', { listener: 'tcp', upstream: 'echo' }), 16);
    assert.equal(value(e, 'portico_open_connections', { listener: 'tcp', kind: 'tcp' }), undefined);
  });

  test('a UDP session: counted with its bytes when it ends', async () => {
    const client = dgram.createSocket('udp4');
    try {
      const reply = new Promise<Buffer>((r) => client.once('message', r));
      client.send(Buffer.from('12345'), gw.gateway.listenerAddress('dns')!.port, '127.0.0.1');
      assert.equal((await reply).toString(), '12345');
      // The session ends after its idleTimeout (100 ms) without traffic.
      const e = await waitFor(async () => {
        const x = await scrape();
        return value(x, 'portico_l4_connections_total', { listener: 'dns', upstream: 'dnsup', code: 'ok' }) === 1 ? x : undefined;
      }, 'the UDP session counted once ended');
      assert.equal(value(e, 'portico_l4_received_bytes_total', { listener: 'dns', upstream: 'dnsup' }), 5);
      assert.equal(value(e, 'portico_l4_sent_bytes_total', { listener: 'dns', upstream: 'dnsup' }), 5);
    } finally {
      client.close();
    }
  });

  test('client-chosen paths, hosts and addresses create no series', async () => {
    const before = await scrape();
    for (let i = 0; i < 20; i++) {
      const tag = `zz${Math.random().toString(36).slice(2)}`;
      await send(gw.url(), { path: i % 2 === 0 ? `/api/${tag}` : `/${tag}`, headers: { host: `${tag}.example`, 'x-forwarded-for': `10.9.${i}.1`, 'x-api-key': tag } });
    }
    const afterText = (await scrapeRaw()).body;
    const afterScrape = parseExposition(afterText);
    const http = (e: Exposition) => e.samples.filter((s) => s.name.startsWith('portico_http_')).map((s) => `${s.name}${JSON.stringify(s.labels)}`).sort();
    assert.deepEqual(http(afterScrape), http(before), 'the same HTTP series, with new values');
    assert.doesNotMatch(afterText, /zz[0-9a-z]+|10\.9\./, 'no client value appears in any label');
    assert.equal(value(afterScrape, 'portico_http_requests_total', { route: 'api', status_class: '2xx' }), 7 + 10);
    assert.equal(value(afterScrape, 'portico_http_requests_total', { route: '', status_class: '4xx' }), 2 + 10);
  });

  test('the JSON form aggregates across workers like the text (AggregatorRegistry.aggregate)', async () => {
    const json = await gw.gateway.metrics.registry.getMetricsAsJSON();
    const aggregated = AggregatorRegistry.aggregate([json, json]);
    const e = parseExposition(await aggregated.metrics());
    const single = await scrape();
    const api2xx = { route: 'api', status_class: '2xx' };
    assert.equal(value(e, 'portico_http_requests_total', api2xx), 2 * value(single, 'portico_http_requests_total', api2xx)!);
    const bucket = { route: 'api', le: '+Inf' };
    assert.equal(value(e, 'portico_http_request_duration_seconds_bucket', bucket), 2 * value(single, 'portico_http_request_duration_seconds_bucket', bucket)!);
    assert.equal(value(e, 'portico_upstream_target_healthy', { upstream: 'up', target: up.address }), 1, 'health is the minimum across workers');
    assert.equal(value(e, 'portico_config_reloads_total', { result: 'ok' }), value(single, 'portico_config_reloads_total', { result: 'ok' }), 'reloads: the maximum across workers');
  });

  test('config reloads are counted by result; a removed route\'s series go away', async () => {
    let e = await scrape();
    assert.equal(value(e, 'portico_config_reloads_total', { result: 'ok' }), 1, 'the first apply counts');
    assert.equal(value(e, 'portico_config_reloads_total', { result: 'error' }), 0);
    assert.equal(value(e, 'portico_config_last_reload_successful'), 1);

    // A reload that drops the `limited` route and the `dns` listener.
    const next = { ...doc, listeners: doc.listeners.filter((l: { name: string }) => l.name !== 'dns'), routes: doc.routes.filter((r: { name: string }) => r.name !== 'limited') };
    assert.equal((await gw.reload(next)).ok, true);
    // A config that validates but cannot be applied: its listener's port is taken.
    const bad = validateConfig({ ...next, listeners: [...next.listeners, { name: 'taken', protocol: 'http', listen: up.address, accessLog: false }] });
    assert.ok(bad.ok);
    const refused = await gw.gateway.apply(bad.config);
    assert.equal(refused.ok, false);

    e = await scrape();
    assert.equal(value(e, 'portico_config_reloads_total', { result: 'ok' }), 2);
    assert.equal(value(e, 'portico_config_reloads_total', { result: 'error' }), 1);
    assert.equal(value(e, 'portico_config_last_reload_successful'), 0);
    assert.ok(value(e, 'portico_config_last_reload_timestamp_seconds')! * 1000 <= Date.now());
    assert.equal(e.samples.filter((s) => s.labels.route === 'limited').length, 0, 'the removed route has no series left');
    assert.equal(e.samples.filter((s) => s.labels.listener === 'dns').length, 0, 'the removed listener has no series left');
    assert.equal(value(e, 'portico_l4_connections_total', { listener: 'tcp', code: 'ok' }), 1, 'a kept listener keeps its series');
    assert.equal(value(e, 'portico_http_requests_total', { route: 'api', status_class: '2xx' }), 17, 'a kept route keeps counting');
    // Still serving on the kept route after the refused config.
    assert.equal((await send(gw.url(), { path: '/api/x' })).status, 200);
    assert.equal(value(await scrape(), 'portico_http_requests_total', { route: 'api', status_class: '2xx' }), 18);
  });

  test('scrapes leave no descriptor behind', async () => {
    const baseline = openFds();
    for (let i = 0; i < 10; i++) await scrape();
    await fdsSettle(baseline, 2);
  });
});

/** A histogram series: cumulative buckets, +Inf equal to _count, and `count` observations. */
function assertHistogram(e: Exposition, name: string, labels: Record<string, string>, count: number): void {
  const buckets = e.samples.filter((s) => s.name === `${name}_bucket` && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(buckets.length, 14, `${name}: 13 bounds and +Inf`);
  for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, `${name}: cumulative buckets`);
  assert.equal(buckets.at(-1)!.labels.le, '+Inf');
  assert.equal(buckets.at(-1)!.value, count);
  assert.equal(value(e, `${name}_count`, labels), count);
  assert.ok(value(e, `${name}_sum`, labels)! > 0, `${name}: a positive sum of seconds`);
}
