import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load.js';
import { startUpstream } from '../helpers/upstream.js';
import { startGateway } from '../helpers/gateway.js';
import { parse } from 'yaml';
import { send } from '../helpers/http.js';

/** The issue's traffic-policy document, with the core document's listener around it. */
const ISSUE_DOC = `
listeners:
  - { name: web, protocol: http, listen: "127.0.0.1:0", accessLog: false }
upstreams:
  - name: users
    targets: [{ address: 127.0.0.1:2003 }, { address: 127.0.0.1:2004 }]
    healthCheck:
      active: { path: /healthz, interval: 2s, timeout: 1s, healthyThreshold: 2, unhealthyThreshold: 2 }
      passive: { unhealthyThreshold: 3, ejectTime: 10s }
    circuitBreaker: { timeout: 1s, maxConcurrent: 100, volumeThreshold: 20, errorPercent: 50, sleepWindow: 5s }
    retries: { attempts: 2, on: [connect-failure, 502, 503, 504], perTryTimeout: 2s }
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
state: { store: memory }
`;
const ENV = { JWT_SIGNING_KEY: 'a-signing-key-of-32-characters!!', APP_B_SECRET: 'b-secret' };

test('the issue document validates as written', () => {
  const r = loadConfigText(ISSUE_DOC, ENV);
  assert.equal(r.ok, true, r.ok ? '' : JSON.stringify(r.errors));
});

test('token endpoint → jwt-auth → consumer qps limit, end to end on the issue document', async (t) => {
  const a = await startUpstream();
  const b = await startUpstream();
  t.after(() => Promise.all([a.close(), b.close()]));
  const doc = parse(ISSUE_DOC.replace('127.0.0.1:2003', a.address).replace('127.0.0.1:2004', b.address)) as Record<string, unknown>;
  Object.assign(process.env, ENV);
  t.after(() => {
    for (const k of Object.keys(ENV)) delete process.env[k];
  });
  const gw = await startGateway(doc);
  t.after(() => gw.close());

  const noToken = await send(gw.url(), { path: '/users/1' });
  assert.equal(noToken.status, 401);
  assert.match(String(noToken.headers['www-authenticate']), /^Bearer/);

  const token = await send(gw.url(), {
    method: 'POST',
    path: '/oauth/tokens',
    headers: {
      authorization: `Basic ${Buffer.from('app_id_b:b-secret').toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: 'grant_type=client_credentials',
  });
  assert.equal(token.status, 200, token.body);
  const { access_token: accessToken, token_type: tokenType, expires_in: expiresIn } = JSON.parse(token.body) as Record<string, unknown>;
  assert.equal(tokenType, 'Bearer');
  assert.equal(expiresIn, 3600);

  // qps: 10 → a burst of 10 passes, the rest of a quick burst of 25 is limited.
  const statuses: number[] = [];
  for (let i = 0; i < 25; i++) {
    statuses.push((await send(gw.url(), { path: `/users/${i}`, headers: { authorization: `Bearer ${String(accessToken)}` } })).status);
  }
  const ok = statuses.filter((s) => s === 200).length;
  const limited = statuses.filter((s) => s === 429).length;
  assert.ok(ok >= 10 && ok <= 13, `about 10 admitted (qps 10), got ${ok}: ${statuses.join(',')}`);
  assert.equal(ok + limited, 25);
  const proxied = [...a.received, ...b.received].filter((r) => r.url.startsWith('/users') || /^\/\d+$/.test(r.url));
  assert.equal(proxied.length, ok, 'only admitted requests reached the upstreams (health probes aside)');
});
