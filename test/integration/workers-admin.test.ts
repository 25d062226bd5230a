// The admin API with `workers: 2`, through the real binary: worker 0 serves it
// and answers for both workers over node:cluster IPC (the primary relays).
// Which worker holds a connection is read from GET /connections itself: its
// entry's id starts with the worker index, and its peer is the client's port.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { stringify } from 'yaml';
import { startCli, stopAfter, tempDir, type Running } from '../helpers/cli.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { freePort, startUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

// ---------------------------------------------------------------- clients

/** One admin request on its own connection: status and parsed JSON body (raw text when not JSON). */
function call(admin: string, method: string, p: string, token?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: any; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(admin + p, { method, agent: false, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c) => (text += c));
      res.on('end', () => {
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON (GET /metrics)
        }
        resolve({ status: res.statusCode!, headers: res.headers, body, text });
      });
    });
    req.setTimeout(20_000, () => req.destroy(new Error('admin request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** GET over a fresh connection (agent: false): the body. */
function get(port: number, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
  });
}

interface Held {
  socket: net.Socket;
  body: string;
}

/** One GET `p` over a new connection that stays open afterwards (HTTP/1.1 keep-alive), with its response body. */
function getAndHold(port: number, p: string): Promise<Held> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(new Error('no response within 10 s')), 10_000);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('connect', () => socket.write(`GET ${p} HTTP/1.1\r\nHost: workers-admin.test\r\n\r\n`));
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(buf.subarray(0, end).toString())?.[1] ?? NaN);
      if (!(buf.length >= end + 4 + length)) return;
      clearTimeout(timer);
      socket.removeAllListeners('data');
      socket.on('error', () => undefined);
      resolve({ socket, body: buf.subarray(end + 4, end + 4 + length).toString() });
    });
  });
}

interface ConnectionEntry {
  id: string;
  kind: string;
  peer: string;
}

/**
 * Opens `n` connections at once, each answered for `p`, and finds each one's
 * entry in GET /connections (by the client's port): the worker is the id's prefix.
 * The connections stay open; the caller closes them.
 */
async function holdAndAttribute(port: number, admin: string, n: number, p: string): Promise<{ held: Held; entry: ConnectionEntry; worker: number }[]> {
  const held = await Promise.all(Array.from({ length: n }, () => getAndHold(port, p)));
  const listed = await waitFor(async () => {
    const r = await call(admin, 'GET', '/connections?kind=http1');
    assert.equal(r.status, 200, r.text);
    const entries = r.body.connections as ConnectionEntry[];
    const found = held.map((h) => entries.find((e) => e.peer === `127.0.0.1:${h.socket.localPort}`));
    return found.every((e) => e !== undefined) ? (found as ConnectionEntry[]) : undefined;
  }, `every held connection listed in /connections`);
  return held.map((h, i) => ({ held: h, entry: listed[i]!, worker: Number(listed[i]!.id.split('-')[0]) }));
}

function closed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    socket.once('close', () => resolve());
    socket.resume();
  });
}

// ---------------------------------------------------------------- fixtures

function config(ports: { web: number; admin: number }, upstream: string, routes: unknown[], workers = 2, level = 'info') {
  return {
    workers,
    shutdownTimeout: '2s',
    log: { level },
    admin: { listen: `127.0.0.1:${ports.admin}` },
    listeners: [{ name: 'web', protocol: 'http', listen: `127.0.0.1:${ports.web}`, accessLog: false }],
    upstreams: [{ name: 'backend', targets: [{ address: upstream }] }],
    routes: [{ name: 'proxied', listener: 'web', match: { pathPrefix: '/up' }, upstream: 'backend' }, { name: 'hello', listener: 'web', match: { path: '/' }, respond: { body: 'v1' } }, ...routes],
  };
}

const FRESH_ROUTE = { name: 'fresh', listener: 'web', match: { path: '/new' }, respond: { body: 'fresh' } };

async function start(t: TestContext, file: string): Promise<{ gw: Running; admin: string; pids: number[] }> {
  const gw = await startCli(file);
  stopAfter(t, gw.child, gw.exited, 10_000);
  const line = gw.logs.find((l) => l.msg === 'portico started')!;
  return { gw, admin: gw.admin!, pids: (line.workerPids as number[] | undefined) ?? [gw.child.pid!] };
}

/** Whether `pid` runs (a zombie not yet reaped counts as exited). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- tests

test('workers: 2 — /stats, /status, /connections, /metrics and POST /config/reload answer for both workers', async (t) => {
  const upstream = await startUpstream();
  t.after(() => upstream.close());
  const fdsBefore = openFds();
  const dir = tempDir(t, 'workers-admin');
  const ports = { web: await freePort(), admin: await freePort() };
  const file = path.join(dir, 'portico.yaml');
  fs.writeFileSync(file, stringify(config(ports, upstream.address, [])));
  const { gw, admin, pids } = await start(t, file);
  assert.equal(pids.length, 2);

  // 40 requests, each over a fresh connection (round-robin hand-off or SO_REUSEPORT spreads them).
  const SENT = 40;
  for (let i = 0; i < SENT; i++) {
    const r = await get(ports.web, i % 2 === 0 ? '/' : '/up/echo');
    assert.equal(r.status, 200);
  }

  // Held connections: both workers serve some, and /connections lists both workers' entries.
  const held = await holdAndAttribute(ports.web, admin, 16, '/');
  assert.deepEqual(new Set(held.map((h) => h.held.body)), new Set(['v1']));
  assert.deepEqual(new Set(held.map((h) => h.worker)), new Set([0, 1]), 'connections not spread over both workers');

  // /stats: every series summed over both workers (the 16 held requests included).
  const stats = await waitFor(async () => {
    const r = await call(admin, 'GET', '/stats');
    assert.equal(r.status, 200, r.text);
    const total = (r.body.route.hello?.requests ?? 0) + (r.body.route.proxied?.requests ?? 0);
    return total === SENT + 16 ? r.body : undefined;
  }, '/stats to count every request');
  assert.equal(stats.route.hello.requests, SENT / 2 + 16);
  assert.equal(stats.route.proxied.requests, SENT / 2);
  assert.equal(stats.upstream.backend.requests, SENT / 2);
  assert.equal(stats.target[upstream.address].requests, SENT / 2);
  assert.equal(stats.route.hello.statusClasses[2], SENT / 2 + 16);
  assert.equal(
    stats.route.hello.latency.counts.reduce((a: number, b: number) => a + b, 0),
    SENT / 2 + 16,
  );
  assert.deepEqual(
    stats.workers.map((w: { index: number; pid: number; ok: boolean }) => [w.index, w.pid, w.ok]),
    [
      [0, pids[0], true],
      [1, pids[1], true],
    ],
  );
  // The upstream saw exactly the proxied requests.
  assert.equal(upstream.received.length, SENT / 2);

  // /status: the usual shape, both workers, connections summed, target health with each worker's view.
  const status = await call(admin, 'GET', '/status');
  assert.equal(status.status, 200, status.text);
  assert.deepEqual(status.body.workers, [
    { index: 0, pid: pids[0], version: 1 },
    { index: 1, pid: pids[1], version: 1 },
  ]);
  assert.equal(status.body.version, 1);
  assert.equal(status.body.listeners[0].name, 'web');
  assert.equal(status.body.listeners[0].connections, 16);
  const target = status.body.upstreams[0].targets[0];
  assert.equal(target.address, upstream.address);
  assert.equal(target.healthy, true);
  assert.deepEqual(
    target.workers.map((w: { index: number; healthy: boolean }) => [w.index, w.healthy]),
    [
      [0, true],
      [1, true],
    ],
  );

  // /metrics: every worker's registry aggregated into one exposition: a valid text format where each
  // series appears once (both workers' samples merged, not listed one after the other).
  const metrics = await call(admin, 'GET', '/metrics');
  assert.equal(metrics.status, 200, metrics.text);
  assert.match(String(metrics.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  const samples = metrics.text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  for (const line of samples) assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/, line);
  const series = samples.map((l) => l.slice(0, l.lastIndexOf(' ')));
  assert.equal(new Set(series).size, series.length, 'a series listed twice: not aggregated');

  // DELETE /connections/<1-…> goes to worker 1 and closes that connection; the others stay open.
  const victim = held.find((h) => h.worker === 1)!;
  const kept = held.find((h) => h.worker === 0)!;
  const del = await call(admin, 'DELETE', `/connections/${victim.entry.id}`);
  assert.equal(del.status, 202, del.text);
  assert.deepEqual(del.body, { id: victim.entry.id, status: 'closing' });
  await closed(victim.held.socket);
  assert.equal(kept.held.socket.destroyed, false);
  const after = await waitFor(async () => {
    const ids = ((await call(admin, 'GET', '/connections')).body.connections as ConnectionEntry[]).map((c) => c.id);
    return ids.includes(victim.entry.id) ? undefined : ids;
  }, 'the closed entry to leave /connections');
  assert.ok(after.includes(kept.entry.id));
  // Ids of no worker, and unknown ids of a worker: 404.
  assert.equal((await call(admin, 'DELETE', '/connections/7-1')).status, 404);
  assert.equal((await call(admin, 'DELETE', '/connections/1-zzzzzz')).status, 404);
  assert.equal((await call(admin, 'DELETE', '/connections/nonsense')).status, 404);
  for (const h of held) h.held.socket.destroy();

  // POST /config/reload after editing the file: both workers apply it, and the new route serves on either.
  assert.equal((await get(ports.web, '/new')).status, 404);
  fs.writeFileSync(file, stringify(config(ports, upstream.address, [FRESH_ROUTE])));
  assert.equal((await call(admin, 'GET', '/config/reload')).status, 405);
  const reload = await call(admin, 'POST', '/config/reload');
  assert.equal(reload.status, 200, reload.text);
  assert.equal(reload.body.version, 2);
  assert.match(reload.body.revision, /^[0-9a-f]{16}$/);
  assert.deepEqual(
    reload.body.workers.map((w: { index: number; ok: boolean; version: number; revision: string }) => [w.index, w.ok, w.version, w.revision]),
    [
      [0, true, 2, reload.body.revision],
      [1, true, 2, reload.body.revision],
    ],
  );
  const fresh = await holdAndAttribute(ports.web, admin, 16, '/new');
  assert.deepEqual(new Set(fresh.map((h) => h.held.body)), new Set(['fresh']));
  assert.deepEqual(new Set(fresh.map((h) => h.worker)), new Set([0, 1]));
  for (const h of fresh) h.held.socket.destroy();

  // A bad file: 409 APPLY_FAILED with each worker's reason, and both keep serving the running config.
  fs.writeFileSync(file, stringify({ ...config(ports, upstream.address, [FRESH_ROUTE]), routes: [{ name: 'broken', listener: 'nowhere', respond: { body: 'x' } }] }));
  const refused = await call(admin, 'POST', '/config/reload');
  assert.equal(refused.status, 409, refused.text);
  assert.equal(refused.body.code, 'APPLY_FAILED');
  assert.match(refused.body.error, /not applied everywhere/);
  assert.deepEqual(
    refused.body.workers.map((w: { index: number; ok: boolean }) => [w.index, w.ok]),
    [
      [0, false],
      [1, false],
    ],
  );
  for (const w of refused.body.workers) assert.match(w.error, /nowhere/);
  const still = await holdAndAttribute(ports.web, admin, 16, '/new');
  assert.deepEqual(new Set(still.map((h) => h.held.body)), new Set(['fresh']));
  assert.deepEqual(new Set(still.map((h) => h.worker)), new Set([0, 1]));
  for (const h of still) h.held.socket.destroy();
  assert.deepEqual(
    (await call(admin, 'GET', '/status')).body.workers.map((w: { version: number }) => w.version),
    [2, 2],
  );

  assert.equal(await gw.stop('SIGTERM'), 0);
  for (const pid of pids) await waitFor(() => !alive(pid), `worker ${pid} to exit`);
  await upstream.close();
  await fdsSettle(fdsBefore);
});

test('workers: 2 — a worker that does not answer is reported missing after the bounded wait; one that exits mid-ask at once', async (t) => {
  const upstream = await startUpstream();
  t.after(() => upstream.close());
  const fdsBefore = openFds();
  const dir = tempDir(t, 'workers-admin');
  const ports = { web: await freePort(), admin: await freePort() };
  const file = path.join(dir, 'portico.yaml');
  fs.writeFileSync(file, stringify(config(ports, upstream.address, [], 2, 'debug')));
  const { gw, admin, pids } = await start(t, file);
  const [, second] = pids as [number, number];
  t.after(() => {
    if (alive(second)) process.kill(second, 'SIGCONT');
  });

  // Stopped (SIGSTOP): its answer never comes within the wait; the view still answers, without it.
  process.kill(second, 'SIGSTOP');
  const stats = await call(admin, 'GET', '/stats');
  assert.equal(stats.status, 200, stats.text);
  assert.deepEqual(stats.body.workers[0], { index: 0, pid: pids[0], ok: true });
  assert.equal(stats.body.workers[1].ok, false);
  assert.match(stats.body.workers[1].error, /no answer within 5 s/);
  const del = await call(admin, 'DELETE', '/connections/1-1');
  assert.equal(del.status, 503, del.text);
  assert.equal(del.body.code, 'WORKER_UNAVAILABLE');

  // Stopped again, asked, then killed while the ask is open: reported as exited, without waiting out the bound.
  const pending = call(admin, 'GET', '/status');
  // The primary logs (debug) each ask it forwards: kill the worker once /status was forwarded to it.
  await waitFor(() => gw.logs.some((l) => l.msg === 'relaying an ask to the workers' && l.ask === 'status'), 'the /status ask to be relayed');
  process.kill(second, 'SIGKILL');
  const status = await pending;
  assert.equal(status.status, 200, status.text);
  assert.equal(status.body.workers[0].version, 1);
  assert.deepEqual(status.body.workers[1], { index: 1, pid: second, version: null, error: 'the worker exited before answering' });

  // The slot is refilled; the views are whole again.
  const replaced = await waitFor(() => gw.logs.find((l) => l.msg === 'worker replaced'), 'worker 1 to be replaced');
  const whole = await call(admin, 'GET', '/status');
  assert.deepEqual(
    whole.body.workers.map((w: { index: number; pid: number }) => [w.index, w.pid]),
    [
      [0, pids[0]],
      [1, replaced.workerPid],
    ],
  );

  assert.equal(await gw.stop('SIGTERM'), 0);
  await upstream.close();
  await fdsSettle(fdsBefore);
});

test('workers: 1 — POST /config/reload (admin token required) reloads the one process; a bad file is refused with 409', async (t) => {
  const upstream = await startUpstream();
  t.after(() => upstream.close());
  const fdsBefore = openFds();
  const dir = tempDir(t, 'workers-admin');
  const ports = { web: await freePort(), admin: await freePort() };
  const file = path.join(dir, 'portico.yaml');
  const TOKEN = 'workers-admin-test-token';
  const withToken = (routes: unknown[]) => {
    const c = config(ports, upstream.address, routes, 1);
    return { ...c, admin: { ...c.admin, token: TOKEN } };
  };
  fs.writeFileSync(file, stringify(withToken([])));
  const { gw, admin } = await start(t, file);

  fs.writeFileSync(file, stringify(withToken([FRESH_ROUTE])));
  // Without the token: 401, and nothing is reloaded.
  const anonymous = await call(admin, 'POST', '/config/reload');
  assert.equal(anonymous.status, 401, anonymous.text);
  assert.equal((await get(ports.web, '/new')).status, 404);
  const ok = await call(admin, 'POST', '/config/reload', TOKEN);
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(Object.keys(ok.body).sort(), ['revision', 'version', 'workers']);
  assert.equal(ok.body.version, 2);
  assert.deepEqual(ok.body.workers, [{ index: 0, ok: true, revision: ok.body.revision, version: 2 }]);
  assert.equal((await get(ports.web, '/new')).body, 'fresh');

  fs.writeFileSync(file, 'listeners: [');
  const bad = await call(admin, 'POST', '/config/reload', TOKEN);
  assert.equal(bad.status, 409, bad.text);
  assert.equal(bad.body.code, 'APPLY_FAILED');
  assert.equal(bad.body.workers[0].ok, false);
  assert.equal(bad.body.workers[0].version, 2);
  assert.match(bad.body.workers[0].error, /portico\.yaml:\d+:\d+/);
  assert.equal((await get(ports.web, '/new')).body, 'fresh');

  assert.equal(await gw.stop('SIGTERM'), 0);
  await upstream.close();
  await fdsSettle(fdsBefore);
});
