import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignJWT, exportJWK, type JWTPayload } from 'jose';
import { waitFor } from '../helpers/wait.js';
import { startUpstream, freePort, type TestUpstream } from '../helpers/upstream.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { validateConfig } from '../../src/config/load.js';
import { send, type Reply } from '../helpers/http.js';

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const now = () => Math.floor(Date.now() / 1000);

async function getToken(url: string, id: string, secret: string, path = '/oauth/tokens'): Promise<string> {
  const r = await send(url, {
    method: 'POST',
    path,
    headers: { authorization: basic(id, secret), 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  });
  assert.equal(r.status, 200, r.body);
  return (JSON.parse(r.body) as { access_token: string }).access_token;
}

/** A JWT signed by the test itself. */
function sign(payload: JWTPayload, key: KeyObject | Uint8Array, alg: string, kid?: string): Promise<string> {
  return new SignJWT(payload).setProtectedHeader(kid === undefined ? { alg } : { alg, kid }).sign(key);
}

function upstreamSaw(up: TestUpstream): Record<string, string> {
  return up.received.at(-1)!.headers as Record<string, string>;
}

function assertBearerChallenge(r: Reply, error: boolean): void {
  assert.equal(r.status, 401, r.body);
  const h = r.headers['www-authenticate']!;
  assert.match(h, /^Bearer realm="portico"/);
  if (error) assert.match(h, /error="invalid_token"/);
  else assert.doesNotMatch(h, /error=/, 'no error attribute when no token was sent (RFC 6750 §3.1)');
  assert.equal((JSON.parse(r.body) as { code: string }).code, 'UNAUTHORIZED');
}

describe('the issue config: token endpoint → jwt-auth → rate-limit', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  const env = { JWT_SIGNING_KEY: 'issue-example-signing-key-0123456789abcdef', APP_B_SECRET: 'app-b-secret-value' };
  const doc = {
    listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
    upstreams: [{ name: 'users', targets: [{ address: '127.0.0.1:1' }] }],
    routes: [
      {
        name: 'users-api',
        listener: 'web',
        match: { pathPrefix: '/users' },
        upstream: 'users',
        middlewares: [{ 'ip-restriction': { deny: ['10.0.0.0/8', '2001:db8::/32'] } }, { 'jwt-auth': {} }, { 'rate-limit': { rate: 100, burst: 200, key: 'consumer' } }],
      },
      { name: 'token', listener: 'web', match: { path: '/oauth/tokens', methods: ['POST'] }, 'token-endpoint': { signingKey: '${JWT_SIGNING_KEY}', algorithm: 'HS256', ttl: '1h' } },
    ],
    consumers: [
      { id: 'app_id_b', secret: '${APP_B_SECRET}', qps: 10, qpd: 100000, routes: ['users-api'] },
      { id: 'elsewhere', secret: 'elsewhere-secret', routes: ['token'] },
    ],
  };
  before(async () => {
    up = await startUpstream();
    doc.upstreams[0]!.targets[0]!.address = up.address;
    Object.assign(process.env, env);
    gw = await startGateway(doc);
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('validates with the env it names', () => {
    const r = validateConfig(doc, env);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  });

  test('a token from the endpoint opens the route; the upstream learns the consumer', async () => {
    const token = await getToken(gw.url(), 'app_id_b', env.APP_B_SECRET);
    const r = await send(gw.url(), { path: '/users/42', headers: { ...bearer(token), 'x-consumer-id': 'spoofed' } });
    assert.equal(r.status, 200, r.body);
    const seen = upstreamSaw(up);
    assert.equal(seen['x-consumer-id'], 'app_id_b', 'a client-sent X-Consumer-Id is replaced');
    assert.equal(seen.authorization, `Bearer ${token}`, 'the token is forwarded by default');
  });

  test('no token: 401 with a bare Bearer challenge; the upstream is not called', async () => {
    const before = up.received.length;
    assertBearerChallenge(await send(gw.url(), { path: '/users/1' }), false);
    assertBearerChallenge(await send(gw.url(), { path: '/users/1', headers: { authorization: basic('app_id_b', env.APP_B_SECRET) } }), false);
    assert.equal(up.received.length, before);
  });

  test('a consumer whose routes do not include this route: 403', async () => {
    const token = await getToken(gw.url(), 'elsewhere', 'elsewhere-secret');
    const r = await send(gw.url(), { path: '/users/1', headers: bearer(token) });
    assert.equal(r.status, 403);
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'FORBIDDEN');
  });

  test('a token signed with another key: 401 invalid_token', async () => {
    const forged = await sign({ iss: 'portico', sub: 'app_id_b', exp: now() + 60 }, new TextEncoder().encode('x'.repeat(40)), 'HS256');
    assertBearerChallenge(await send(gw.url(), { path: '/users/1', headers: bearer(forged) }), true);
  });
});

describe('jwt-auth with its own keys: HS256, RS256, ES256; leeway; claims', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  const HS = 'jwt-auth-shared-hs256-secret-0123456789';
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = (k: KeyObject) => k.export({ type: 'spki', format: 'pem' }) as string;
  const hsKey = new TextEncoder().encode(HS);

  before(async () => {
    up = await startUpstream();
    const route = (name: string, prefix: string, opts: Record<string, unknown>) => ({
      name,
      listener: 'web',
      match: { pathPrefix: prefix },
      upstream: 'up',
      middlewares: [{ 'jwt-auth': opts }],
    });
    gw = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false, trustedProxies: ['127.0.0.1'] }],
      upstreams: [{ name: 'up', targets: [{ address: up.address }] }],
      routes: [
        route('hs', '/hs', { signingKey: HS }),
        route('hs-strict', '/strict', { signingKey: HS, leeway: '0s', audience: 'api://users', issuer: ['https://idp.a', 'portico'] }),
        route('rs', '/rs', { publicKey: spki(rsa.publicKey) }),
        route('es', '/es', { publicKey: spki(ec.publicKey) }),
        route('hidden', '/hidden', { signingKey: HS, hideCredentials: true, header: 'X-Token' }),
        route('own', '/own', { consumerSecrets: true }),
        route('limited', '/limited', { signingKey: HS }),
      ],
      consumers: [
        { id: 'alice', secret: 'alice-secret-0123456789abcdef' },
        { id: 'idp-client', jwtIssuers: ['https://idp.a'] },
        { id: 'only-hs', routes: ['hs'] },
        { id: 'office', ipAllow: ['203.0.113.0/24', '2001:db8:1::/48'] },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('HS256: sub names the consumer', async () => {
    const t = await sign({ sub: 'alice', exp: now() + 60 }, hsKey, 'HS256');
    const r = await send(gw.url(), { path: '/hs/x', headers: bearer(t) });
    assert.equal(r.status, 200, r.body);
    assert.equal(upstreamSaw(up)['x-consumer-id'], 'alice');
  });

  test('a verified token is remembered until it expires, then refused', async () => {
    const t = await sign({ sub: 'alice', aud: 'api://users', iss: 'portico', exp: now() + 2 }, hsKey, 'HS256');
    for (let i = 0; i < 3; i++) assert.equal((await send(gw.url(), { path: '/strict/x', headers: bearer(t) })).status, 200);
    // leeway 0s on this route: once exp passes, the cached entry must not admit it.
    await waitFor(async () => (await send(gw.url(), { path: '/strict/x', headers: bearer(t) })).status === 401, 'the expired token to be refused', 6000, 100);
    // A token that differs from a cached one in its signature only is never served from the cache.
    const fresh = await sign({ sub: 'alice', aud: 'api://users', iss: 'portico', exp: now() + 60 }, hsKey, 'HS256');
    assert.equal((await send(gw.url(), { path: '/strict/x', headers: bearer(fresh) })).status, 200);
    const forged = fresh.slice(0, fresh.lastIndexOf('.') + 1) + 'A'.repeat(43);
    assertBearerChallenge(await send(gw.url(), { path: '/strict/x', headers: bearer(forged) }), true);
  });

  test('RS256 and ES256 with a PEM public key; iss maps through jwtIssuers', async () => {
    const rs = await sign({ iss: 'https://idp.a', sub: 'user-7', exp: now() + 60 }, rsa.privateKey, 'RS256');
    const es = await sign({ iss: 'https://idp.a', sub: 'user-7', exp: now() + 60 }, ec.privateKey, 'ES256');
    assert.equal((await send(gw.url(), { path: '/rs/1', headers: bearer(rs) })).status, 200);
    assert.equal(upstreamSaw(up)['x-consumer-id'], 'idp-client');
    assert.equal((await send(gw.url(), { path: '/es/1', headers: bearer(es) })).status, 200);
    assert.equal(upstreamSaw(up)['x-consumer-id'], 'idp-client');
    // Crossed: an ES256 token on the RS256 route, an RS256 token on the ES256 route.
    assertBearerChallenge(await send(gw.url(), { path: '/rs/1', headers: bearer(es) }), true);
    assertBearerChallenge(await send(gw.url(), { path: '/es/1', headers: bearer(rs) }), true);
  });

  test('algorithm confusion: an HS256 token keyed with the RSA public key is refused', async () => {
    const confused = await sign({ sub: 'alice', exp: now() + 60 }, new TextEncoder().encode(spki(rsa.publicKey)), 'HS256');
    assertBearerChallenge(await send(gw.url(), { path: '/rs/1', headers: bearer(confused) }), true);
  });

  test('exp and nbf with the default 30s leeway', async () => {
    const t = (claims: JWTPayload) => sign({ sub: 'alice', ...claims }, hsKey, 'HS256');
    assert.equal((await send(gw.url(), { path: '/hs/1', headers: bearer(await t({ exp: now() - 10 })) })).status, 200, 'expired 10s ago, within leeway');
    assert.equal((await send(gw.url(), { path: '/hs/1', headers: bearer(await t({ exp: now() + 60, nbf: now() + 10 })) })).status, 200, 'valid in 10s, within leeway');
    const expired = await send(gw.url(), { path: '/hs/1', headers: bearer(await t({ exp: now() - 120 })) });
    assertBearerChallenge(expired, true);
    assert.match(expired.headers['www-authenticate']!, /error_description="the token has expired"/);
    const early = await send(gw.url(), { path: '/hs/1', headers: bearer(await t({ exp: now() + 600, nbf: now() + 120 })) });
    assertBearerChallenge(early, true);
    assert.match(early.headers['www-authenticate']!, /not valid yet/);
    const noExp = await send(gw.url(), { path: '/hs/1', headers: bearer(await t({})) });
    assertBearerChallenge(noExp, true);
    assert.match(noExp.headers['www-authenticate']!, /no exp claim/);
  });

  test('leeway 0s, audience and issuer checks', async () => {
    const t = (claims: JWTPayload) => sign({ sub: 'alice', aud: 'api://users', iss: 'portico', exp: now() + 60, ...claims }, hsKey, 'HS256');
    assert.equal((await send(gw.url(), { path: '/strict/1', headers: bearer(await t({})) })).status, 200);
    assertBearerChallenge(await send(gw.url(), { path: '/strict/1', headers: bearer(await t({ exp: now() - 5 })) }), true);
    assertBearerChallenge(await send(gw.url(), { path: '/strict/1', headers: bearer(await t({ aud: 'api://other' })) }), true);
    assertBearerChallenge(await send(gw.url(), { path: '/strict/1', headers: bearer(await t({ iss: 'https://evil' })) }), true);
  });

  test('a token naming no consumer: 401', async () => {
    const t = await sign({ sub: 'stranger', iss: 'https://unknown', exp: now() + 60 }, hsKey, 'HS256');
    assertBearerChallenge(await send(gw.url(), { path: '/hs/1', headers: bearer(t) }), true);
  });

  test('consumer routes: 403 on a route not listed', async () => {
    const t = await sign({ sub: 'only-hs', exp: now() + 60 }, hsKey, 'HS256');
    assert.equal((await send(gw.url(), { path: '/hs/1', headers: bearer(t) })).status, 200);
    assert.equal((await send(gw.url(), { path: '/limited/1', headers: bearer(t) })).status, 403);
  });

  test('consumer ipAllow: 403 from other addresses (v4 and v6)', async () => {
    const t = await sign({ sub: 'office', exp: now() + 60 }, hsKey, 'HS256');
    const from = (ip: string) => send(gw.url(), { path: '/hs/1', headers: { ...bearer(t), 'x-forwarded-for': ip } });
    assert.equal((await from('203.0.113.9')).status, 200);
    assert.equal((await from('2001:db8:1::5')).status, 200);
    assert.equal((await from('198.51.100.1')).status, 403);
    assert.equal((await from('2001:db8:2::5')).status, 403);
    assert.equal((await send(gw.url(), { path: '/hs/1', headers: bearer(t) })).status, 403, 'loopback is not in the list');
  });

  test('a custom header, and hideCredentials removes it upstream', async () => {
    const t = await sign({ sub: 'alice', exp: now() + 60 }, hsKey, 'HS256');
    const r = await send(gw.url(), { path: '/hidden/1', headers: { 'x-token': t } });
    assert.equal(r.status, 200, r.body);
    assert.equal(upstreamSaw(up)['x-token'], undefined);
    assert.equal((await send(gw.url(), { path: '/hidden/1', headers: { 'x-token': `Bearer ${t}` } })).status, 200);
    assertBearerChallenge(await send(gw.url(), { path: '/hidden/1', headers: bearer(t) }), false);
  });

  test('consumerSecrets: an HS256 token the consumer signs with its own secret', async () => {
    const own = new TextEncoder().encode('alice-secret-0123456789abcdef');
    assert.equal((await send(gw.url(), { path: '/own/1', headers: bearer(await sign({ iss: 'alice', exp: now() + 60 }, own, 'HS256')) })).status, 200);
    assert.equal(upstreamSaw(up)['x-consumer-id'], 'alice');
    // Signed with alice's secret but claiming to be someone else: refused.
    assertBearerChallenge(await send(gw.url(), { path: '/own/1', headers: bearer(await sign({ iss: 'only-hs', exp: now() + 60 }, own, 'HS256')) }), true);
  });

  test('malformed tokens and headers: 401 (or 400 for two headers), never a crash', async () => {
    const valid = await sign({ sub: 'alice', exp: now() + 60 }, hsKey, 'HS256');
    const [h, p] = valid.split('.');
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const bad = [
      'garbage',
      'a.b.c',
      `${h}.${p}`,
      `${h}.${p}.`,
      `${h}.${p}.${'A'.repeat(10)}`,
      `${b64({ alg: 'none' })}.${p}.`,
      `${b64({ alg: 'none' })}.${p}.x`,
      `${b64({ alg: 'HS512' })}.${p}.xyz`,
      `${b64({ alg: 'HS256' })}.${Buffer.from('not json').toString('base64url')}.xyz`,
      `${b64([1, 2])}.${p}.xyz`,
      `${'e'.repeat(9000)}.${p}.xyz`,
      `${h}.${p}.${valid.split('.')[2]}==`,
      'ÿÿÿÿ.ÿÿÿ.ÿÿ',
      `${h}.${p}.sig with space`,
    ];
    for (const token of bad) {
      const r = await send(gw.url(), { path: '/hs/1', headers: { authorization: `Bearer ${token}` } });
      assertBearerChallenge(r, true);
    }
    for (const header of ['Bearer', 'Bearer ', 'bearer    ']) {
      const r = await send(gw.url(), { path: '/hs/1', headers: { authorization: header } });
      assert.equal(r.status, 401, JSON.stringify(header));
    }
    for (const header of ['Basic Zm9vOmJhcg==', 'Token abc', 'Bearerxyz', `${valid}`]) {
      assertBearerChallenge(await send(gw.url(), { path: '/hs/1', headers: { authorization: header } }), false);
    }
    const two = await send(gw.url(), { path: '/hs/1', headers: { authorization: [`Bearer ${valid}`, `Bearer ${valid}`] } });
    assert.equal(two.status, 400);
    assert.match(two.headers['www-authenticate']!, /invalid_request/);
    // Still serving.
    assert.equal((await send(gw.url(), { path: '/hs/1', headers: bearer(valid) })).status, 200);
  });
});

describe('jwt-auth with a JWKS URL (a real key server)', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  let jwksServer: http.Server;
  let jwksHits = 0;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' });

  before(async () => {
    const keys = [
      { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
      { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' },
    ];
    jwksServer = http.createServer((_req, res) => {
      jwksHits++;
      const body = JSON.stringify({ keys });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    const jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
    const dead = `http://127.0.0.1:${await freePort()}/jwks.json`;
    up = await startUpstream();
    gw = await startGateway({
      log: { level: 'error' }, // the unreachable key server is logged as a warning
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [{ name: 'up', targets: [{ address: up.address }] }],
      routes: [
        { name: 'jwks', listener: 'web', match: { pathPrefix: '/jwks' }, upstream: 'up', middlewares: [{ 'jwt-auth': { jwksUrl, jwksTimeout: '2s' } }] },
        { name: 'dead', listener: 'web', match: { pathPrefix: '/dead' }, upstream: 'up', middlewares: [{ 'jwt-auth': { jwksUrl: dead, jwksTimeout: '1s' } }] },
      ],
      consumers: [{ id: 'partner', jwtIssuers: ['https://idp.partner'] }],
    });
  });
  after(async () => {
    await gw.close();
    await up.close();
    await new Promise<void>((resolve) => jwksServer.close(() => resolve()));
  });

  test('RS256 and ES256 tokens are verified with the key their kid names', async () => {
    const claims = { iss: 'https://idp.partner', sub: 'svc', exp: now() + 60 };
    const rs = await sign(claims, rsa.privateKey, 'RS256', 'rsa-1');
    const es = await sign(claims, ec.privateKey, 'ES256', 'ec-1');
    assert.equal((await send(gw.url(), { path: '/jwks/a', headers: bearer(rs) })).status, 200);
    assert.equal(upstreamSaw(up)['x-consumer-id'], 'partner');
    assert.equal((await send(gw.url(), { path: '/jwks/b', headers: bearer(es) })).status, 200);
    assert.ok(jwksHits >= 1, 'the key server was asked');
    const hits = jwksHits;
    assert.equal((await send(gw.url(), { path: '/jwks/c', headers: bearer(rs) })).status, 200);
    assert.equal(jwksHits, hits, 'keys are cached');
  });

  test('an unknown kid, a wrong key, a kid pointing to the other algorithm: 401', async () => {
    const claims = { iss: 'https://idp.partner', sub: 'svc', exp: now() + 60 };
    assertBearerChallenge(await send(gw.url(), { path: '/jwks/a', headers: bearer(await sign(claims, stranger.privateKey, 'ES256', 'nope')) }), true);
    assertBearerChallenge(await send(gw.url(), { path: '/jwks/a', headers: bearer(await sign(claims, stranger.privateKey, 'ES256', 'ec-1')) }), true);
    assertBearerChallenge(await send(gw.url(), { path: '/jwks/a', headers: bearer(await sign(claims, ec.privateKey, 'ES256', 'rsa-1')) }), true);
  });

  test('a key server that cannot be reached: 401, and the gateway keeps serving', async () => {
    const t = await sign({ iss: 'https://idp.partner', sub: 'svc', exp: now() + 60 }, rsa.privateKey, 'RS256', 'rsa-1');
    const r = await send(gw.url(), { path: '/dead/1', headers: bearer(t) });
    assertBearerChallenge(r, true);
    assert.match(r.headers['www-authenticate']!, /unavailable/);
    assert.equal((await send(gw.url(), { path: '/jwks/1', headers: bearer(t) })).status, 200);
  });
});

describe('jwt-auth: {} with RS256 and ES256 token endpoints', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  const pem = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'pem' }) as string;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  before(async () => {
    up = await startUpstream();
    gw = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [{ name: 'up', targets: [{ address: up.address }] }],
      routes: [
        { name: 'api', listener: 'web', match: { pathPrefix: '/api' }, upstream: 'up', middlewares: [{ 'jwt-auth': {} }] },
        { name: 'es-only', listener: 'web', match: { pathPrefix: '/es-only' }, upstream: 'up', middlewares: [{ 'jwt-auth': { algorithms: ['ES256'] } }] },
        { name: 'rs', listener: 'web', match: { path: '/rs/token' }, 'token-endpoint': { signingKey: pem(rsa), algorithm: 'RS256', issuer: 'gw-rs' } },
        { name: 'es', listener: 'web', match: { path: '/es/token' }, 'token-endpoint': { signingKey: pem(ec), algorithm: 'ES256', issuer: 'gw-es' } },
      ],
      consumers: [{ id: 'app', secret: 'app-secret-123' }],
    });
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('tokens from either endpoint open the route; algorithms narrows it', async () => {
    const rs = await getToken(gw.url(), 'app', 'app-secret-123', '/rs/token');
    const es = await getToken(gw.url(), 'app', 'app-secret-123', '/es/token');
    assert.equal((await send(gw.url(), { path: '/api/1', headers: bearer(rs) })).status, 200);
    assert.equal((await send(gw.url(), { path: '/api/1', headers: bearer(es) })).status, 200);
    assert.equal(upstreamSaw(up)['x-consumer-id'], 'app');
    assert.equal((await send(gw.url(), { path: '/es-only/1', headers: bearer(es) })).status, 200);
    assertBearerChallenge(await send(gw.url(), { path: '/es-only/1', headers: bearer(rs) }), true);
  });

  test('a token signed by the test with the right key but another issuer is refused', async () => {
    const t = await sign({ iss: 'someone', sub: 'app', exp: now() + 60 }, ec, 'ES256');
    assertBearerChallenge(await send(gw.url(), { path: '/api/1', headers: bearer(t) }), true);
  });
});

describe('key-auth and basic-auth', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  const KEY = 'k3y-0f-the-app-0123456789';
  before(async () => {
    up = await startUpstream();
    gw = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false, trustedProxies: ['127.0.0.1'] }],
      upstreams: [{ name: 'up', targets: [{ address: up.address }] }],
      routes: [
        { name: 'key-header', listener: 'web', match: { pathPrefix: '/kh' }, upstream: 'up', middlewares: [{ 'key-auth': {} }] },
        { name: 'key-query', listener: 'web', match: { pathPrefix: '/kq' }, upstream: 'up', middlewares: [{ 'key-auth': { header: 'X-Key', query: 'apikey' } }] },
        { name: 'basic', listener: 'web', match: { pathPrefix: '/basic' }, upstream: 'up', middlewares: [{ 'basic-auth': { realm: 'users' } }] },
        { name: 'basic-pass', listener: 'web', match: { pathPrefix: '/bpass' }, upstream: 'up', middlewares: [{ 'basic-auth': { hideCredentials: false } }] },
      ],
      consumers: [
        { id: 'app', secret: 'app-secret-123', keys: [KEY] },
        { id: 'narrow', secret: 'narrow-secret', keys: ['narrow-key-0123456789'], routes: ['key-header'], ipAllow: ['192.0.2.0/24'] },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('key-auth from the default X-API-Key header; the header is not sent upstream', async () => {
    const r = await send(gw.url(), { path: '/kh/1?x=1', headers: { 'x-api-key': KEY } });
    assert.equal(r.status, 200, r.body);
    const seen = up.received.at(-1)!;
    assert.equal(seen.headers['x-api-key'], undefined);
    assert.equal(seen.headers['x-consumer-id'], 'app');
    assert.equal(seen.url, '/kh/1?x=1');
  });

  test('key-auth from a query parameter, removed from the upstream URL', async () => {
    const r = await send(gw.url(), { path: `/kq/1?a=1&apikey=${encodeURIComponent(KEY)}&b=%20x`, headers: {} });
    assert.equal(r.status, 200, r.body);
    assert.equal(up.received.at(-1)!.url, '/kq/1?a=1&b=%20x');
    assert.equal((await send(gw.url(), { path: `/kq/1?apikey=${KEY}` })).status, 200);
    assert.equal(up.received.at(-1)!.url, '/kq/1');
    // The configured header works on that route too; the default one does not.
    assert.equal((await send(gw.url(), { path: '/kq/2', headers: { 'x-key': KEY } })).status, 200);
    assert.equal(up.received.at(-1)!.headers['x-key'], undefined);
    assert.equal((await send(gw.url(), { path: '/kq/2', headers: { 'x-api-key': KEY } })).status, 401);
    // A query key on a header-only route is not looked at (and stays in the URL).
    assert.equal((await send(gw.url(), { path: `/kh/1?apikey=${KEY}` })).status, 401);
  });

  test('key-auth: missing or unknown key 401; routes and ipAllow 403', async () => {
    for (const headers of [{}, { 'x-api-key': '' }, { 'x-api-key': 'nope-nope-nope-nope' }, { 'x-api-key': 'ÿ'.repeat(600) }] as Record<string, string>[]) {
      const r = await send(gw.url(), { path: '/kh/1', headers });
      assert.equal(r.status, 401, JSON.stringify(headers));
      assert.match(r.headers['www-authenticate']!, /^ApiKey realm="portico"/);
    }
    const narrow = { 'x-api-key': 'narrow-key-0123456789' };
    assert.equal((await send(gw.url(), { path: '/kh/1', headers: { ...narrow, 'x-forwarded-for': '192.0.2.10' } })).status, 200);
    assert.equal((await send(gw.url(), { path: '/kh/1', headers: { ...narrow, 'x-forwarded-for': '198.51.100.10' } })).status, 403);
    assert.equal((await send(gw.url(), { path: '/kq/1', headers: { 'x-key': 'narrow-key-0123456789', 'x-forwarded-for': '192.0.2.10' } })).status, 403);
  });

  test('basic-auth: the consumer id and secret; Authorization not forwarded unless asked', async () => {
    const r = await send(gw.url(), { path: '/basic/1', headers: { authorization: basic('app', 'app-secret-123') } });
    assert.equal(r.status, 200, r.body);
    assert.equal(up.received.at(-1)!.headers.authorization, undefined);
    assert.equal(up.received.at(-1)!.headers['x-consumer-id'], 'app');
    assert.equal((await send(gw.url(), { path: '/bpass/1', headers: { authorization: basic('app', 'app-secret-123') } })).status, 200);
    assert.equal(up.received.at(-1)!.headers.authorization, basic('app', 'app-secret-123'));
  });

  test('basic-auth: missing, wrong or malformed credentials 401 with a Basic challenge; routes 403', async () => {
    for (const authorization of [undefined, basic('app', 'wrong'), basic('ghost', 'app-secret-123'), 'Basic', 'Basic ***', 'Bearer abc', 'Basic ' + 'QUFB'.repeat(2000)]) {
      const r = await send(gw.url(), { path: '/basic/1', headers: authorization === undefined ? {} : { authorization } });
      assert.equal(r.status, 401, String(authorization));
      assert.equal(r.headers['www-authenticate'], 'Basic realm="users", charset="UTF-8"');
    }
    const r = await send(gw.url(), { path: '/basic/1', headers: { authorization: basic('narrow', 'narrow-secret'), 'x-forwarded-for': '192.0.2.1' } });
    assert.equal(r.status, 403);
  });
});
