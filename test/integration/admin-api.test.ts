// The admin API as an operator drives it: resources created, changed and
// deleted over real HTTP against a gateway served from a real file, with
// traffic through the routes it makes, and the file written back.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startFromFile, type FileGateway } from '../helpers/admin.js';
import { send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { fdsSettle, openFds } from '../helpers/fds.js';

const FILE = `# Portico config, edited by hand and through the admin API.
admin:
  listen: 127.0.0.1:0
listeners:
  - name: web   # the public listener
    protocol: http
    listen: 127.0.0.1:0
    accessLog: false
routes:
  # answers without an upstream
  - name: ping
    listener: web
    match: { path: /ping }
    respond: { status: 200, body: pong }
`;

describe('admin API: resources over real HTTP, written back to the file', () => {
  let g: FileGateway;
  let up: TestUpstream;
  let fds: number;

  before(async () => {
    fds = openFds();
    up = await startUpstream((req, res) => {
      res.setHeader('content-type', 'text/plain');
      // /slow answers after the test has changed the config under it.
      if (req.url?.includes('slow')) setTimeout(() => res.end(`upstream saw ${req.url}`), 300);
      else res.end(`upstream saw ${req.url}`);
    });
    g = await startFromFile(FILE);
  });

  after(async () => {
    await g.close();
    await up.close();
    await fdsSettle(fds);
  });

  it('creates an upstream and a route; the first request after the 201 is served by them', async () => {
    const u = await g.api('POST', '/upstreams', { name: 'svc', targets: [{ address: up.address }] });
    assert.equal(u.status, 201, u.body);
    assert.equal(u.headers.location, '/upstreams/svc');
    assert.match(String(u.headers.etag), /^"[0-9a-f]{16}"$/);
    const started = performance.now();
    const r = await g.api('POST', '/routes', { name: 'api', listener: 'web', upstream: 'svc', match: { pathPrefix: '/api' } });
    assert.equal(r.status, 201, r.body);
    const served = await send(g.url(), { path: '/api/x' });
    const ms = performance.now() - started;
    assert.equal(served.status, 200);
    assert.equal(served.body, 'upstream saw /api/x');
    // Reported, not asserted against a time: the change applies before the 201 is sent.
    process.stdout.write(`# route created → first request served in ${ms.toFixed(1)} ms after the POST began\n`);
    const list = await g.api('GET', '/routes');
    assert.deepEqual(
      list.json.items.map((x: { name: string }) => x.name),
      ['ping', 'api'],
    );
    const one = await g.api('GET', '/routes/api');
    assert.deepEqual(one.json, { name: 'api', listener: 'web', upstream: 'svc', match: { pathPrefix: '/api' } });
  });

  it('writes the change back to the file, keeping its comments', () => {
    const text = readFileSync(g.file, 'utf8');
    assert.match(text, /^# Portico config, edited by hand and through the admin API\./);
    assert.match(text, /- name: web +# the public listener/);
    assert.match(text, /# answers without an upstream\n\s+- name: ping/);
    assert.match(text, /name: api/);
    assert.match(text, /name: svc/);
  });

  it('patches a route (JSON merge patch) and the new match serves', async () => {
    const p = await g.api('PATCH', '/routes/api', { match: { pathPrefix: '/v2' } }, { 'content-type': 'application/merge-patch+json' });
    assert.equal(p.status, 200, p.body);
    assert.deepEqual(p.json.match, { pathPrefix: '/v2' });
    assert.equal((await send(g.url(), { path: '/v2/y' })).body, 'upstream saw /v2/y');
    assert.equal((await send(g.url(), { path: '/api/x' })).status, 404);
  });

  it('a request in flight during a change finishes on the snapshot it started with', async () => {
    const inflight = send(g.url(), { path: '/v2/slow' });
    await new Promise((r) => setTimeout(r, 50));
    const p = await g.api('PATCH', '/routes/api', { match: { pathPrefix: '/v3' } });
    assert.equal(p.status, 200, p.body);
    const done = await inflight;
    assert.equal(done.status, 200);
    assert.equal(done.body, 'upstream saw /v2/slow');
    assert.equal((await send(g.url(), { path: '/v2/y' })).status, 404);
    assert.equal((await g.api('PATCH', '/routes/api', { match: { pathPrefix: '/v2' } })).status, 200);
  });

  it('refuses to delete what a route uses (409 IN_USE naming the route)', async () => {
    const d = await g.api('DELETE', '/upstreams/svc');
    assert.equal(d.status, 409);
    assert.equal(d.json.code, 'IN_USE');
    assert.deepEqual(d.json.referencedBy, [{ kind: 'routes', name: 'api', path: 'routes[1].upstream' }]);
    assert.equal((await send(g.url(), { path: '/v2/y' })).status, 200);
  });

  it('a route naming a missing upstream is 409 DANGLING_REFERENCE; a bad field is 400 with its path', async () => {
    const dangling = await g.api('PUT', '/routes/other', { listener: 'web', upstream: 'nope' });
    assert.equal(dangling.status, 409, dangling.body);
    assert.equal(dangling.json.code, 'DANGLING_REFERENCE');
    assert.deepEqual(dangling.json.errors, [{ path: 'routes[2].upstream', message: 'no upstream named "nope"' }]);
    const bad = await g.api('PUT', '/routes/other', { listener: 'web', upstream: 'svc', priority: 'high', match: { path: 'no-slash' } });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.code, 'INVALID_CONFIG');
    const paths = bad.json.errors.map((e: { path: string }) => e.path).sort();
    assert.deepEqual(paths, ['routes[2].match.path', 'routes[2].priority']);
    assert.equal((await g.api('GET', '/routes/other')).status, 404);
  });

  it('deletes the route, then the upstream: the path answers 404 again', async () => {
    const d = await g.api('DELETE', '/routes/api');
    assert.equal(d.status, 200);
    assert.deepEqual(d.json, { deleted: 'api' });
    assert.equal((await send(g.url(), { path: '/v2/y' })).status, 404);
    assert.equal((await g.api('DELETE', '/upstreams/svc')).status, 200);
    assert.equal((await g.api('GET', '/upstreams/svc')).status, 404);
    assert.doesNotMatch(readFileSync(g.file, 'utf8'), /svc/);
  });

  it('GET and PUT /config with ETag and If-Match; a stale write is 412', async () => {
    const got = await g.api('GET', '/config');
    assert.equal(got.status, 200);
    const etag = String(got.headers.etag);
    const doc = got.json;
    doc.routes[0].respond.body = 'pong2';
    const put = await g.api('PUT', '/config', doc, { 'if-match': etag });
    assert.equal(put.status, 200, put.body);
    assert.notEqual(put.headers.etag, etag);
    assert.equal(typeof put.json.version, 'number');
    assert.equal((await send(g.url(), { path: '/ping' })).body, 'pong2');
    const stale = await g.api('PUT', '/config', doc, { 'if-match': etag });
    assert.equal(stale.status, 412);
    assert.equal(stale.json.code, 'PRECONDITION_FAILED');
    assert.equal(stale.headers.etag, put.headers.etag);
  });

  it('of concurrent writes on one ETag exactly one wins', async () => {
    const etag = String((await g.api('GET', '/config')).headers.etag);
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) => g.api('PATCH', '/routes/ping', { respond: { body: `race-${i}` } }, { 'if-match': etag })),
    );
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 412, 412, 412, 412]);
    const winner = results.find((r) => r.status === 200)!;
    assert.equal((await send(g.url(), { path: '/ping' })).body, winner.json.respond.body);
  });

  it('POST /config/validate checks without applying', async () => {
    const ok = await g.api('POST', '/config/validate', { listeners: [{ name: 'x', protocol: 'http', listen: '127.0.0.1:0' }] });
    assert.deepEqual(ok.json, { valid: true, errors: [] });
    const bad = await g.api('POST', '/config/validate', { listeners: [{ name: 'x', protocol: 'htp', listen: '127.0.0.1:0' }] });
    assert.equal(bad.status, 200);
    assert.equal(bad.json.valid, false);
    assert.equal(bad.json.errors[0].path, 'listeners[0].protocol');
    const yaml = await g.api('POST', '/config/validate', 'listeners:\n  - { name: y, protocol: tcp, listen: "127.0.0.1:0" }\n', { 'content-type': 'application/yaml' });
    assert.equal(yaml.json.valid, false);
    assert.match(yaml.json.errors[0].path, /^listeners\[0\]/);
  });

  it('GET /ready reports the config source', async () => {
    const r = await g.api('GET', '/ready');
    assert.equal(r.json.status, 'ready');
    assert.equal(r.json.source.state, 'ok');
    assert.equal(r.json.source.origin, `file:${g.file}`);
    assert.equal(`"${r.json.source.revision}"`, (await g.api('GET', '/config')).headers.etag);
  });
});

describe('admin API: bad input gets its status and code, and the running config is untouched', () => {
  let g: FileGateway;
  let blocker: net.Server;
  let fds: number;

  before(async () => {
    fds = openFds();
    blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    g = await startFromFile(FILE);
  });

  after(async () => {
    await g.close();
    await new Promise((r) => blocker.close(r));
    await fdsSettle(fds);
  });

  const unchanged = async (etag: string, text: string) => {
    assert.equal((await g.api('GET', '/config')).headers.etag, etag);
    assert.equal(readFileSync(g.file, 'utf8'), text);
    assert.equal((await send(g.url(), { path: '/ping' })).body, 'pong');
  };

  it('each bad request as a class', async () => {
    const etag = String((await g.api('GET', '/config')).headers.etag);
    const text = readFileSync(g.file, 'utf8');
    const port = (blocker.address() as net.AddressInfo).port;
    const cases: [string, string, unknown, Record<string, string>, number, string][] = [
      ['POST', '/routes', '{"name": "x",', { 'content-type': 'application/json' }, 400, 'INVALID_JSON'],
      ['POST', '/routes', '{}', { 'content-type': 'text/plain' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['POST', '/routes', '{}', {}, 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['POST', '/routes', `{"name":"big","x":"${'a'.repeat(1024 * 1024)}"}`, { 'content-type': 'application/json' }, 413, 'BODY_TOO_LARGE'],
      ['GET', '/widgets', undefined, {}, 404, 'NOT_FOUND'],
      ['GET', '/routes/a%2Fb', undefined, {}, 400, 'INVALID_NAME'],
      ['GET', '/routes/a/b', undefined, {}, 400, 'INVALID_NAME'],
      ['PUT', '/routes/a%01b', { listener: 'web', respond: {} }, {}, 400, 'INVALID_NAME'],
      ['GET', '/routes/%E0%A4%A', undefined, {}, 400, 'INVALID_NAME'],
      ['POST', '/routes', [1, 2], {}, 400, 'INVALID_CONFIG'],
      ['POST', '/routes', { listener: 'web' }, {}, 400, 'INVALID_NAME'],
      ['POST', '/routes', { name: 'ping', listener: 'web', respond: {} }, {}, 409, 'ALREADY_EXISTS'],
      ['PUT', '/routes/ping', { name: 'pong', listener: 'web', respond: {} }, {}, 400, 'NAME_MISMATCH'],
      ['PATCH', '/routes/ping', { name: null }, {}, 400, 'NAME_MISMATCH'],
      ['PATCH', '/routes/nope', { priority: 1 }, {}, 404, 'RESOURCE_NOT_FOUND'],
      ['DELETE', '/listeners/web', undefined, {}, 409, 'IN_USE'],
      ['PATCH', '/listeners/web', { listen: `127.0.0.1:${port}` }, {}, 409, 'APPLY_FAILED'],
      ['PUT', '/config', { listeners: [] }, {}, 400, 'INVALID_CONFIG'],
      ['PUT', '/config', { listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0' }] }, { 'if-match': '"0000000000000000"' }, 412, 'PRECONDITION_FAILED'],
      ['PUT', '/config', { listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0' }] }, { 'if-match': `W/${etag}` }, 412, 'PRECONDITION_FAILED'],
      ['POST', '/config', {}, {}, 405, 'METHOD_NOT_ALLOWED'],
      ['POST', '/routes', { name: '__proto__', listener: 'web', respond: {} }, {}, 400, 'INVALID_NAME'],
      ['PATCH', '/routes/ping', '{"__proto__": {"polluted": true}}', { 'content-type': 'application/json' }, 400, 'INVALID_CONFIG'],
    ];
    for (const [method, path, body, headers, status, code] of cases) {
      const r = await g.api(method, path, body, headers);
      assert.equal(r.status, status, `${method} ${path}: ${r.body.slice(0, 300)}`);
      assert.equal(r.json?.code, code, `${method} ${path}`);
      assert.equal(typeof r.json.error, 'string');
      await unchanged(etag, text);
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  it('with admin.writeBack: false every write is 403 CONFIG_READ_ONLY', async () => {
    const got = await g.api('GET', '/config');
    got.json.admin.writeBack = false;
    const put = await g.api('PUT', '/config', got.json);
    assert.equal(put.status, 200, put.body);
    const etag = String(put.headers.etag);
    const text = readFileSync(g.file, 'utf8');
    for (const [method, path, body] of [
      ['POST', '/routes', { name: 'n', listener: 'web', respond: {} }],
      ['PATCH', '/routes/ping', { priority: 3 }],
      ['DELETE', '/routes/ping', undefined],
      ['PUT', '/config', got.json],
    ] as const) {
      const r = await g.api(method, path, body);
      assert.equal(r.status, 403, `${method} ${path}`);
      assert.equal(r.json.code, 'CONFIG_READ_ONLY');
    }
    await unchanged(etag, text);
    assert.equal((await g.api('GET', '/routes/ping')).status, 200, 'reads still work');
  });
});
