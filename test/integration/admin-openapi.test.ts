// GET /openapi.json, checked against real responses: each endpoint is called on
// a real gateway served from a config file (as `portico start` runs it) and its
// status, body and headers are validated (ajv, JSON Schema 2020-12) against the
// operation in the served document.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import Ajv2020Module from 'ajv/dist/2020.js';
import { startFromFile, type FileGateway } from '../helpers/admin.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { createPki, type Pki } from '../helpers/certs.js';
import { send, type Reply } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { recordingReload, singleProcessHooks } from '../../src/process/cluster-admin.js';
import { loadConfigFile } from '../../src/sources/file.js';

const TOKEN = 'openapi-test-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };
const KEY = 'key-for-consumer-alice-01';

type Operation = { responses: Record<string, { content?: Record<string, unknown>; headers?: Record<string, unknown> }> };
type Doc = { openapi: string; paths: Record<string, Record<string, Operation>> };

let up: TestUpstream;
let g: FileGateway;
let pki: Pki;
let fds: number;
let doc: Doc;
// ajv is CommonJS: under NodeNext its default import is module.exports, whose `default` is the class.
const Ajv2020 = Ajv2020Module.default;
const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
/** `METHOD /path` of every operation a real response was validated for. */
const exercised = new Set<string>();

before(async () => {
  fds = openFds();
  pki = await createPki();
  up = await startUpstream((_req, res) => res.end('ok'));
  g = await startFromFile(`admin: { listen: 127.0.0.1:0, token: ${TOKEN}, diagnostics: true }
listeners:
  - { name: web, protocol: http, listen: 127.0.0.1:0, accessLog: false }
upstreams:
  - { name: up, targets: [{ address: "${up.address}" }] }
consumers:
  - { id: alice, keys: [${KEY}], qps: 100, qpd: 1000 }
routes:
  - name: api
    listener: web
    upstream: up
    middlewares: [{ key-auth: {} }, { rate-limit: { rate: 1, burst: 10, key: ip } }]
`);
  // POST /config/reload as `portico start` wires it (cli/main.ts) for one process.
  g.gateway.adminHooks = singleProcessHooks({ index: 0, workers: 1, gateway: g.gateway, reload: recordingReload(g.source, g.gateway, loadConfigFile) });
  const r = await send(g.admin(), { path: '/openapi.json', headers: auth });
  assert.equal(r.status, 200);
  doc = JSON.parse(r.body) as Doc;
  ajv.addSchema(doc, 'openapi.json');
  // Some traffic, so /stats and /limits have entries.
  for (let i = 0; i < 3; i++) assert.equal((await send(g.url(), { path: '/x', headers: { 'x-api-key': KEY } })).status, 200);
});

after(async () => {
  await g.close();
  await up.close();
  await pki.cleanup();
  await fdsSettle(fds);
});

/** JSON pointer escaping (RFC 6901 §3). */
const pointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/** Validates `reply` against operation `method template`'s response for its status; records the operation as exercised. */
function check(method: string, template: string, reply: Reply): void {
  const op = doc.paths[template]?.[method.toLowerCase()];
  assert.ok(op, `the document describes ${method} ${template}`);
  const response = op.responses[String(reply.status)];
  assert.ok(response, `${method} ${template} documents status ${reply.status} (body ${reply.body.slice(0, 300)})`);
  const type = String(reply.headers['content-type']).split(';')[0]!;
  assert.ok(response.content?.[type], `${method} ${template} ${reply.status} documents content type ${type}`);
  if (type === 'application/json') {
    const validate = ajv.getSchema(`openapi.json#/paths/${pointer(template)}/${method.toLowerCase()}/responses/${reply.status}/content/${pointer(type)}/schema`)!;
    assert.ok(validate, 'the schema compiles');
    const valid = validate(JSON.parse(reply.body));
    assert.ok(valid, `${method} ${template} ${reply.status}: ${ajv.errorsText(validate.errors)}`);
  }
  for (const name of Object.keys(response.headers ?? {})) {
    assert.ok(reply.headers[name.toLowerCase()] !== undefined, `${method} ${template} ${reply.status} sends ${name}`);
  }
  exercised.add(`${method} ${template}`);
}

/** A method the endpoint does not have: 405 METHOD_NOT_ALLOWED with Allow, the body the document's Error schema. */
async function wrongMethod(method: string, path: string): Promise<void> {
  const r = await send(g.admin(), { method, path, headers: auth });
  assert.equal(r.status, 405, `${method} ${path}`);
  assert.ok(r.headers.allow);
  const validate = ajv.getSchema('openapi.json#/components/schemas/Error')!;
  assert.ok(validate(JSON.parse(r.body)), ajv.errorsText(validate.errors));
  assert.equal((JSON.parse(r.body) as { code: string }).code, 'METHOD_NOT_ALLOWED');
}

interface CallOptions {
  path?: string;
  body?: unknown;
  type?: string;
  headers?: Record<string, string>;
}

async function call(method: string, template: string, o: CallOptions = {}): Promise<Reply & { json: any }> {
  const headers: Record<string, string> = { ...auth, ...o.headers };
  let body: string | undefined;
  if (o.body !== undefined) {
    body = typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
    headers['content-type'] = o.type ?? 'application/json';
  }
  const r = await send(g.admin(), { method, path: o.path ?? template, headers, ...(body !== undefined ? { body } : {}) });
  check(method, template, r);
  let json: unknown;
  try {
    json = JSON.parse(r.body);
  } catch {
    json = undefined;
  }
  return { ...r, json };
}

const code = (r: { json: any }) => (r.json as { code?: string }).code;
function expectCode(r: Reply & { json: any }, expected: string): void {
  assert.equal(code(r), expected, `${r.status} ${r.body.slice(0, 300)}`);
}

test('the document is OpenAPI 3.1 and its schemas compile', () => {
  assert.equal(doc.openapi, '3.1.0');
  const ids = new Set<string>();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (method === 'parameters') continue;
      const id = (op as { operationId?: string }).operationId;
      assert.ok(id !== undefined && !ids.has(id), `${method} ${path} has its own operationId`);
      ids.add(id);
      for (const [status, response] of Object.entries(op.responses)) {
        assert.match(status, /^[1-5]\d\d$/);
        if (response.content?.['application/json'] === undefined) continue;
        assert.ok(ajv.getSchema(`openapi.json#/paths/${pointer(path)}/${method}/responses/${status}/content/application~1json/schema`), `${method} ${path} ${status} compiles`);
      }
    }
  }
});

test('real responses of the live-state and diagnostics endpoints match the document', async () => {
  assert.equal((await call('GET', '/health', { headers: {} })).status, 200);
  const ready = await call('GET', '/ready');
  assert.equal(ready.status, 200);
  assert.equal(ready.json.source.state, 'ok');
  assert.equal((await send(g.admin(), { path: '/status' })).status, 401);
  check('GET', '/status', await send(g.admin(), { path: '/status' }));
  assert.equal((await call('GET', '/status')).status, 200);
  assert.equal((await call('GET', '/stats')).status, 200);
  assert.equal((await call('GET', '/openapi.json')).status, 200);
  const metrics = await call('GET', '/metrics');
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /^# (HELP|TYPE) /m);
  await wrongMethod('POST', '/metrics');

  // A connection held open, so /connections lists one and DELETE has something to close.
  const u = new URL(g.url());
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  await new Promise<void>((resolve, reject) =>
    http.get({ host: u.hostname, port: u.port, path: '/held', agent, headers: { 'x-api-key': KEY } }, (res) => res.resume().on('end', resolve)).on('error', reject),
  );
  const listed = await waitFor(async () => {
    const r = await call('GET', '/connections', { path: '/connections?kind=http1' });
    const c = (r.json as { connections: { id: string }[] }).connections;
    return c.length > 0 ? c : undefined;
  }, 'the held connection to be listed');
  assert.equal((await call('GET', '/connections', { path: '/connections?kind=bogus' })).status, 400);
  assert.equal((await call('DELETE', '/connections/{id}', { path: `/connections/${listed[0]!.id}` })).status, 202);
  assert.equal((await call('DELETE', '/connections/{id}', { path: '/connections/no-such-id' })).status, 404);
  await wrongMethod('POST', '/connections');
  agent.destroy();

  assert.equal((await call('GET', '/agents')).status, 200);
  assert.equal((await call('DELETE', '/agents/{id}', { path: '/agents/nobody' })).status, 404);
  const limits = await call('GET', '/limits');
  assert.equal(limits.status, 200);
  assert.ok((limits.json as { routes: { keys: unknown[] }[] }).routes[0]!.keys.length > 0);
  await wrongMethod('POST', '/limits');

  assert.equal((await call('POST', '/debug/profile', { path: '/debug/profile?seconds=0' })).status, 400);
  await wrongMethod('GET', '/debug/profile');
  assert.equal((await call('POST', '/debug/profile', { path: '/debug/profile?seconds=1' })).status, 200);
  assert.equal((await call('POST', '/debug/heap', { path: '/debug/heap?x=1' })).status, 400);
  assert.equal((await call('POST', '/debug/heap')).status, 200);
});

test('real responses of the config and resource endpoints match the document', async () => {
  const leaf = await pki.issue('extra.test');
  const renewed = await pki.issue('extra.test');
  const KINDS: Record<string, { create: (name: string) => Record<string, unknown>; patch: Record<string, unknown>; invalid: Record<string, unknown> }> = {
    upstreams: { create: (name) => ({ name, targets: [{ address: up.address }] }), patch: { maxConnections: 10 }, invalid: { name: 'bad-up', targets: [] } },
    listeners: {
      create: (name) => ({ name, protocol: 'http', listen: '127.0.0.1:0', accessLog: false }),
      patch: { maxHeaderSize: 20_000 },
      invalid: { name: 'bad-listener', protocol: 'carrier-pigeon', listen: '127.0.0.1:0' },
    },
    routes: { create: (name) => ({ name, listener: 'web', match: { path: `/${name}` }, respond: { body: name } }), patch: { priority: 5 }, invalid: { name: 'bad-route', listener: 'web' } },
    consumers: { create: (id) => ({ id, keys: [`key-for-consumer-${id}-0001`] }), patch: { qps: 5 }, invalid: { id: 'bad-consumer', qps: -1 } },
    certificates: { create: (name) => ({ name, cert: leaf.certPem, key: leaf.keyPem }), patch: { cert: renewed.certPem, key: renewed.keyPem }, invalid: { name: 'bad-cert' } },
  };
  for (const [kind, k] of Object.entries(KINDS)) {
    const id = kind === 'consumers' ? 'id' : 'name';
    const one = `/${kind}/{name}`;
    assert.equal((await call('GET', `/${kind}`)).status, 200, kind);
    const created = await call('POST', `/${kind}`, { body: k.create('extra') });
    assert.equal(created.status, 201, `${kind}: ${created.body}`);
    assert.equal(created.headers.location, `/${kind}/extra`);
    expectCode(await call('POST', `/${kind}`, { body: k.create('extra') }), 'ALREADY_EXISTS');
    assert.equal((await call('GET', one, { path: `/${kind}/extra` })).status, 200);
    expectCode(await call('GET', one, { path: `/${kind}/missing` }), 'RESOURCE_NOT_FOUND');
    expectCode(await call('GET', one, { path: `/${kind}/bad%20name` }), 'INVALID_NAME');
    assert.equal((await call('PUT', one, { path: `/${kind}/extra`, body: k.create('extra') })).status, 200);
    assert.equal((await call('PUT', one, { path: `/${kind}/extra2`, body: k.create('extra2') })).status, 201);
    expectCode(await call('PUT', one, { path: `/${kind}/extra`, body: { ...k.create('extra'), [id]: 'other' } }), 'NAME_MISMATCH');
    assert.equal((await call('PATCH', one, { path: `/${kind}/extra`, body: k.patch, type: 'application/merge-patch+json' })).status, 200);
    expectCode(await call('PATCH', one, { path: `/${kind}/extra`, body: k.patch, headers: { 'if-match': '"stale"' } }), 'PRECONDITION_FAILED');
    expectCode(await call('POST', `/${kind}`, { body: 'name: x', type: 'text/plain' }), 'UNSUPPORTED_MEDIA_TYPE');
    expectCode(await call('POST', `/${kind}`, { body: '{"name":', type: 'application/json' }), 'INVALID_JSON');
    expectCode(await call('POST', `/${kind}`, { body: k.invalid }), 'INVALID_CONFIG');
    assert.equal((await call('DELETE', one, { path: `/${kind}/extra2` })).status, 200);
    assert.equal((await call('DELETE', one, { path: `/${kind}/extra` })).status, 200);
  }
  const inUse = await call('DELETE', '/upstreams/{name}', { path: '/upstreams/up' });
  assert.equal(code(inUse), 'IN_USE');
  assert.equal((inUse.json as { referencedBy: { kind: string }[] }).referencedBy[0]!.kind, 'routes');
  expectCode(await call('POST', '/routes', { body: { name: 'dangling', listener: 'web', upstream: 'nowhere' } }), 'DANGLING_REFERENCE');

  const current = await call('GET', '/config');
  assert.equal(current.status, 200);
  const etag = String(current.headers.etag);
  assert.equal((await call('PUT', '/config', { body: current.json, headers: { 'if-match': etag } })).status, 200);
  expectCode(await call('PUT', '/config', { body: current.json, headers: { 'if-match': '"0000000000000000"' } }), 'PRECONDITION_FAILED');
  const valid = await call('POST', '/config/validate', { body: current.json });
  assert.deepEqual([valid.status, valid.json.valid], [200, true]);
  const invalid = await call('POST', '/config/validate', { body: { ...current.json, routes: [{ name: 'r' }] } });
  assert.deepEqual([invalid.status, invalid.json.valid], [200, false]);
  assert.equal((await call('POST', '/config/reload')).status, 200);
  await wrongMethod('DELETE', '/config');
});

test('every operation of the document is exercised', () => {
  const missing: string[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of Object.keys(item)) {
      if (method === 'parameters') continue;
      const op = `${method.toUpperCase()} ${path}`;
      if (!exercised.has(op)) missing.push(op);
    }
  }
  assert.deepEqual(missing, []);
  assert.ok(exercised.size > 30);
});
