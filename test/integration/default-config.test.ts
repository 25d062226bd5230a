// The config `npm start` serves with no file (examples/default.yaml) is a
// small, safe demo: its two routes answer, nothing else is exposed on the
// listener (above all not the admin API), and the admin API cannot be moved
// off loopback without a key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { CLI, runCli, stopAfter } from '../helpers/cli.js';
import { freePort } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

function get(base: string, p: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: p, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('the default config answers / and /hello (rate-limited), and exposes nothing else: no admin endpoint through the listener', async (t) => {
  const listenPort = await freePort();
  const adminPort = await freePort();
  const child = spawn(process.execPath, [CLI, 'start'], {
    env: { ...process.env, PORTICO_LISTEN: `127.0.0.1:${listenPort}`, PORTICO_ADMIN: `127.0.0.1:${adminPort}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  stopAfter(t, child, exited);
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  await waitFor(() => stdout.includes('"portico started"'), 'portico (default config) to start');
  const web = `http://127.0.0.1:${listenPort}`;
  const admin = `http://127.0.0.1:${adminPort}`;

  const welcome = await get(web, '/');
  assert.equal(welcome.status, 200);
  assert.equal((JSON.parse(welcome.body) as { name: string }).name, 'portico');

  // Every admin endpoint, under every prefix a demo might have used, is a 404 on the listener.
  for (const p of ['/admin/health', '/admin/status', '/admin/stats', '/status', '/stats', '/health', '/ready', '/admin', '/hello/../admin/stats']) {
    const r = await get(web, p);
    assert.equal(r.status, 404, `${p} answers ${r.status} on the public listener`);
    assert.doesNotMatch(r.body, /"listeners"|"upstreams"|"route":\{/);
  }
  assert.equal((await get(admin, '/health')).status, 200);

  // /hello: 5 a second per client, then 429 with Retry-After.
  const statuses: number[] = [];
  for (let i = 0; i < 8; i++) statuses.push((await get(web, '/hello')).status);
  assert.deepEqual(statuses.slice(0, 5), [200, 200, 200, 200, 200]);
  assert.ok(statuses.slice(5).includes(429), statuses.join(','));
});

test('the default config refuses to put the admin API on a public address without a key', async () => {
  const r = await runCli(['validate', '--config', CLI.replace(/dist\/cli\/main\.js$/, 'examples/default.yaml')], { env: { PORTICO_ADMIN: '0.0.0.0:9180' } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /admin\.apiKey/);
});
