// The admin API changing a gateway of `workers: 2`, through the real binary:
// a route created, patched and deleted through worker 0's admin API serves
// (then stops serving) on connections that landed on either worker; the
// metrics count the traffic of both; the file is written back once.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { startCli, stopAfter, tempDir } from '../helpers/cli.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { freePort, startUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

function call(admin: string, method: string, p: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; json: any; text: string }> {
  const u = new URL(admin);
  const text = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path: p, agent: false, headers: { ...(text !== undefined ? { 'content-type': 'application/json' } : {}), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const t = Buffer.concat(chunks).toString();
        let json: unknown;
        try {
          json = JSON.parse(t);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode!, headers: res.headers, json, text: t });
      });
    });
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error('admin request timeout')));
    req.end(text);
  });
}

/** A kept-alive connection to the listener, and one request at a time over it. */
class Held {
  readonly socket: net.Socket;
  private buf = Buffer.alloc(0);
  private waiting: ((r: { status: number; body: string }) => void) | undefined;
  constructor(port: number) {
    this.socket = net.connect({ host: '127.0.0.1', port });
    this.socket.on('error', () => undefined);
    this.socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0 || this.waiting === undefined) return;
      const head = this.buf.subarray(0, end).toString();
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? NaN);
      if (!(this.buf.length >= end + 4 + length)) return;
      const r = { status: Number(head.split(' ')[1]), body: this.buf.subarray(end + 4, end + 4 + length).toString() };
      this.buf = this.buf.subarray(end + 4 + length);
      const w = this.waiting;
      this.waiting = undefined;
      w(r);
    });
  }
  get(p: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no response to ${p} within 10 s`)), 10_000);
      this.waiting = (r) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.socket.write(`GET ${p} HTTP/1.1\r\nHost: admin-workers.test\r\n\r\n`);
    });
  }
}

const FILE = (web: number, admin: number) => `# two workers; routes are added through the admin API
workers: 2
shutdownTimeout: 2s
admin:
  listen: 127.0.0.1:${admin}
listeners:
  - name: web
    protocol: http
    listen: 127.0.0.1:${web}
    accessLog: false
routes:
  - { name: hello, listener: web, match: { path: / }, respond: { body: v1 } }   # the first route
`;

async function sumMetric(admin: string, name: string, labels: RegExp): Promise<number> {
  const r = await call(admin, 'GET', '/metrics');
  assert.equal(r.status, 200, r.text);
  let total = 0;
  for (const line of r.text.split('\n')) if (line.startsWith(`${name}{`) && labels.test(line)) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  return total;
}

test('workers: 2 — a route added, patched and deleted through the admin API serves on connections of either worker', async (t: TestContext) => {
  const upstream = await startUpstream((req, res) => res.end(`up ${req.url}`));
  t.after(() => upstream.close());
  const fdsBefore = openFds();
  const dir = tempDir(t, 'admin-api-workers');
  const ports = { web: await freePort(), admin: await freePort() };
  const file = path.join(dir, 'portico.yaml');
  fs.writeFileSync(file, FILE(ports.web, ports.admin));
  const gw = await startCli(file);
  stopAfter(t, gw.child, gw.exited, 10_000);
  const admin = gw.admin!;

  // Connections opened before the change, spread over both workers (identified through /connections).
  const held = Array.from({ length: 16 }, () => new Held(ports.web));
  t.after(() => held.forEach((h) => h.socket.destroy()));
  for (const h of held) assert.equal((await h.get('/')).body, 'v1');
  const workerOf = await waitFor(async () => {
    const list = (await call(admin, 'GET', '/connections?kind=http1')).json.connections as { id: string; peer: string }[];
    const found = held.map((h) => list.find((e) => e.peer === `127.0.0.1:${h.socket.localPort}`));
    return found.every((e) => e !== undefined) ? found.map((e) => Number(e!.id.split('-')[0])) : undefined;
  }, 'every held connection listed');
  assert.deepEqual(new Set(workerOf), new Set([0, 1]), 'the held connections landed on both workers');

  // Create: every held connection, whichever worker it is on, is served by the new route right after the 201.
  assert.equal((await call(admin, 'POST', '/upstreams', { name: 'svc', targets: [{ address: upstream.address }] })).status, 201);
  const created = await call(admin, 'POST', '/routes', { name: 'api', listener: 'web', upstream: 'svc', match: { pathPrefix: '/api' } });
  assert.equal(created.status, 201, created.text);
  for (const h of held) assert.deepEqual(await h.get('/api/a'), { status: 200, body: 'up /api/a' });

  // Both workers' requests are counted by the aggregated metrics.
  assert.equal(await sumMetric(admin, 'portico_http_requests_total', /route="api"/), 16);
  assert.equal(await sumMetric(admin, 'portico_http_requests_total', /route="hello"/), 16);

  // Patch, then delete: both workers follow.
  assert.equal((await call(admin, 'PATCH', '/routes/api', { match: { pathPrefix: '/v2' } }, { 'content-type': 'application/merge-patch+json' })).status, 200);
  for (const h of held) {
    assert.deepEqual(await h.get('/v2/b'), { status: 200, body: 'up /v2/b' });
    assert.equal((await h.get('/api/a')).status, 404);
  }
  const status = await call(admin, 'GET', '/status');
  const versions = (status.json.workers as { version: number }[]).map((w) => w.version);
  assert.equal(new Set(versions).size, 1, `every worker runs the same snapshot version (${versions.join(', ')})`);
  assert.equal((await call(admin, 'DELETE', '/routes/api')).status, 200);
  for (const h of held) assert.equal((await h.get('/v2/b')).status, 404);

  // A refused change (a bad field) leaves both workers as they were.
  const bad = await call(admin, 'PUT', '/routes/hello', { listener: 'web', respond: { status: 99 } });
  assert.equal(bad.status, 400);
  for (const h of held) assert.equal((await h.get('/')).body, 'v1');

  // The file holds the change once, with its comments.
  const text = fs.readFileSync(file, 'utf8');
  assert.match(text, /^# two workers; routes are added through the admin API/);
  assert.match(text, /# the first route/);
  assert.match(text, /name: svc/);
  assert.doesNotMatch(text, /name: api/);

  for (const h of held) h.socket.destroy();
  assert.equal(await gw.stop('SIGTERM'), 0);
  await fdsSettle(fdsBefore);
});
