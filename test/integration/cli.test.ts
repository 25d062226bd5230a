// End-to-end tests of the `portico` CLI (dist/cli/main.js, built by `npm run build`):
// argument handling, `validate`, `start` with the shipped default config and
// with temp configs, SIGHUP / `watch` reloads and graceful SIGTERM.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { stringify } from 'yaml';
import { CLI, ROOT, runCli, startCli, stopAfter, tempDir, type Running } from '../helpers/cli.js';
import { freePort, startUpstream, type Handler, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

// ---------------------------------------------------------------- helpers

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One GET over a fresh connection (agent: false): no socket is shared between requests or tests. */
function get(base: string, p = '/'): Promise<Reply> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method: 'GET', path: p, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('response aborted')));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
    req.end();
  });
}

/** Resolves with the error code of a TCP connect attempt, or 'connected' (the socket is closed at once). */
function tryConnect(base: string): Promise<string> {
  const u = new URL(base);
  return new Promise((resolve) => {
    const s = net.connect({ host: u.hostname, port: Number(u.port) });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}


function writeYaml(file: string, doc: unknown): string {
  fs.writeFileSync(file, stringify(doc));
  return file;
}

async function upstream(t: TestContext, handler?: Handler): Promise<TestUpstream> {
  const up = handler ? await startUpstream(handler) : await startUpstream();
  t.after(() => up.close());
  return up;
}

async function cli(t: TestContext, config: string, env: NodeJS.ProcessEnv = {}): Promise<Running> {
  const running = await startCli(config, env);
  stopAfter(t, running.child, running.exited);
  return running;
}

/** Races `p` against a deadline; rejects with `what` when the deadline passes first. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/** A one-route proxy config: /api (prefix stripped) → upstream `up` with the given targets. */
function proxyConfig(targets: string[], extra: Record<string, unknown> = {}, listener: Record<string, unknown> = {}) {
  return {
    log: { level: 'info' },
    ...extra,
    listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false, ...listener }],
    upstreams: [{ name: 'up', targets: targets.map((address) => ({ address })), timeouts: { connect: '2s', response: '30s', idle: '5s' } }],
    routes: [{ name: 'api', listener: 'web', match: { pathPrefix: '/api' }, stripPrefix: true, upstream: 'up' }],
  };
}

// ---------------------------------------------------------------- tests

test('--help, --version and an unknown command', async () => {
  const help = await runCli(['--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /Usage:/);
  assert.match(help.stdout, /portico start/);
  assert.match(help.stdout, /portico validate/);

  const version = await runCli(['--version']);
  assert.equal(version.code, 0, version.stderr);
  assert.equal(VERSION, '0.1.0');
  assert.equal(version.stdout.trim(), `portico ${VERSION}`);

  const unknown = await runCli(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
});

test('validate: ok, every error as "path: message", a missing file', async (t) => {
  const dir = tempDir(t);
  const good = writeYaml(path.join(dir, 'good.yaml'), proxyConfig(['127.0.0.1:9']));
  const ok = await runCli(['validate', '--config', good]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout.trim(), 'ok');

  // Three independent errors: an unknown key, a bad duration, a route naming a missing upstream.
  const badDoc = proxyConfig(['127.0.0.1:9'], { bogusKey: 1, shutdownTimeout: '5 parsecs' });
  badDoc.routes[0]!.upstream = 'missing';
  const bad = writeYaml(path.join(dir, 'bad.yaml'), badDoc);
  const res = await runCli(['validate', '--config', bad]);
  assert.equal(res.code, 1);
  assert.equal(res.stdout, '');
  const lines = res.stderr.trim().split('\n');
  for (const line of lines) assert.match(line, /^\S+: .+$/, `not a "path: message" line: ${line}`);
  const paths = lines.map((l) => l.slice(0, l.indexOf(': ')));
  assert.ok(paths.includes('bogusKey'), `unknown key not reported:\n${res.stderr}`);
  assert.ok(paths.includes('shutdownTimeout'), `bad duration not reported:\n${res.stderr}`);
  assert.ok(paths.includes('routes[0].upstream'), `missing upstream not reported:\n${res.stderr}`);

  const missing = path.join(dir, 'does-not-exist.yaml');
  const gone = await runCli(['validate', '--config', missing]);
  assert.equal(gone.code, 1);
  assert.ok(gone.stderr.includes(missing), gone.stderr);
  assert.match(gone.stderr, /cannot read|ENOENT|no such file/i);
});

test('start with an invalid config exits 1 and names the bad field', async (t) => {
  const dir = tempDir(t);
  const doc = proxyConfig(['127.0.0.1:9']);
  (doc.upstreams[0]!.timeouts as Record<string, unknown>).connect = 'soon';
  const file = writeYaml(path.join(dir, 'bad.yaml'), doc);
  const res = await runCli(['start', '--config', file]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /invalid config/);
  assert.match(res.stderr, /^upstreams\[0\]\.timeouts\.connect: /m);
});

test('README quick start: `start` with no --config serves examples/default.yaml', async (t) => {
  const listenPort = await freePort();
  const adminPort = await freePort();
  const child = spawn(process.execPath, [CLI, 'start'], {
    env: { ...process.env, PORTICO_LISTEN: `127.0.0.1:${listenPort}`, PORTICO_ADMIN: `127.0.0.1:${adminPort}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  stopAfter(t, child, exited);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const started = await waitFor(() => {
    if (child.exitCode !== null) throw new Error(`portico exited with ${child.exitCode}: ${stderr}`);
    for (const line of stdout.split('\n')) {
      if (!line.includes('"portico started"')) continue;
      return JSON.parse(line) as { config: string; listeners: { name: string; url: string }[]; admin: string };
    }
    return undefined;
  }, 'portico (default config) to start');
  assert.equal(started.config, path.join(ROOT, 'examples', 'default.yaml'));
  const web = `http://127.0.0.1:${listenPort}`;
  const admin = `http://127.0.0.1:${adminPort}`;
  assert.deepEqual(started.listeners, [{ name: 'web', url: web }]);
  assert.equal(started.admin, admin);

  const welcome = await get(web, '/');
  assert.equal(welcome.status, 200);
  assert.match(String(welcome.headers['content-type']), /application\/json/);
  assert.equal((JSON.parse(welcome.body) as { name: string }).name, 'portico');

  const proxied = await get(web, '/admin/health');
  assert.equal(proxied.status, 200);
  assert.deepEqual(JSON.parse(proxied.body), { status: 'ok' });
  assert.equal(proxied.headers['x-served-by'], 'portico');

  const health = await get(admin, '/health');
  assert.equal(health.status, 200);
  assert.deepEqual(JSON.parse(health.body), { status: 'ok' });
});

test('proxies through the CLI and writes an access log line to stdout', async (t) => {
  const dir = tempDir(t);
  const up = await upstream(t);
  const file = writeYaml(path.join(dir, 'proxy.yaml'), proxyConfig([up.address], {}, { accessLog: true }));
  const gw = await cli(t, file);

  const r = await get(gw.urls.web!, '/api/x?y=1');
  assert.equal(r.status, 200);
  assert.equal(up.received.length, 1);
  assert.equal(up.received[0]!.url, '/x?y=1');

  // The access log is buffered (flushed at least every second): poll the parsed stdout.
  const line = await waitFor(() => gw.logs.find((l) => l.type === 'access'), 'an access log line', 5000);
  assert.equal(line.route, 'api');
  assert.equal(line.listener, 'web');
  assert.equal(line.status, 200);
  assert.equal(line.method, 'GET');
  assert.equal(line.path, '/api/x');
  assert.equal(line.upstream, 'up');
  assert.equal(line.target, up.address);
  assert.equal(typeof line.durationMs, 'number');
  assert.ok((line.durationMs as number) >= 0);
});

test('SIGHUP reloads the config; an invalid file is rejected and the running config kept', async (t) => {
  const dir = tempDir(t);
  const up1 = await upstream(t);
  const up2 = await upstream(t);
  const file = writeYaml(path.join(dir, 'reload.yaml'), proxyConfig([up1.address]));
  const gw = await cli(t, file);
  const web = gw.urls.web!;

  assert.equal((await get(web, '/api/a')).status, 200);
  assert.equal(up1.received.length, 1);
  assert.equal(up2.received.length, 0);

  writeYaml(file, proxyConfig([up2.address]));
  gw.child.kill('SIGHUP');
  await waitFor(async () => (await get(web, '/api/b')).status === 200 && up2.received.length > 0, 'requests to reach upstream 2');
  await waitFor(() => gw.logs.find((l) => l.msg === 'config reloaded'), '"config reloaded" log line');

  // An invalid document: the route names an upstream that does not exist.
  const invalid = proxyConfig([up2.address]);
  invalid.routes[0]!.upstream = 'nope';
  writeYaml(file, invalid);
  gw.child.kill('SIGHUP');
  const rejected = await waitFor(
    () => gw.logs.find((l) => typeof l.msg === 'string' && l.msg.includes('config rejected')),
    '"config rejected" log line',
  );
  assert.ok(JSON.stringify(rejected).includes('routes[0].upstream'), `error path not logged: ${JSON.stringify(rejected)}`);

  const before1 = up1.received.length;
  const before2 = up2.received.length;
  for (let i = 0; i < 3; i++) assert.equal((await get(web, `/api/after-${i}`)).status, 200);
  assert.equal(up2.received.length, before2 + 3);
  assert.equal(up1.received.length, before1);
  assert.equal(gw.child.exitCode, null);
  assert.equal(gw.child.signalCode, null);
});

test('watch: true reloads when the file changes, without a signal', async (t) => {
  const dir = tempDir(t);
  const up1 = await upstream(t);
  const up2 = await upstream(t);
  const file = writeYaml(path.join(dir, 'watched.yaml'), proxyConfig([up1.address], { watch: true }));
  const gw = await cli(t, file);
  const web = gw.urls.web!;

  assert.equal((await get(web, '/api/a')).status, 200);
  assert.equal(up1.received.length, 1);

  writeYaml(file, proxyConfig([up2.address], { watch: true }));
  await waitFor(async () => (await get(web, '/api/b')).status === 200 && up2.received.length > 0, 'the watched edit to switch upstreams');
  assert.equal(gw.child.exitCode, null);
});

test('SIGTERM drains: the in-flight request completes, exit 0, new connections refused', async (t) => {
  const dir = tempDir(t);
  const timers = new Set<NodeJS.Timeout>();
  t.after(() => timers.forEach((tm) => clearTimeout(tm)));
  const up = await upstream(t, (_req, res) => {
    const tm = setTimeout(() => {
      timers.delete(tm);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('slow but complete');
    }, 1500);
    timers.add(tm);
  });
  const file = writeYaml(path.join(dir, 'drain.yaml'), proxyConfig([up.address]));
  const gw = await cli(t, file);
  const web = gw.urls.web!;

  let settled = false;
  const inflight = get(web, '/api/slow').finally(() => (settled = true));
  inflight.catch(() => undefined); // asserted below
  await waitFor(() => up.received.length === 1, 'the upstream to receive the request');

  gw.child.kill('SIGTERM');
  // The listener stops accepting at once, while the slow request is still in flight.
  await waitFor(async () => (await tryConnect(web)) === 'ECONNREFUSED', 'new connections to be refused', 3000);
  assert.equal(settled, false, 'the in-flight request finished before the listener closed');

  const r = await within(inflight, 5000, 'the in-flight request');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'slow but complete');

  assert.equal(await within(gw.exited, 5000, 'portico to exit'), 0);
  assert.ok(gw.logs.some((l) => l.msg === 'stopped'));
  assert.equal(await tryConnect(web), 'ECONNREFUSED');
});

test('SIGTERM with shutdownTimeout 500ms and a stuck upstream: exits 0 promptly, the client does not hang', async (t) => {
  const dir = tempDir(t);
  const up = await upstream(t, () => {
    /* never answers; the socket is closed by up.close() */
  });
  const file = writeYaml(path.join(dir, 'stuck.yaml'), proxyConfig([up.address], { shutdownTimeout: '500ms' }));
  const gw = await cli(t, file);

  const outcome = get(gw.urls.web!, '/api/stuck').then(
    (r) => ({ ok: true as const, status: r.status }),
    (err: Error) => ({ ok: false as const, error: err }),
  );
  await waitFor(() => up.received.length === 1, 'the upstream to receive the request');

  const t0 = Date.now();
  gw.child.kill('SIGTERM');
  const code = await within(gw.exited, 3000, 'portico to exit within 3 s');
  const elapsed = Date.now() - t0;
  assert.equal(code, 0);
  assert.ok(elapsed >= 400, `exited after ${elapsed} ms, before the 500 ms grace period`);

  const result = await within(outcome, 2000, 'the client to see the outcome');
  assert.equal(result.ok, false, `expected a connection error, got HTTP ${result.ok ? result.status : ''}`);
});
