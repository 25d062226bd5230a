// GET /openapi.json, checked against real responses: each endpoint is called on
// a real gateway and its status and body are validated (ajv, JSON Schema
// 2020-12) against the operation's schema in the served document.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import Ajv2020Module from 'ajv/dist/2020.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { send, type Reply } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { formatHostPort } from '../../src/net/address.js';

const TOKEN = 'openapi-test-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };
const KEY = 'key-for-consumer-alice-01';

type Doc = { openapi: string; paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>> };

let up: TestUpstream;
let gw: TestGateway;
let admin: string;
let doc: Doc;
// ajv is CommonJS: under NodeNext its default import is module.exports, whose `default` is the class.
const Ajv2020 = Ajv2020Module.default;
const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
/** `METHOD /path` of every operation a real response was validated for. */
const exercised = new Set<string>();

before(async () => {
  up = await startUpstream((_req, res) => res.end('ok'));
  gw = await startGateway({
    listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
    upstreams: [{ name: 'up', targets: [{ address: up.address }] }],
    consumers: [{ id: 'alice', keys: [KEY], qps: 100, qpd: 1000 }],
    routes: [{ name: 'api', listener: 'web', upstream: 'up', middlewares: [{ 'key-auth': {} }, { 'rate-limit': { rate: 1, burst: 10, key: 'ip' } }] }],
    admin: { listen: '127.0.0.1:0', token: TOKEN, diagnostics: true },
  });
  admin = `http://${formatHostPort(gw.gateway.adminAddress()!)}`;
  const r = await send(admin, { path: '/openapi.json', headers: auth });
  assert.equal(r.status, 200);
  doc = JSON.parse(r.body) as Doc;
  ajv.addSchema(doc, 'openapi.json');
  // Some traffic, so /stats and /limits have entries.
  for (let i = 0; i < 3; i++) assert.equal((await send(gw.url(), { path: '/x', headers: { 'x-api-key': KEY } })).status, 200);
});

after(async () => {
  await gw.close();
  await up.close();
});

/** JSON pointer escaping (RFC 6901 §3). */
const pointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/** Validates `reply` against operation `method template`'s response for its status; records the operation as exercised. */
function check(method: string, template: string, reply: Reply): void {
  const op = doc.paths[template]?.[method.toLowerCase()];
  assert.ok(op, `the document describes ${method} ${template}`);
  const response = op.responses[String(reply.status)];
  assert.ok(response, `${method} ${template} documents status ${reply.status} (body ${reply.body.slice(0, 200)})`);
  const type = String(reply.headers['content-type']).split(';')[0]!;
  assert.ok(response.content?.[type], `${method} ${template} ${reply.status} documents content type ${type}`);
  if (type === 'application/json') {
    const validate = ajv.getSchema(`openapi.json#/paths/${pointer(template)}/${method.toLowerCase()}/responses/${reply.status}/content/${pointer(type)}/schema`)!;
    assert.ok(validate, 'the schema compiles');
    const valid = validate(JSON.parse(reply.body));
    assert.ok(valid, `${method} ${template} ${reply.status}: ${ajv.errorsText(validate.errors)}`);
  }
  exercised.add(`${method} ${template}`);
}

/** A method the endpoint does not have: 405 METHOD_NOT_ALLOWED with Allow, the body the document's Error schema. */
async function wrongMethod(method: string, path: string): Promise<void> {
  const r = await send(admin, { method, path, headers: auth });
  assert.equal(r.status, 405, `${method} ${path}`);
  assert.ok(r.headers.allow);
  const validate = ajv.getSchema('openapi.json#/components/schemas/Error')!;
  assert.ok(validate(JSON.parse(r.body)), ajv.errorsText(validate.errors));
  assert.equal((JSON.parse(r.body) as { code: string }).code, 'METHOD_NOT_ALLOWED');
}

async function call(method: string, template: string, path = template, headers: Record<string, string> = auth): Promise<Reply> {
  const r = await send(admin, { method, path, headers });
  check(method, template, r);
  return r;
}

test('the document is OpenAPI 3.1 and its schemas compile', () => {
  assert.equal(doc.openapi, '3.1.0');
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (method === 'parameters') continue;
      for (const [status, response] of Object.entries(op.responses)) {
        assert.match(status, /^[1-5]\d\d$/);
        if (response.content?.['application/json'] === undefined) continue;
        assert.ok(ajv.getSchema(`openapi.json#/paths/${pointer(path)}/${method}/responses/${status}/content/application~1json/schema`), `${method} ${path} ${status} compiles`);
      }
    }
  }
});

test('real responses of every endpoint match the document', async () => {
  assert.equal((await call('GET', '/health', '/health', {})).status, 200);
  assert.equal((await call('GET', '/ready', '/ready', {})).status, 200);
  assert.equal((await call('GET', '/status', '/status', {})).status, 401);
  assert.equal((await call('GET', '/status')).status, 200);
  assert.equal((await call('GET', '/stats')).status, 200);
  assert.equal((await call('GET', '/openapi.json')).status, 200);

  // A connection held open, so /connections lists one and DELETE has something to close.
  const u = new URL(gw.url());
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  await new Promise<void>((resolve, reject) =>
    http.get({ host: u.hostname, port: u.port, path: '/held', agent, headers: { 'x-api-key': KEY } }, (res) => res.resume().on('end', resolve)).on('error', reject),
  );
  const listed = await waitFor(async () => {
    const r = await call('GET', '/connections', '/connections?kind=http1');
    const c = (JSON.parse(r.body) as { connections: { id: string }[] }).connections;
    return c.length > 0 ? c : undefined;
  }, 'the held connection to be listed');
  assert.equal((await call('GET', '/connections', '/connections?kind=bogus')).status, 400);
  assert.equal((await call('DELETE', '/connections/{id}', `/connections/${listed[0]!.id}`)).status, 202);
  assert.equal((await call('DELETE', '/connections/{id}', '/connections/no-such-id')).status, 404);
  await wrongMethod('POST', '/connections');
  agent.destroy();

  assert.equal((await call('GET', '/agents')).status, 200);
  assert.equal((await call('DELETE', '/agents/{id}', '/agents/nobody')).status, 404);
  const limits = await call('GET', '/limits');
  assert.equal(limits.status, 200);
  assert.ok((JSON.parse(limits.body) as { routes: { keys: unknown[] }[] }).routes[0]!.keys.length > 0);
  await wrongMethod('POST', '/limits');

  assert.equal((await call('POST', '/debug/profile', '/debug/profile?seconds=0')).status, 400);
  await wrongMethod('GET', '/debug/profile');
  assert.equal((await call('POST', '/debug/profile', '/debug/profile?seconds=1')).status, 200);
  assert.equal((await call('POST', '/debug/heap')).status, 200);
});

/**
 * Described but not served on this branch: the metrics and resource APIs are
 * built on other branches (the document describes them from their contract).
 * They answer 404 NOT_FOUND here; once served, this test fails until they
 * are exercised above.
 */
const ELSEWHERE = new Map<string, string>([
  ['/metrics', 'GET'],
  ['/config', 'GET'],
  ['/config/validate', 'POST'],
  ['/config/reload', 'POST'],
  ...['listeners', 'routes', 'upstreams', 'consumers', 'certificates'].flatMap((k): [string, string][] => [
    [`/${k}`, 'GET'],
    [`/${k}/{name}`, 'GET'],
  ]),
]);

test('every operation of the document is exercised, or listed as served elsewhere', async () => {
  const pending: string[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of Object.keys(item)) {
      if (method === 'parameters') continue;
      const op = `${method.toUpperCase()} ${path}`;
      if (exercised.has(op)) continue;
      assert.ok(ELSEWHERE.has(path), `${op} is neither exercised nor listed as served elsewhere`);
      pending.push(op);
    }
  }
  for (const [path, method] of ELSEWHERE) {
    const r = await send(admin, { method, path: path.replace('{name}', 'x'), headers: auth });
    assert.equal(r.status, 404, `${method} ${path} is not served on this branch`);
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'NOT_FOUND');
  }
  assert.ok(pending.length > 0);
});
