import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { SignJWT, exportJWK } from 'jose';
import { StaticTargetSource } from '../../src/runtime/target-source.js';
import { startGateway, simpleConfig, type TestGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

/** The live upstream of the current snapshot. */
const upstreamOf = (gw: TestGateway, name = 'up') => gw.gateway.current.upstreams.get(name)!;

/** `doc` with one more route that answers by itself: a reload that changes nothing about the upstream. */
function withUnrelatedRoute(doc: ReturnType<typeof simpleConfig>, name = 'extra'): ReturnType<typeof simpleConfig> {
  return {
    ...doc,
    routes: [{ name, listener: 'web', match: { path: `/${name}` }, respond: { status: 200, body: name } } as never, ...doc.routes],
  };
}

interface Switch {
  /** The status answered. */
  status: number;
  /** Hold requests until `release()`. */
  hold: boolean;
  /** Requests held so far. */
  held: number;
  release(): void;
}

/** An upstream whose answers are switched by the test: `status`, or held until `release()`. */
async function startSwitchable(): Promise<TestUpstream & { ctl: Switch }> {
  const waiting: (() => void)[] = [];
  const ctl: Switch = {
    status: 200,
    hold: false,
    held: 0,
    release() {
      ctl.hold = false;
      for (const w of waiting.splice(0)) w();
    },
  };
  const up = await startUpstream((_req, res) => {
    const answer = () => {
      res.writeHead(ctl.status, { 'content-type': 'text/plain' });
      res.end(String(ctl.status));
    };
    if (!ctl.hold) return answer();
    ctl.held++;
    waiting.push(answer);
  });
  return Object.assign(up, { ctl });
}

describe('live state survives reloads', () => {
  test('an open breaker stays open across an unrelated reload and across new thresholds', async (t) => {
    const a = await startSwitchable();
    const doc = simpleConfig([a.address], {}, { circuitBreaker: { volumeThreshold: 4, errorPercent: 50, sleepWindow: '1m', window: '10s' } });
    const gw = await startGateway(doc);
    t.after(async () => {
      await gw.close();
      await a.close();
    });
    a.ctl.status = 503;
    for (let i = 0; i < 4; i++) assert.equal((await send(gw.url())).status, 503);
    assert.equal(upstreamOf(gw).breaker!.state, 'open');
    const reached = a.received.length;

    assert.deepEqual(await gw.reload(withUnrelatedRoute(doc)), { ok: true, version: 2 });
    a.ctl.status = 200;
    const rejected = await send(gw.url());
    assert.equal(rejected.status, 503);
    assert.equal(JSON.parse(rejected.body).code, 'CIRCUIT_OPEN', 'the breaker rejects: the failing upstream is not asked');
    assert.equal(a.received.length, reached);
    assert.equal((await send(gw.url(), { path: '/extra' })).status, 200, 'the new route serves');

    // New thresholds apply to the live breaker without closing it or clearing its window.
    const retuned = withUnrelatedRoute(simpleConfig([a.address], {}, { circuitBreaker: { volumeThreshold: 5, errorPercent: 60, sleepWindow: '1m', window: '10s' } }));
    assert.equal((await gw.reload(retuned)).ok, true);
    const breaker = upstreamOf(gw).breaker!;
    assert.equal(breaker.state, 'open');
    assert.equal(breaker.config.errorPercent, 60);
    assert.equal(breaker.view().failures, 4);
    assert.equal(JSON.parse((await send(gw.url())).body).code, 'CIRCUIT_OPEN');
    assert.equal(a.received.length, reached);
  });

  test('inflight and EWMA carry over: requests begun before a reload count on the new snapshot and end at 0', async (t) => {
    const a = await startSwitchable();
    const doc = simpleConfig([a.address], {}, { balancer: 'least-connections' });
    const gw = await startGateway(doc);
    t.after(async () => {
      await gw.close();
      await a.close();
    });
    assert.equal((await send(gw.url())).status, 200);
    const ewma = upstreamOf(gw).targets[0]!.ewmaMs;
    assert.ok(ewma > 0, 'a latency sample was taken');

    a.ctl.hold = true;
    const pending = [send(gw.url()), send(gw.url()), send(gw.url())];
    await waitFor(() => a.ctl.held === 3, 'three requests held at the upstream');
    const before = upstreamOf(gw).targets[0]!;
    assert.equal(before.inflight, 3);

    assert.equal((await gw.reload(withUnrelatedRoute(doc))).ok, true);
    const after = upstreamOf(gw).targets[0]!;
    assert.equal(after.inflight, 3, 'the new snapshot sees the requests in flight');
    assert.equal(after.ewmaMs, ewma, 'and the latency average');
    assert.equal(after.state, before.state, 'one live state per target identity');

    a.ctl.release();
    for (const r of await Promise.all(pending)) assert.equal(r.status, 200);
    await waitFor(() => after.inflight === 0, 'inflight back to 0');
    assert.equal(after.inflight, 0, 'never below 0');
  });

  test('passive health reports of requests begun before a reload still count', async (t) => {
    const a = await startSwitchable();
    const doc = simpleConfig([a.address], {}, { healthCheck: { passive: { unhealthyThreshold: 2, ejectTime: '1m', statuses: [503] } } });
    const gw = await startGateway(doc);
    t.after(async () => {
      await gw.close();
      await a.close();
    });
    a.ctl.hold = true;
    a.ctl.status = 503;
    const pending = [send(gw.url()), send(gw.url())];
    await waitFor(() => a.ctl.held === 2, 'two requests held at the upstream');
    assert.equal((await gw.reload(withUnrelatedRoute(doc))).ok, true);
    a.ctl.release();
    for (const r of await Promise.all(pending)) assert.equal(r.status, 503);
    const view = upstreamOf(gw).health();
    assert.equal(view.targets[0]!.ejected, true, 'two failures from before the reload ejected the target');
    assert.equal(view.targets[0]!.ejections, 1);
  });

  test('a JWKS key set is not fetched again after a reload', async (t) => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const keys = [{ ...(await exportJWK(rsa.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }];
    let hits = 0;
    const jwks = http.createServer((_req, res) => {
      hits++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    const jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`;
    const up = await startUpstream();
    const doc = {
      ...simpleConfig([up.address], { middlewares: [{ 'jwt-auth': { jwksUrl } }] }),
      consumers: [{ id: 'partner', jwtIssuers: ['https://idp.example'] }],
    };
    const gw = await startGateway(doc);
    t.after(async () => {
      await gw.close();
      await up.close();
      await new Promise<void>((resolve) => jwks.close(() => resolve()));
    });
    const token = await new SignJWT({ iss: 'https://idp.example' })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setExpirationTime('5m')
      .sign(rsa.privateKey);
    const auth = { authorization: `Bearer ${token}` };
    assert.equal((await send(gw.url(), { headers: auth })).status, 200);
    assert.equal(hits, 1);
    assert.equal((await gw.reload(withUnrelatedRoute(doc))).ok, true);
    assert.equal((await send(gw.url(), { headers: auth })).status, 200);
    assert.equal((await send(gw.url(), { headers: { authorization: 'Bearer nope' } })).status, 401);
    assert.equal(hits, 1, 'the key set fetched before the reload is used after it');
  });
});

describe('target sources', () => {
  test('a target added and removed through a source (no reload) starts and stops receiving traffic; its pool closes when it leaves', async (t) => {
    const a = await startUpstream();
    const b = await startUpstream();
    const gw = await startGateway(simpleConfig([a.address]));
    t.after(async () => {
      await gw.close();
      await a.close();
      await b.close();
    });
    const version = gw.gateway.current.version;
    const source = new StaticTargetSource([], 'test');
    const remove = gw.gateway.targets.upstream('up').addSource(source);
    assert.equal(upstreamOf(gw).targets.length, 1);

    source.set([{ address: b.address, weight: 1 }]);
    assert.deepEqual(
      upstreamOf(gw).targets.map((x) => x.address),
      [a.address, b.address],
    );
    // Keep-alive requests through the gateway's pools: b gets its share.
    for (let i = 0; i < 10; i++) assert.equal((await send(gw.url())).status, 200);
    assert.equal(a.received.length, 5);
    assert.equal(b.received.length, 5);
    const connectionsOf = (up: TestUpstream) => new Promise<number>((resolve, reject) => up.server.getConnections((e, n) => (e ? reject(e) : resolve(n))));
    assert.ok((await connectionsOf(b)) > 0, 'the gateway keeps a warm connection to b');
    assert.ok(gw.gateway.targets.target(b.address) !== undefined);

    source.set([]);
    for (let i = 0; i < 6; i++) assert.equal((await send(gw.url())).status, 200);
    assert.equal(b.received.length, 5, 'b gets nothing once it left');
    assert.equal(a.received.length, 11);
    await waitFor(async () => (await connectionsOf(b)) === 0, "b's pooled connections closed");
    assert.equal(gw.gateway.targets.target(b.address), undefined, 'its live state is gone');
    assert.equal(gw.gateway.current.version, version, 'no snapshot was built');

    // Back again, then the whole source removed.
    source.set([{ address: b.address, weight: 1 }]);
    assert.equal(upstreamOf(gw).targets.length, 2);
    remove();
    assert.deepEqual(
      upstreamOf(gw).targets.map((x) => x.address),
      [a.address],
    );
  });

  test('a source target survives config reloads; a target the config also lists is taken once', async (t) => {
    const a = await startUpstream();
    const b = await startUpstream();
    const doc = simpleConfig([a.address]);
    const gw = await startGateway(doc);
    t.after(async () => {
      await gw.close();
      await a.close();
      await b.close();
    });
    const source = new StaticTargetSource([{ address: b.address, weight: 1 }, { address: a.address, weight: 5 }], 'test');
    gw.gateway.targets.upstream('up').addSource(source);
    assert.equal((await gw.reload(withUnrelatedRoute(doc))).ok, true);
    const targets = upstreamOf(gw).targets;
    assert.deepEqual(
      targets.map((x) => [x.address, x.weight]),
      [
        [a.address, 1],
        [b.address, 1],
      ],
      "the config's own entry wins for a",
    );
    for (let i = 0; i < 4; i++) assert.equal((await send(gw.url())).status, 200);
    assert.equal(b.received.length, 2);
  });
});
