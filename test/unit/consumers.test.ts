import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import { loadConfigText, validateConfig, type LoadResult } from '../../src/config/load.js';
import type { ConfigError } from '../../src/config/errors.js';
import { ConsumerRegistry, maskConsumer } from '../../src/consumers/consumer.js';
import { authorizationCredentials, decodeBasic, withoutHeader } from '../../src/consumers/admit.js';
import { takeQueryParam } from '../../src/middlewares/key-auth.js';
import type { ConsumerConfig } from '../../src/config/schemas/consumers.js';

const HS_KEY = 'k'.repeat(40);

function base(): Record<string, any> {
  return {
    listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:8080' }],
    upstreams: [{ name: 'users', targets: [{ address: '127.0.0.1:2003' }] }],
    routes: [
      { name: 'users-api', listener: 'web', upstream: 'users', match: { pathPrefix: '/users' }, middlewares: [] },
      { name: 'token', listener: 'web', match: { path: '/oauth/tokens', methods: ['POST'] }, 'token-endpoint': { signingKey: HS_KEY } },
    ],
    consumers: [{ id: 'app', secret: 'app-secret-1', keys: ['0123456789abcdef-app'], routes: ['users-api'] }],
  };
}

function errorsOf(result: LoadResult): ConfigError[] {
  assert.equal(result.ok, false, 'expected the document to be rejected');
  return result.ok ? [] : result.errors;
}

/** Validates `base()` changed by `edit`; expects exactly one error, at `path`, matching `message`. */
function expectError(edit: (d: Record<string, any>) => void, path: string, message: RegExp, env: NodeJS.ProcessEnv = {}): void {
  const doc = base();
  edit(doc);
  const errors = errorsOf(validateConfig(doc, env));
  assert.equal(errors.length, 1, `expected one error, got ${JSON.stringify(errors)}`);
  assert.equal(errors[0]!.path, path);
  assert.match(errors[0]!.message, message);
}

describe('consumers: validation', () => {
  it('the base document is valid', () => {
    const r = validateConfig(base(), {});
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  });

  it('the issue example validates as written (env interpolated)', () => {
    const text = `
listeners:
  - { name: web, protocol: http, listen: 127.0.0.1:0 }
upstreams:
  - { name: users, targets: [{ address: 127.0.0.1:2003 }] }
routes:
  - name: users-api
    listener: web
    match: { pathPrefix: /users }
    upstream: users
    middlewares:
      - ip-restriction: { deny: [10.0.0.0/8, "2001:db8::/32"] }
      - jwt-auth: {}
      - rate-limit: { rate: 100, burst: 200, key: consumer }
  - name: token
    listener: web
    match: { path: /oauth/tokens, methods: [POST] }
    token-endpoint: { signingKey: "\${JWT_SIGNING_KEY}", algorithm: HS256, ttl: 1h }
consumers:
  - { id: app_id_b, secret: "\${APP_B_SECRET}", qps: 10, qpd: 100000, routes: [users-api] }
`;
    const r = loadConfigText(text, { JWT_SIGNING_KEY: 's'.repeat(48), APP_B_SECRET: 'b-secret-123' });
    if (!r.ok) assert.fail(r.errors.map((e) => `${e.path}: ${e.message}`).join('\n'));
    const c = r.config.consumers[0]!;
    assert.equal(c.qps, 10);
    assert.equal(c.qpd, 100000);
    assert.deepEqual(c.routes, ['users-api']);
    assert.equal(r.config.routes[1]!['token-endpoint']!.ttl, 3_600_000);
    assert.equal(r.config.routes[1]!['token-endpoint']!.issuer, 'portico');
    assert.deepEqual(r.config.routes[0]!.middlewares.map((m) => m.name), ['ip-restriction', 'jwt-auth', 'rate-limit']);
    // Without the env the error names the variable.
    const missing = errorsOf(loadConfigText(text, {}));
    assert.ok(missing.some((e) => /JWT_SIGNING_KEY/.test(e.message)));
  });

  it('qps, qpd and numeric env strings', () => {
    const r = validateConfig({ ...base(), consumers: [{ id: 'a', qps: '0.5', qpd: '7' }] }, {});
    assert.ok(r.ok);
    assert.equal(r.config.consumers[0]!.qps, 0.5);
    assert.equal(r.config.consumers[0]!.qpd, 7);
    expectError((d) => (d.consumers[0].qps = 0), 'consumers[0].qps', /must be > 0/);
    expectError((d) => (d.consumers[0].qps = -1), 'consumers[0].qps', /must be > 0/);
    expectError((d) => (d.consumers[0].qpd = 0), 'consumers[0].qpd', /must be >= 1/);
    expectError((d) => (d.consumers[0].qpd = 1.5), 'consumers[0].qpd', /whole number/);
  });

  it('ids, secrets, keys, routes, ipAllow', () => {
    expectError((d) => (d.consumers[0].id = 'bad id'), 'consumers[0].id', /letters, digits/);
    expectError((d) => (d.consumers[0].secret = 'short'), 'consumers[0].secret', /at least 8/);
    expectError((d) => (d.consumers[0].keys = ['tooshort']), 'consumers[0].keys[0]', /at least 16/);
    expectError((d) => (d.consumers[0].keys = ['has a space in the key']), 'consumers[0].keys[0]', /visible ASCII/);
    expectError((d) => (d.consumers[0].routes = ['users-api', 'nope']), 'consumers[0].routes[1]', /no route named "nope"/);
    expectError((d) => (d.consumers[0].ipAllow = ['10.0.0.0/8', '10.0.0.0/33']), 'consumers[0].ipAllow[1]', /not a valid IP address or CIDR/);
    expectError((d) => (d.consumers[0].ipAllow = ['banana']), 'consumers[0].ipAllow[0]', /not a valid IP address or CIDR/);
    expectError((d) => (d.consumers[0].password = 'x'), 'consumers[0].password', /unknown key/);
  });

  it('duplicate ids, API keys and issuers; messages never show a key', () => {
    expectError((d) => d.consumers.push({ id: 'app' }), 'consumers[1].id', /duplicate id "app"/);
    const key = '0123456789abcdef-app';
    const doc = base();
    doc.consumers.push({ id: 'other', keys: [key] });
    const errors = errorsOf(validateConfig(doc, {}));
    assert.equal(errors[0]!.path, 'consumers[1].keys[0]');
    assert.match(errors[0]!.message, /already used by consumer "app"/);
    assert.ok(!errors[0]!.message.includes(key));
    expectError(
      (d) => {
        d.consumers[0].jwtIssuers = ['https://idp'];
        d.consumers.push({ id: 'b', jwtIssuers: ['https://idp'] });
      },
      'consumers[1].jwtIssuers[0]',
      /already claimed by consumer "app"/,
    );
  });

  it('token-endpoint: key checks per algorithm, ttl, unknown keys', () => {
    expectError((d) => (d.routes[1]['token-endpoint'].signingKey = 'short-key'), 'routes[1].token-endpoint.signingKey', /at least 32 bytes/);
    expectError((d) => (d.routes[1]['token-endpoint'].algorithm = 'HS512'), 'routes[1].token-endpoint.algorithm', /HS256, RS256 or ES256/);
    expectError((d) => (d.routes[1]['token-endpoint'].algorithm = 'RS256'), 'routes[1].token-endpoint.signingKey', /PEM private key/);
    expectError((d) => (d.routes[1]['token-endpoint'].ttl = 'soon'), 'routes[1].token-endpoint.ttl', /duration/);
    expectError((d) => (d.routes[1]['token-endpoint'].ttl = '2d'), 'routes[1].token-endpoint.ttl', /duration/);
    expectError((d) => (d.routes[1]['token-endpoint'].ttl = '25h'), 'routes[1].token-endpoint.ttl', /1s to 24h/);
    expectError((d) => (d.routes[1]['token-endpoint'].audience = 'x'), 'routes[1].token-endpoint.audience', /unknown key/);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    expectError(
      (d) => Object.assign(d.routes[1]['token-endpoint'], { algorithm: 'RS256', signingKey: ec }),
      'routes[1].token-endpoint.signingKey',
      /RSA private key/,
    );
    expectError(
      (d) => Object.assign(d.routes[1]['token-endpoint'], { algorithm: 'ES256', signingKey: rsa }),
      'routes[1].token-endpoint.signingKey',
      /EC P-256/,
    );
    // A PEM passed through an env var with literal "\n"s is accepted.
    const doc = base();
    Object.assign(doc.routes[1]['token-endpoint'], { algorithm: 'ES256', signingKey: '${EC_KEY}' });
    assert.ok(validateConfig(doc, { EC_KEY: ec.trim().replace(/\n/g, '\\n') }).ok);
  });

  it('jwt-auth options: paths of bad values', () => {
    const mw = (m: unknown) => (d: Record<string, any>) => (d.routes[0].middlewares = [{ 'ip-restriction': { allow: ['127.0.0.1'] } }, m]);
    expectError(mw({ 'jwt-auth': { leeway: 'forever' } }), 'routes[0].middlewares[1].jwt-auth.leeway', /duration from 0s to 5m/);
    expectError(mw({ 'jwt-auth': { leeway: '10m' } }), 'routes[0].middlewares[1].jwt-auth.leeway', /0s to 5m/);
    expectError(mw({ 'jwt-auth': { algorithms: ['none'] } }), 'routes[0].middlewares[1].jwt-auth.algorithms[0]', /HS256, RS256 or ES256/);
    expectError(mw({ 'jwt-auth': { publicKey: 'nope' } }), 'routes[0].middlewares[1].jwt-auth.publicKey', /PEM public key/);
    expectError(mw({ 'jwt-auth': { jwksUrl: 'ftp://x/keys' } }), 'routes[0].middlewares[1].jwt-auth.jwksUrl', /http/);
    expectError(mw({ 'jwt-auth': { signingKey: 'short' } }), 'routes[0].middlewares[1].jwt-auth.signingKey', /32 bytes/);
    expectError(
      mw({ 'jwt-auth': { jwksUrl: 'http://127.0.0.1:1/jwks', algorithms: ['HS256'] } }),
      'routes[0].middlewares[1].jwt-auth.algorithms[0]',
      /HS256 needs signingKey/,
    );
    expectError(mw({ 'jwt-auth': { header: 'bad header' } }), 'routes[0].middlewares[1].jwt-auth.header', /header name/);
    expectError(mw({ 'jwt-auth': { bogus: 1 } }), 'routes[0].middlewares[1].jwt-auth.bogus', /unknown key/);
    // jwt-auth: {} needs a token endpoint (or its own keys, or consumer secrets).
    expectError(
      (d) => {
        d.routes.pop();
        d.routes[0].middlewares = [{ 'jwt-auth': {} }];
      },
      'routes[0].middlewares[0].jwt-auth',
      /no key to verify tokens/,
    );
  });

  it('key-auth, basic-auth, ip-restriction and fault-injection options', () => {
    const mw = (m: unknown) => (d: Record<string, any>) => (d.routes[0].middlewares = [m]);
    expectError(mw({ 'key-auth': { query: 'a b' } }), 'routes[0].middlewares[0].key-auth.query', /letters, digits/);
    expectError(mw({ 'basic-auth': { realm: 'a"b' } }), 'routes[0].middlewares[0].basic-auth.realm', /without "/);
    expectError(mw({ 'ip-restriction': { deny: ['10.0.0.0/8', '2001:db8::/129'] } }), 'routes[0].middlewares[0].ip-restriction.deny[1]', /not a valid IP/);
    expectError(mw({ 'ip-restriction': { allow: ['10.0.0.300'] } }), 'routes[0].middlewares[0].ip-restriction.allow[0]', /not a valid IP/);
    expectError(mw({ 'ip-restriction': {} }), 'routes[0].middlewares[0].ip-restriction', /allow or deny/);
    expectError(mw({ 'fault-injection': {} }), 'routes[0].middlewares[0].fault-injection', /abort, delay or both/);
    expectError(mw({ 'fault-injection': { abort: { percent: 101, status: 503 } } }), 'routes[0].middlewares[0].fault-injection.abort.percent', /<= 100/);
    expectError(mw({ 'fault-injection': { abort: { status: 99 } } }), 'routes[0].middlewares[0].fault-injection.abort.status', />= 200/);
    expectError(mw({ 'fault-injection': { delay: { duration: 'x' } } }), 'routes[0].middlewares[0].fault-injection.delay.duration', /duration/);
  });
});

describe('ConsumerRegistry', () => {
  const configs: ConsumerConfig[] = [
    { id: 'a', secret: 'secret-of-a', keys: ['key-of-a-0123456789'], jwtIssuers: ['https://idp.a'] },
    { id: 'b', keys: ['key-of-b-0123456789', 'key2-of-b-0123456789'] },
  ];
  const reg = new ConsumerRegistry(configs);

  it('looks up by id, API key and issuer', () => {
    assert.equal(reg.get('a')?.id, 'a');
    assert.equal(reg.get('z'), undefined);
    assert.equal(reg.byApiKey('key-of-a-0123456789')?.id, 'a');
    assert.equal(reg.byApiKey('key2-of-b-0123456789')?.id, 'b');
    assert.equal(reg.byApiKey('key-of-a-012345678'), undefined);
    assert.equal(reg.byIssuer('https://idp.a')?.id, 'a');
    assert.equal(reg.byIssuer('https://idp.b'), undefined);
    assert.equal(reg.size, 2);
  });

  it('authenticates id and secret', () => {
    assert.equal(reg.authenticate('a', 'secret-of-a')?.id, 'a');
    assert.equal(reg.authenticate('a', 'secret-of-a '), undefined);
    assert.equal(reg.authenticate('a', ''), undefined);
    assert.equal(reg.authenticate('a', 'x'.repeat(100_000)), undefined);
    assert.equal(reg.authenticate('b', 'anything'), undefined, 'a consumer without secret never matches');
    assert.equal(reg.authenticate('nobody', 'secret-of-a'), undefined);
  });

  it('masks secrets and keys whenever a consumer is printed', () => {
    const a = reg.get('a')!;
    for (const text of [JSON.stringify(a), JSON.stringify(reg), inspect(a), inspect(reg), JSON.stringify(maskConsumer(configs[0]!))]) {
      assert.ok(!text.includes('secret-of-a'), text);
      assert.ok(!text.includes('key-of-a'), text);
      assert.match(text, /\*\*\*\*\*\*/);
    }
    // The quota readers still see the config.
    assert.equal(a.config.id, 'a');
  });
});

describe('credential parsing helpers', () => {
  it('authorizationCredentials', () => {
    assert.equal(authorizationCredentials('Bearer abc', 'Bearer'), 'abc');
    assert.equal(authorizationCredentials('bearer abc', 'Bearer'), 'abc');
    assert.equal(authorizationCredentials('Bearer', 'Bearer'), undefined);
    assert.equal(authorizationCredentials('Bearer   ', 'Bearer'), undefined);
    assert.equal(authorizationCredentials('Bearerabc', 'Bearer'), undefined);
    assert.equal(authorizationCredentials('Basic abc', 'Bearer'), undefined);
  });

  it('decodeBasic', () => {
    const b = (s: string) => Buffer.from(s).toString('base64');
    assert.deepEqual(decodeBasic(b('id:pa:ss')), { id: 'id', secret: 'pa:ss' });
    assert.deepEqual(decodeBasic(b('ünï:cödé')), { id: 'ünï', secret: 'cödé' });
    assert.equal(decodeBasic(b(':secret')), undefined);
    assert.equal(decodeBasic(b('nocolon')), undefined);
    assert.equal(decodeBasic('!!!!'), undefined);
    assert.equal(decodeBasic('abc'), undefined);
    assert.equal(decodeBasic(Buffer.from([0xff, 0xfe, 0x3a, 0x41]).toString('base64')), undefined, 'invalid UTF-8');
    assert.equal(decodeBasic(b('id:se\ncret')), undefined, 'control characters');
    assert.equal(decodeBasic('A'.repeat(8192)), undefined);
  });

  it('takeQueryParam removes every occurrence and keeps the rest as sent', () => {
    assert.deepEqual(takeQueryParam('?a=1&apikey=K%2B1&b=%20x', 'apikey'), { value: 'K+1', query: '?a=1&b=%20x' });
    assert.deepEqual(takeQueryParam('?apikey=1&apikey=2', 'apikey'), { value: '1', query: '' });
    assert.deepEqual(takeQueryParam('?a=1', 'apikey'), { value: undefined, query: '?a=1' });
    assert.deepEqual(takeQueryParam('', 'apikey'), { value: undefined, query: '' });
    assert.deepEqual(takeQueryParam('?api%6Bey=z&x', 'apikey'), { value: 'z', query: '?x' });
    assert.deepEqual(takeQueryParam('?apikey=%zz&c=3', 'apikey'), { value: '', query: '?c=3' });
  });

  it('withoutHeader', () => {
    const list = ['A', '1', 'x-consumer-id', 'spoof', 'X-Consumer-Id', 'spoof2', 'b', '2'];
    assert.deepEqual(withoutHeader(list, 'x-consumer-id'), ['A', '1', 'b', '2']);
    assert.equal(withoutHeader(list, 'c'), list);
  });
});
