// No reload path ends the process: every way a config file can be bad on
// SIGHUP or under `watch: true` (an alias bomb, an empty or comment-only file,
// a truncate-then-write, a syntax error, a missing certificate, a port that
// is taken, a vanished file) is refused with its reason logged once, and the
// running config keeps serving. Also: draining on SIGTERM (/ready answers 503
// while the listeners still accept) and `validate` checking the files start
// will load. Runs the real CLI (dist/cli/main.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { runCli, startCli, tempDir, type Running } from '../helpers/cli.js';
import { freePort } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

interface Reply {
  status: number;
  body: string;
}

function get(base: string, p = '/'): Promise<Reply> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: p, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('client timeout')));
    req.end();
  });
}

/** A one-listener document answering `body` on / (port fixed so a reload keeps the socket). */
function doc(port: number, body: string, extra = ''): string {
  return `listeners:\n  - { name: web, protocol: http, listen: "127.0.0.1:${port}", accessLog: false }\nroutes:\n  - { name: r, listener: web, match: { path: / }, respond: { body: "${body}" } }\n${extra}`;
}

/** The billion laughs, 9 levels of 10. */
const BOMB = Array.from({ length: 9 }, (_, i) =>
  i === 0 ? 'x-a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]' : `x-a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`,
).join('\n');

function rejections(gw: Running): Record<string, unknown>[] {
  return gw.logs.filter((l) => l.msg === 'config rejected; keeping the running config');
}

async function reloadRefused(gw: Running, before: number, why: RegExp): Promise<Record<string, unknown>> {
  const line = await waitFor(() => (rejections(gw).length > before ? rejections(gw)[before] : undefined), 'the reload to be refused');
  assert.match(JSON.stringify(line.errors), why);
  return line;
}

test('SIGHUP: a bomb, an empty file, a syntax error, a missing certificate, a taken port and a vanished file are each refused; the gateway keeps serving', async (t) => {
  const dir = tempDir(t, 'reload');
  const file = path.join(dir, 'portico.yaml');
  const port = await freePort();
  fs.writeFileSync(file, doc(port, 'v1'));
  const gw = await startCli(file);
  t.after(() => gw.stop());
  const web = `http://127.0.0.1:${port}`;
  assert.equal((await get(web)).body, 'v1');

  // A taken port for a second listener.
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.after(() => blocker.close());
  const taken = (blocker.address() as net.AddressInfo).port;

  const cases: { name: string; text: string | null; why: RegExp }[] = [
    { name: 'alias bomb', text: `${doc(port, 'bomb')}${BOMB}\n`, why: /portico\.yaml:\d+:\d+: the document expands to more than 1,000,000 nodes/ },
    { name: 'empty file', text: '', why: /at least one listener/ },
    { name: 'comment-only file', text: '# being edited\n', why: /at least one listener/ },
    { name: 'syntax error', text: 'listeners:\n  - name: web\n   protocol: http\n', why: /portico\.yaml:3:\d+: / },
    {
      name: 'missing certificate',
      text: doc(port, 'tls').replace(
        'listeners:\n',
        `listeners:\n  - { name: secure, protocol: https, listen: "127.0.0.1:0", tls: { certificates: [{ cert: ${dir}/nope.crt, key: ${dir}/nope.key }] } }\n`,
      ),
      why: /listeners\[0\]\.tls\.certificates\[0\]\.cert: cannot read .*nope\.crt/,
    },
    { name: 'port taken', text: `${doc(port, 'taken')}`.replace('listeners:\n', `listeners:\n  - { name: other, protocol: http, listen: "127.0.0.1:${taken}" }\n`), why: /cannot listen on 127\.0\.0\.1:\d+/ },
    { name: 'vanished file', text: null, why: /cannot read .*no such file/ },
  ];
  for (const c of cases) {
    const before = rejections(gw).length;
    if (c.text === null) fs.rmSync(file);
    else fs.writeFileSync(file, c.text);
    gw.child.kill('SIGHUP');
    await reloadRefused(gw, before, c.why);
    assert.equal(gw.child.exitCode, null, `${c.name}: the gateway is still running`);
    assert.equal((await get(web)).body, 'v1', `${c.name}: the running config still serves`);
  }

  // Each refusal is logged once, and a good file is still applied afterwards.
  assert.equal(rejections(gw).length, cases.length);
  fs.writeFileSync(file, doc(port, 'v2'));
  gw.child.kill('SIGHUP');
  await waitFor(async () => (await get(web)).body === 'v2', 'the good config to be applied');
});

test('watch: a truncate-then-write, a file written in slow pieces and an atomic rename are applied whole, never half-read', async (t) => {
  const dir = tempDir(t, 'watch');
  const file = path.join(dir, 'portico.yaml');
  const port = await freePort();
  fs.writeFileSync(file, doc(port, 'v1', 'watch: true\n'));
  const gw = await startCli(file);
  t.after(() => gw.stop());
  const web = `http://127.0.0.1:${port}`;
  const reloads = () => gw.logs.filter((l) => l.msg === 'config reloaded').length;

  // Truncate, then write a moment later (as `>` in a shell, or an editor saving in place).
  fs.writeFileSync(file, '');
  await new Promise((r) => setTimeout(r, 40));
  fs.writeFileSync(file, doc(port, 'v2', 'watch: true\n'));
  await waitFor(async () => (await get(web)).body === 'v2', 'v2 to be applied');
  assert.equal(gw.child.exitCode, null);
  // The log line of that reload may reach this process after the gateway serves v2 (asynchronous log, a pipe): wait for it before counting.
  await waitFor(() => reloads() >= 1, 'the v2 reload to be logged');

  // A document written in three pieces 40 ms apart: only the whole one is applied.
  const whole = `${doc(port, 'v3')}  - { name: extra, listener: web, match: { path: /extra }, respond: { body: "extra" } }\nwatch: true\n`;
  const before = reloads();
  const fd = fs.openSync(file, 'w');
  const third = Math.ceil(whole.length / 3);
  for (let i = 0; i < 3; i++) {
    fs.writeSync(fd, whole.slice(i * third, (i + 1) * third));
    await new Promise((r) => setTimeout(r, 40));
  }
  fs.closeSync(fd);
  await waitFor(async () => (await get(web, '/extra')).body === 'extra', 'the whole document to be applied');
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(reloads() - before, 1, 'applied once, whole');
  assert.equal((await get(web)).body, 'v3');

  // An atomic rename (write a temp file, rename it over the config).
  const tmp = path.join(dir, '.portico.yaml.tmp');
  fs.writeFileSync(tmp, doc(port, 'v4', 'watch: true\n'));
  fs.renameSync(tmp, file);
  await waitFor(async () => (await get(web)).body === 'v4', 'the renamed file to be applied');
  assert.equal(gw.child.exitCode, null);
});

test('drain: after SIGTERM, /ready answers 503 while the listener still serves and /health answers 200; then the gateway exits 0', async (t) => {
  const dir = tempDir(t, 'drain');
  const file = path.join(dir, 'portico.yaml');
  const port = await freePort();
  const adminPort = await freePort();
  fs.writeFileSync(file, doc(port, 'up', `admin: { listen: "127.0.0.1:${adminPort}" }\ndrain: 1500ms\n`));
  const gw = await startCli(file);
  t.after(() => gw.stop());
  const web = `http://127.0.0.1:${port}`;
  const admin = `http://127.0.0.1:${adminPort}`;
  assert.equal((await get(admin, '/ready')).status, 200);
  assert.equal(JSON.parse((await get(admin, '/ready')).body).status, 'ready');

  const started = Date.now();
  gw.child.kill('SIGTERM');
  await waitFor(async () => (await get(admin, '/ready')).status === 503, '/ready to answer 503');
  assert.equal(JSON.parse((await get(admin, '/ready')).body).status, 'draining');
  assert.equal((await get(admin, '/health')).status, 200, '/health stays 200 while draining');
  assert.equal((await get(web)).body, 'up', 'the listener still serves while draining');
  assert.equal(await gw.exited, 0);
  assert.ok(Date.now() - started >= 1400, 'the drain period was kept');
});

test('validate checks the files start would load: missing, unreadable or mismatched certificate and key, a CA that is not a certificate', async (t) => {
  const dir = tempDir(t, 'validate-files');
  const file = path.join(dir, 'portico.yaml');
  const crt = path.join(dir, 'a.crt');
  const key = path.join(dir, 'a.key');
  const other = path.join(dir, 'b.key');
  const { execFileSync } = await import('node:child_process');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=a.test', '-keyout', key, '-out', crt], { stdio: 'ignore' });
  execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', other], { stdio: 'ignore' });
  const https = (c: string, k: string, ca = '') =>
    `listeners:\n  - { name: s, protocol: https, listen: "127.0.0.1:0", tls: { certificates: [{ cert: "${c}", key: "${k}", default: true }]${ca} } }\nroutes:\n  - { name: r, listener: s, respond: {} }\n`;

  const cases: [string, string, RegExp][] = [
    ['valid', https(crt, key), /^ok$/],
    ['missing cert', https(path.join(dir, 'nope.crt'), key), /listeners\[0\]\.tls\.certificates\[0\]\.cert: cannot read .*nope\.crt: ENOENT/],
    ['key of another certificate', https(crt, other), /listeners\[0\]\.tls\.certificates\[0\]\.key: .*does not match the certificate/],
    ['key file given as cert', https(key, key), /listeners\[0\]\.tls\.certificates\[0\]\.cert: .*no PEM certificate/],
    ['CA that is a key', https(crt, key, `, clientAuth: require, clientCa: "${other}"`), /listeners\[0\]\.tls\.clientCa: .*no PEM certificate/],
    [
      'upstream client key missing',
      `listeners:\n  - { name: w, protocol: http, listen: "127.0.0.1:0" }\nupstreams:\n  - { name: u, targets: [{ address: "127.0.0.1:1" }], tls: { cert: "${crt}", key: "${dir}/gone.key" } }\nroutes:\n  - { name: r, listener: w, upstream: u }\n`,
      /upstreams\[0\]\.tls\.key: cannot read/,
    ],
  ];
  for (const [name, text, expected] of cases) {
    fs.writeFileSync(file, text);
    const r = await runCli(['validate', '--config', file]);
    const out = (r.stdout + r.stderr).trim();
    assert.match(out, expected, name);
    assert.equal(r.code, name === 'valid' ? 0 : 1, name);
    assert.doesNotMatch(out, /\n\s+at /, `${name}: no stack trace`);
  }
});

test('drain: a second signal cuts the drain short; the graceful stop still runs and the exit is 0', async (t) => {
  const dir = tempDir(t, 'drain2');
  const file = path.join(dir, 'portico.yaml');
  const port = await freePort();
  const adminPort = await freePort();
  fs.writeFileSync(file, doc(port, 'up', `admin: { listen: "127.0.0.1:${adminPort}" }\ndrain: 10m\n`));
  const gw = await startCli(file);
  t.after(() => gw.stop('SIGKILL'));
  const admin = `http://127.0.0.1:${adminPort}`;
  gw.child.kill('SIGTERM');
  await waitFor(async () => (await get(admin, '/ready')).status === 503, '/ready to answer 503');
  gw.child.kill('SIGINT');
  // A 10-minute drain: only the second signal can end the process within this test's time.
  assert.equal(await gw.exited, 0);
  assert.ok(gw.logs.some((l) => l.msg === 'stopped'));
});
