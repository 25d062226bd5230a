import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { send, type Reply } from '../helpers/http.js';

const FORM = 'application/x-www-form-urlencoded';
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
const HS_KEY = 'token-endpoint-test-signing-key-0123456789';

function tokenRequest(url: string, headers: Record<string, string>, body = 'grant_type=client_credentials', path = '/oauth/tokens') {
  return send(url, { method: 'POST', path, headers: { 'content-type': FORM, ...headers }, body });
}

describe('token endpoint (OAuth 2.0 client credentials)', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = (k: { export(o: object): string | Buffer }) => k.export({ type: 'pkcs8', format: 'pem' }) as string;

  before(async () => {
    up = await startUpstream();
    gw = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false, trustedProxies: ['127.0.0.1'] }],
      upstreams: [{ name: 'up', targets: [{ address: up.address }] }],
      routes: [
        { name: 'api', listener: 'web', match: { pathPrefix: '/api' }, upstream: 'up' },
        { name: 'token', listener: 'web', match: { path: '/oauth/tokens', methods: ['POST'] }, 'token-endpoint': { signingKey: HS_KEY, ttl: '15m' } },
        { name: 'token-any', listener: 'web', match: { path: '/any/tokens' }, 'token-endpoint': { signingKey: HS_KEY, issuer: 'https://gw.test' } },
        { name: 'token-rs', listener: 'web', match: { path: '/rs/tokens' }, 'token-endpoint': { signingKey: pem(rsa.privateKey), algorithm: 'RS256', ttl: '2m' } },
        { name: 'token-es', listener: 'web', match: { path: '/es/tokens' }, 'token-endpoint': { signingKey: pem(ec.privateKey), algorithm: 'ES256' } },
      ],
      consumers: [
        { id: 'app', secret: 'app-secret-value' },
        { id: 'plus', secret: 'a+b c/d%e:f' },
        { id: 'office', secret: 'office-secret', ipAllow: ['203.0.113.0/24'] },
        { id: 'keyonly', keys: ['keyonly-api-key-0123456789'] },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('issues a signed HS256 JWT: 200 JSON, no-store, expires_in = ttl', async () => {
    const before = Math.floor(Date.now() / 1000);
    const r = await tokenRequest(gw.url(), { authorization: basic('app', 'app-secret-value') });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.equal(r.headers.pragma, 'no-cache');
    assert.match(r.headers['content-type']!, /^application\/json/);
    assert.ok(r.headers['x-request-id']);
    const body = JSON.parse(r.body) as { access_token: string; token_type: string; expires_in: number };
    assert.deepEqual(Object.keys(body).sort(), ['access_token', 'expires_in', 'token_type']);
    assert.equal(body.token_type, 'Bearer');
    assert.equal(body.expires_in, 900);
    const { payload, protectedHeader } = await jwtVerify(body.access_token, new TextEncoder().encode(HS_KEY), { issuer: 'portico', algorithms: ['HS256'] });
    assert.equal(protectedHeader.typ, 'JWT');
    assert.equal(payload.sub, 'app');
    assert.equal(payload.client_id, 'app');
    assert.equal(payload.exp! - payload.iat!, 900);
    assert.ok(payload.iat! >= before - 1);
    assert.match(payload.jti!, /^[0-9a-f-]{36}$/);
    assert.equal(up.received.length, 0, 'the token endpoint answers itself');
  });

  test('RS256 and ES256 tokens verify with the public half of the configured key', async () => {
    for (const [path, key, alg, ttl] of [
      ['/rs/tokens', rsa.publicKey, 'RS256', 120],
      ['/es/tokens', ec.publicKey, 'ES256', 3600],
    ] as const) {
      const r = await tokenRequest(gw.url(), { authorization: basic('app', 'app-secret-value') }, 'grant_type=client_credentials', path);
      assert.equal(r.status, 200, r.body);
      const body = JSON.parse(r.body) as { access_token: string; expires_in: number };
      assert.equal(body.expires_in, ttl);
      const header = decodeProtectedHeader(body.access_token);
      assert.equal(header.alg, alg);
      assert.match(String(header.kid), /^[A-Za-z0-9_-]{43}$/, 'kid is the JWK thumbprint');
      const { payload } = await jwtVerify(body.access_token, createPublicKey(key.export({ type: 'spki', format: 'pem' })), { algorithms: [alg] });
      assert.equal(payload.sub, 'app');
    }
  });

  test('a custom issuer; credentials in the body (client_secret_post); scope is ignored', async () => {
    const r = await tokenRequest(gw.url(), {}, 'grant_type=client_credentials&client_id=app&client_secret=app-secret-value&scope=read', '/any/tokens');
    assert.equal(r.status, 200, r.body);
    assert.equal(decodeJwt((JSON.parse(r.body) as { access_token: string }).access_token).iss, 'https://gw.test');
  });

  test('Basic credentials may be form-urlencoded (RFC 6749 §2.3.1) or sent raw', async () => {
    const encoded = basic('plus', encodeURIComponent('a+b c/d%e:f'));
    assert.equal((await tokenRequest(gw.url(), { authorization: encoded })).status, 200);
    assert.equal((await tokenRequest(gw.url(), { authorization: basic('plus', 'a+b c/d%e:f') })).status, 200);
  });

  test('wrong or missing client credentials: 401 invalid_client with WWW-Authenticate: Basic', async () => {
    const cases: Record<string, string>[] = [
      { authorization: basic('app', 'wrong-secret') },
      { authorization: basic('app', '') },
      { authorization: basic('nobody', 'app-secret-value') },
      { authorization: basic('keyonly', 'anything') },
      { authorization: 'Basic !!!not-base64!!!' },
      { authorization: 'Basic ' + Buffer.from('no-colon').toString('base64') },
      { authorization: 'Bearer abc' },
      {},
    ];
    for (const headers of cases) {
      const r = await tokenRequest(gw.url(), headers);
      assert.equal(r.status, 401, JSON.stringify(headers));
      assert.equal((JSON.parse(r.body) as { error: string }).error, 'invalid_client');
      assert.match(r.headers['www-authenticate']!, /^Basic realm="portico"/);
      assert.equal(r.headers['cache-control'], 'no-store');
      assert.ok(!r.body.includes('app-secret-value'));
    }
    const body = await tokenRequest(gw.url(), {}, 'grant_type=client_credentials&client_id=app&client_secret=nope');
    assert.equal(body.status, 401);
  });

  test('unsupported and missing grant types, bad content type, repeated or conflicting parameters: 400', async () => {
    const auth = { authorization: basic('app', 'app-secret-value') };
    const expect400 = async (r: Reply, error: string) => {
      assert.equal(r.status, 400, r.body);
      assert.equal((JSON.parse(r.body) as { error: string }).error, error);
      assert.equal(r.headers['cache-control'], 'no-store');
    };
    await expect400(await tokenRequest(gw.url(), auth, 'grant_type=password&username=a&password=b'), 'unsupported_grant_type');
    await expect400(await tokenRequest(gw.url(), auth, 'grant_type=authorization_code'), 'unsupported_grant_type');
    await expect400(await tokenRequest(gw.url(), auth, ''), 'invalid_request');
    await expect400(await tokenRequest(gw.url(), auth, 'scope=x'), 'invalid_request');
    await expect400(await tokenRequest(gw.url(), auth, 'grant_type=client_credentials&grant_type=client_credentials'), 'invalid_request');
    await expect400(await tokenRequest(gw.url(), auth, 'grant_type=client_credentials&client_id=app&client_secret=app-secret-value'), 'invalid_request');
    await expect400(
      await send(gw.url(), { method: 'POST', path: '/oauth/tokens', headers: { ...auth, 'content-type': 'application/json' }, body: '{"grant_type":"client_credentials"}' }),
      'invalid_request',
    );
    await expect400(await send(gw.url(), { method: 'POST', path: '/oauth/tokens', headers: auth, body: 'grant_type=client_credentials' }), 'invalid_request');
    await expect400(
      await tokenRequest(gw.url(), { authorization: [basic('app', 'app-secret-value'), basic('app', 'app-secret-value')] as unknown as string }),
      'invalid_request',
    );
  });

  test('the consumer ipAllow applies: 400 unauthorized_client from elsewhere', async () => {
    const from = (ip: string) => tokenRequest(gw.url(), { authorization: basic('office', 'office-secret'), 'x-forwarded-for': ip });
    assert.equal((await from('203.0.113.7')).status, 200);
    const r = await from('198.51.100.7');
    assert.equal(r.status, 400);
    assert.equal((JSON.parse(r.body) as { error: string }).error, 'unauthorized_client');
  });

  test('bodies over 8 KiB: 413 (Content-Length or chunked)', async () => {
    const auth = { authorization: basic('app', 'app-secret-value'), 'content-type': FORM };
    const big = 'grant_type=client_credentials&pad=' + 'x'.repeat(9000);
    const r1 = await send(gw.url(), { method: 'POST', path: '/oauth/tokens', headers: auth, body: big });
    assert.equal(r1.status, 413);
    assert.equal((JSON.parse(r1.body) as { code: string }).code, 'PAYLOAD_TOO_LARGE');
    const r2 = await send(gw.url(), { method: 'POST', path: '/oauth/tokens', headers: auth, chunked: [Buffer.from(big.slice(0, 5000)), Buffer.from(big.slice(5000))] });
    assert.equal(r2.status, 413);
    // Just under the cap is fine.
    const ok = 'grant_type=client_credentials&pad=' + 'x'.repeat(8000);
    assert.equal((await send(gw.url(), { method: 'POST', path: '/oauth/tokens', headers: auth, chunked: [Buffer.from(ok)] })).status, 200);
  });

  test('methods other than POST on a token route: 405 with Allow', async () => {
    const r = await send(gw.url(), { method: 'GET', path: '/any/tokens' });
    assert.equal(r.status, 405);
    assert.equal(r.headers.allow, 'POST');
    assert.equal((JSON.parse(r.body) as { error: string }).error, 'invalid_request');
    // With `methods: [POST]` in the match, other methods do not reach the endpoint at all.
    assert.equal((await send(gw.url(), { method: 'GET', path: '/oauth/tokens' })).status, 404);
  });

  test('a client that disconnects mid-body does not break the gateway', async () => {
    const u = new URL(gw.url());
    await new Promise<void>((resolve) => {
      const req = http.request({ host: u.hostname, port: u.port, method: 'POST', path: '/oauth/tokens', agent: false, headers: { 'content-type': FORM, 'content-length': '100' } });
      req.on('error', () => resolve());
      req.write('grant_type=cl', () => setTimeout(() => {
        req.destroy();
        resolve();
      }, 50));
    });
    assert.equal((await tokenRequest(gw.url(), { authorization: basic('app', 'app-secret-value') })).status, 200);
  });
});
