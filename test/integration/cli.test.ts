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
import { childPids, CLI, processGone, ROOT, runCli, startCli, stopAfter, tempDir, type Running } from '../helpers/cli.js';
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

  // No command at all: a usage error, not a silent success.
  const none = await runCli([]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^portico: no command given\n/);
});

test('every command has its own --help (stdout, exit 0), also as `portico help CMD`', async () => {
  for (const cmd of ['start', 'validate', 'stop', 'seal', 'unseal']) {
    for (const args of [[cmd, '--help'], [cmd, '-h'], ['help', cmd]]) {
      const r = await runCli(args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: portico ${cmd} `), `${args.join(' ')} printed:\n${r.stdout}`);
      assert.equal(r.stderr, '');
    }
  }
  // --help wins over everything else on the line: nothing is started or validated.
  const r = await runCli(['start', '/does/not/exist.yaml', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^Usage: portico start /);
  // The top-level help says which process to signal.
  const top = await runCli(['--help']);
  assert.match(top.stdout, /portico stop/);
  assert.match(top.stdout, /Which process to signal: the pid in pidFile:/);
});

test('usage errors: exit 2, one "portico: reason" line, then that command\'s usage', async (t) => {
  const dir = tempDir(t);
  const a = writeYaml(path.join(dir, 'a.yaml'), proxyConfig(['127.0.0.1:9']));
  const b = writeYaml(path.join(dir, 'b.yaml'), proxyConfig(['127.0.0.1:9']));
  const cases: { args: string[]; usage: string; reason: RegExp }[] = [
    { args: ['validate'], usage: 'validate', reason: /validate needs a config FILE/ },
    { args: ['validate', a, b], usage: 'validate', reason: /too many arguments: ".*b\.yaml"/ },
    { args: ['validate', a, '--config', b], usage: 'validate', reason: /two config files given/ },
    { args: ['start', a, b], usage: 'start', reason: /too many arguments/ },
    { args: ['start', a, '-c', b], usage: 'start', reason: /two config files given: ".*a\.yaml" and --config ".*b\.yaml"/ },
    { args: ['start', '--bogus'], usage: 'start', reason: /Unknown option '--bogus'/ },
    { args: ['start', '--config'], usage: 'start', reason: /--config/ },
    { args: ['stop'], usage: 'stop', reason: /stop needs a config FILE \(with pidFile:\) or --pid-file PATH/ },
    { args: ['stop', a, '--pid-file', path.join(dir, 'x.pid')], usage: 'stop', reason: /either a config FILE or --pid-file/ },
    { args: ['stop', '--pid-file', path.join(dir, 'x.pid'), '--timeout', 'soon'], usage: 'stop', reason: /bad --timeout "soon"/ },
  ];
  for (const c of cases) {
    const r = await runCli(c.args);
    const what = `portico ${c.args.join(' ')}`;
    assert.equal(r.code, 2, `${what}: exit ${r.code}\n${r.stderr}`);
    assert.equal(r.stdout, '', what);
    const [first, blank, usage] = r.stderr.split('\n');
    assert.match(first!, /^portico: /, what);
    assert.match(first!, c.reason, what);
    assert.equal(blank, '', what);
    assert.match(usage!, new RegExp(`^Usage: portico ${c.usage} `), what);
  }
});

test('the config file as an argument: validate FILE, start FILE serves FILE (never the default), -c FILE naming the same file', async (t) => {
  const dir = tempDir(t);
  const good = writeYaml(path.join(dir, 'good.yaml'), proxyConfig(['127.0.0.1:9']));
  const ok = await runCli(['validate', good]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, 'ok\n');
  const bad = writeYaml(path.join(dir, 'bad.yaml'), proxyConfig(['127.0.0.1:9'], { bogusKey: 1 }));
  const res = await runCli(['validate', bad]);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /^bogusKey: /m);

  // A config that answers with its own name, on port 0: the default config would listen on 8080 and answer "portico".
  const mine = writeYaml(path.join(dir, 'mine.yaml'), {
    listeners: [{ name: 'mine', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
    routes: [{ name: 'hello', listener: 'mine', respond: { body: 'served mine.yaml' } }],
  });
  for (const args of [[mine], [mine, '--config', mine], ['-c', path.relative(process.cwd(), mine), mine]]) {
    const gw = await startCli(mine, {}, [], args);
    stopAfter(t, gw.child, gw.exited);
    assert.deepEqual(Object.keys(gw.urls), ['mine'], `start ${args.join(' ')}`);
    assert.equal((await get(gw.urls.mine!, '/')).body, 'served mine.yaml');
    const started = gw.logs.find((l) => l.msg === 'portico started')!;
    assert.equal(started.config, mine);
    assert.equal(await gw.stop(), 0);
  }
});

test('startup failures: one plain-text line naming the listener and the reason, exit 1, no stack trace', async (t) => {
  const dir = tempDir(t);
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const taken = (blocker.address() as net.AddressInfo).port;

  const cases: { name: string; doc: Record<string, unknown>; line: RegExp }[] = [
    {
      name: 'a listener on a port in use',
      doc: proxyConfig(['127.0.0.1:9'], {}, { listen: `127.0.0.1:${taken}` }),
      line: new RegExp(`^portico: cannot start: listener "web" cannot listen on 127\\.0\\.0\\.1:${taken}: address already in use \\(EADDRINUSE\\)$`),
    },
    {
      name: 'the admin API on a port in use',
      doc: proxyConfig(['127.0.0.1:9'], { admin: { listen: `127.0.0.1:${taken}` } }),
      line: new RegExp(`^portico: cannot start: the admin API cannot listen on 127\\.0\\.0\\.1:${taken}: address already in use \\(EADDRINUSE\\)$`),
    },
    {
      name: 'a udp listener on a port in use',
      doc: await (async () => {
        const { createSocket } = await import('node:dgram');
        const udp = createSocket('udp4');
        await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
        t.after(() => udp.close());
        const port = udp.address().port;
        return {
          listeners: [{ name: 'dns', protocol: 'udp', listen: `127.0.0.1:${port}`, upstream: 'up' }],
          upstreams: [{ name: 'up', targets: [{ address: '127.0.0.1:9' }] }],
        };
      })(),
      line: /^portico: cannot start: listener "dns" cannot bind udp 127\.0\.0\.1:\d+: address already in use \(EADDRINUSE\)$/,
    },
  ];
  for (const c of cases) {
    const file = writeYaml(path.join(dir, 'fail.yaml'), { log: { level: 'info' }, ...c.doc });
    const r = await runCli(['start', file]);
    assert.equal(r.code, 1, `${c.name}: exit ${r.code}\n${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `${c.name}: one line on stderr, got:\n${r.stderr}`);
    assert.match(lines[0]!, c.line, c.name);
    assert.doesNotMatch(r.stderr, /^\s+at /m, `${c.name}: a stack trace`);
    // The JSON log line is still written, for collectors.
    assert.match(r.stdout, /"msg":"cannot start"/, c.name);
  }
  // An unreadable certificate is found before binding, as by `validate`: the config is invalid, with the path of the key.
  const file = writeYaml(path.join(dir, 'fail.yaml'), {
    listeners: [{ name: 'secure', protocol: 'https', listen: '127.0.0.1:0', tls: { certificates: [{ cert: path.join(dir, 'missing.crt'), key: path.join(dir, 'missing.key') }] } }],
    routes: [{ name: 'r', listener: 'secure', respond: { body: 'x' } }],
  });
  const r = await runCli(['start', file]);
  assert.equal(r.code, 1);
  assert.deepEqual(r.stderr.trim().split('\n').map((l) => l.replace(dir, 'DIR')), [
    'portico: DIR/fail.yaml: invalid config',
    'listeners[0].tls.certificates[0].cert: cannot read DIR/missing.crt: ENOENT',
  ]);
});

test('portico stop FILE / --pid-file: SIGTERM to the pid in the pid file, waits for the exit; clear errors otherwise', async (t) => {
  const dir = tempDir(t, 'stop');
  const pidFile = path.join(dir, 'portico.pid');
  const file = writeYaml(path.join(dir, 'stop.yaml'), { ...proxyConfig(['127.0.0.1:9']), pidFile, shutdownTimeout: '2s' });

  for (const args of [['stop', file], ['stop', '--pid-file', pidFile]]) {
    const gw = await startCli(file, {}, [], [file]);
    stopAfter(t, gw.child, gw.exited);
    assert.equal(fs.readFileSync(pidFile, 'utf8'), `${gw.child.pid}\n`);
    const r = await runCli(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^portico: stopped process ${gw.child.pid} `));
    // It returned only after the gateway had exited (gracefully, on SIGTERM): no pid file, port closed.
    assert.ok(processGone(gw.child.pid!), 'the gateway still runs after `portico stop` returned');
    assert.equal(await within(gw.exited, 5000, 'the gateway exit code'), 0);
    assert.ok(gw.logs.some((l) => l.msg === 'stopping: finishing in-flight requests' && l.signal === 'SIGTERM'));
    assert.equal(fs.existsSync(pidFile), false);
    assert.equal(await tryConnect(gw.urls.web!), 'ECONNREFUSED');
  }

  // Not running: no pid file.
  const none = await runCli(['stop', file]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /^portico: no pid file at .*portico\.pid: Portico is not running/);

  // A stale pid file: its process has exited. Left alone (the next start replaces it).
  const dead = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolve) => dead.once('exit', resolve));
  fs.writeFileSync(pidFile, `${dead.pid}\n`);
  const stale = await runCli(['stop', '--pid-file', pidFile]);
  assert.equal(stale.code, 1);
  assert.match(stale.stderr, new RegExp(`names process ${dead.pid}, which is not running \\(a stale pid file\\)`));
  assert.equal(fs.existsSync(pidFile), true);

  // Not a pid file.
  fs.writeFileSync(pidFile, 'hello\n');
  const garbage = await runCli(['stop', '--pid-file', pidFile]);
  assert.equal(garbage.code, 1);
  assert.match(garbage.stderr, /does not hold a process id/);

  // A process that ignores SIGTERM: stop gives up at --timeout, says so, and does not SIGKILL it.
  const stubborn = spawn(process.execPath, ['-e', 'process.on("SIGTERM", () => {}); process.stdout.write("ready\\n"); setInterval(() => {}, 1000)'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const stubbornExit = new Promise<number | null>((resolve) => stubborn.once('exit', (code) => resolve(code)));
  stopAfter(t, stubborn, stubbornExit, 0);
  await new Promise((resolve) => stubborn.stdout.once('data', resolve));
  fs.writeFileSync(pidFile, `${stubborn.pid}\n`);
  const slow = await runCli(['stop', '--pid-file', pidFile, '--timeout', '300ms']);
  assert.equal(slow.code, 1);
  assert.match(slow.stderr, new RegExp(`process ${stubborn.pid} is still running`));
  assert.equal(processGone(stubborn.pid!), false);
  stubborn.kill('SIGKILL');
  await stubbornExit;

  // A config without pidFile: says so.
  const noPid = writeYaml(path.join(dir, 'nopid.yaml'), proxyConfig(['127.0.0.1:9']));
  const r = await runCli(['stop', noPid]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /sets no pidFile:/);
});

test('SIGTERM to `npm start` stops the gateway: its ports close and no node process is left behind', async (t) => {
  const listenPort = await freePort();
  const adminPort = await freePort();
  const npm = spawn('npm', ['start', '--silent'], {
    cwd: ROOT,
    env: { ...process.env, PORTICO_LISTEN: `127.0.0.1:${listenPort}`, PORTICO_ADMIN: `127.0.0.1:${adminPort}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
  let stdout = '';
  let stderr = '';
  npm.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  npm.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  // Whatever npm started, found before the signal: killed in `after` if this test fails.
  const started: number[] = [];
  t.after(() => {
    for (const pid of started) if (!processGone(pid)) process.kill(pid, 'SIGKILL');
  });
  stopAfter(t, npm, exited);
  await waitFor(() => {
    if (npm.exitCode !== null) throw new Error(`npm start exited with ${npm.exitCode}: ${stderr}`);
    return stdout.includes('"portico started"');
  }, 'npm start to start portico', 30_000);
  const descendants = (pid: number): number[] => childPids(pid).flatMap((c) => [c, ...descendants(c)]);
  started.push(...descendants(npm.pid!));
  assert.ok(started.length > 0);
  assert.equal((await get(`http://127.0.0.1:${listenPort}`, '/')).status, 200);

  npm.kill('SIGTERM');
  await within(exited, 10_000, 'npm start to exit after SIGTERM');
  await waitFor(() => started.every(processGone), 'every process npm started to exit', 5000);
  assert.equal(await tryConnect(`http://127.0.0.1:${listenPort}`), 'ECONNREFUSED');
  assert.equal(await tryConnect(`http://127.0.0.1:${adminPort}`), 'ECONNREFUSED');
  assert.match(stdout, /"msg":"stopped"/);
});

test('the portico binary: a plain `#!/usr/bin/env node` shebang (BusyBox env has no -S)', () => {
  const first = fs.readFileSync(CLI, 'utf8').split('\n')[0];
  assert.equal(first, '#!/usr/bin/env node');
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

  const health = await get(admin, '/health');
  assert.equal(health.status, 200);
  assert.deepEqual(JSON.parse(health.body), { status: 'ok' });

  // A safe demo: every admin endpoint, under every prefix a demo might have used, is a 404 on the listener.
  for (const p of ['/admin/health', '/admin/status', '/admin/stats', '/status', '/stats', '/health', '/ready', '/admin', '/hello/../admin/stats']) {
    const r = await get(web, p);
    assert.equal(r.status, 404, `${p} answers ${r.status} on the public listener`);
    assert.doesNotMatch(r.body, /"listeners"|"upstreams"|"route":\{/);
  }

  // /hello: 5 a second per client, then 429.
  const hello = await get(web, '/hello');
  assert.equal(hello.status, 200);
  assert.equal(hello.headers['x-served-by'], 'portico');
  const statuses: number[] = [];
  for (let i = 0; i < 7; i++) statuses.push((await get(web, '/hello')).status);
  assert.deepEqual(statuses.slice(0, 4), [200, 200, 200, 200]);
  assert.ok(statuses.slice(4).includes(429), statuses.join(','));
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
