// GET /metrics of a running `portico start`: config reloads by SIGHUP are
// counted by result, a document refused by validation (before it reaches
// the gateway) included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { startCli, stopAfter, tempDir } from '../helpers/cli.js';
import { send } from '../helpers/http.js';
import { startUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

const TOKEN = 'metrics-cli-test-token';

function config(upstream: string, routeUpstream = 'up') {
  return {
    log: { level: 'info' },
    admin: { listen: '127.0.0.1:0', token: TOKEN },
    listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
    upstreams: [{ name: 'up', targets: [{ address: upstream }] }],
    routes: [{ name: 'api', listener: 'web', match: { pathPrefix: '/api' }, upstream: routeUpstream }],
  };
}

/** The value of `portico_config_reloads_total{result}` in one scrape. */
async function reloads(admin: string, result: 'ok' | 'error'): Promise<number> {
  const r = await send(admin, { path: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(r.status, 200, r.body);
  const m = new RegExp(`^portico_config_reloads_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(r.body);
  assert.ok(m !== null, `no reloads sample for ${result}`);
  return Number(m[1]);
}

test('SIGHUP reloads are counted: applied (ok) and refused by validation (error)', async (t) => {
  const up = await startUpstream();
  t.after(() => up.close());
  const dir = tempDir(t, 'metrics');
  const file = path.join(dir, 'portico.yaml');
  fs.writeFileSync(file, stringify(config(up.address)));
  const gw = await startCli(file);
  stopAfter(t, gw.child, gw.exited);
  const admin = gw.admin!;
  assert.equal((await send(gw.urls.web!, { path: '/api/x' })).status, 200);
  assert.equal(await reloads(admin, 'ok'), 1, 'the first load counts');
  assert.equal(await reloads(admin, 'error'), 0);

  // Refused by validation: the route names an upstream that does not exist.
  fs.writeFileSync(file, stringify(config(up.address, 'nope')));
  gw.child.kill('SIGHUP');
  await waitFor(async () => (await reloads(admin, 'error')) === 1 || undefined, 'the refused document counted');
  assert.equal(await reloads(admin, 'ok'), 1);

  // Valid again.
  fs.writeFileSync(file, stringify(config(up.address)));
  gw.child.kill('SIGHUP');
  await waitFor(async () => (await reloads(admin, 'ok')) === 2 || undefined, 'the applied document counted');
  assert.equal(await reloads(admin, 'error'), 1);
  const scrape = await send(admin, { path: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } });
  assert.match(scrape.body, /^portico_config_last_reload_successful 1$/m);
  assert.match(scrape.body, /^portico_http_requests_total\{listener="web",route="api",upstream="up",status_class="2xx"\} 1$/m);
});
