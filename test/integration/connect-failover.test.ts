import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { startUpstream } from '../helpers/upstream.js';
import { startGateway, simpleConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { deadPort } from '../helpers/tcp.js';
import { startBlackhole } from '../helpers/sealed.js';
import { startFlaky, send as sendFlaky, codeOf, policyConfig } from '../helpers/flaky-upstream.js';
import { openFds, fdsSettle } from '../helpers/fds.js';
import { WebSocket } from 'ws';

/**
 * A target whose connect fails (refused, unreachable, timed out) received
 * nothing, so the request goes to another target by default, whatever its
 * method, with no `retries` configured (nginx: proxy_next_upstream error
 * timeout).
 */

const ROUND_ROBIN = { balancer: 'round-robin' };

describe('connect failover (no retries configured)', () => {
  test('a refused target and a good one under round-robin: 20 POSTs all 200, each sent once', async (t) => {
    const baseline = openFds();
    const good = await startUpstream();
    const dead = `127.0.0.1:${await deadPort()}`;
    const gw = await startGateway(simpleConfig([dead, good.address], {}, ROUND_ROBIN));
    t.after(async () => {
      await gw.close();
      await good.close();
    });
    for (let i = 0; i < 20; i++) {
      const r = await send(gw.url(), { method: 'POST', path: `/order/${i}`, body: `order=${i}` });
      assert.equal(r.status, 200, `POST ${i}: ${r.body}`);
      assert.equal((JSON.parse(r.body) as { body: string }).body, `order=${i}`);
    }
    assert.equal(good.received.length, 20, 'each POST reached the good target exactly once');
    await gw.close();
    await good.close();
    await fdsSettle(baseline, 3);
  });

  test('chunked request bodies fail over too (the body was not read)', async (t) => {
    const good = await startFlaky('good');
    const dead = `127.0.0.1:${await deadPort()}`;
    const gw = await startGateway(policyConfig([dead, good.address]));
    t.after(async () => {
      await gw.close();
      await good.close();
    });
    for (let i = 0; i < 6; i++) {
      const r = await sendFlaky(gw.url(), { method: 'PATCH', path: `/p/${i}`, body: 'x'.repeat(1000), chunked: true });
      assert.equal(r.status, 200);
      assert.equal((JSON.parse(r.body) as { length: number }).length, 1000);
    }
    assert.equal(good.hits(), 6);
  });

  test('a connect-timeout target (blackhole) and a good one: every request 200', async (t) => {
    const hole = await startBlackhole();
    const good = await startUpstream();
    const gw = await startGateway(simpleConfig([`127.0.0.1:${hole.port}`, good.address], {}, { ...ROUND_ROBIN, timeouts: { connect: '200ms', response: '10s', idle: '10s' } }));
    t.after(async () => {
      await gw.close();
      await good.close();
      await hole.close();
    });
    for (let i = 0; i < 6; i++) {
      const r = await send(gw.url(), { method: 'POST', path: `/t/${i}`, body: 'x' });
      assert.equal(r.status, 200, `request ${i}: ${r.body}`);
    }
    assert.equal(good.received.length, 6);
  });

  test('every target refuses: one 502 per request, each target tried once (no loop)', async (t) => {
    const baseline = openFds();
    const ports = [await deadPort(), await deadPort(), await deadPort()];
    const gw = await startGateway(
      simpleConfig(
        ports.map((p) => `127.0.0.1:${p}`),
        {},
        { ...ROUND_ROBIN, healthCheck: { passive: { unhealthyThreshold: 1000 } } },
      ),
    );
    t.after(() => gw.close());
    for (let i = 0; i < 3; i++) {
      const r = await send(gw.url(), { method: 'POST', body: 'x' });
      assert.equal(r.status, 502);
      assert.equal((JSON.parse(r.body) as { code: string }).code, 'UPSTREAM_CONNECT_REFUSED');
    }
    // Passive health saw every failed connect: 3 requests × 3 targets.
    const view = gw.gateway.current.upstreams.get('up')!.health();
    const failures = view.targets.reduce((n, x) => n + x.failures.passive, 0);
    assert.equal(failures, 9);
    await gw.close();
    await fdsSettle(baseline, 3);
  });

  test('HTTP/2 upstreams (h2c) fail over as well', async (t) => {
    const server = http2.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => res.end(`h2:${body}`));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const good = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const dead = `127.0.0.1:${await deadPort()}`;
    const gw = await startGateway(simpleConfig([dead, good], {}, { ...ROUND_ROBIN, protocol: 'h2c' }));
    t.after(async () => {
      await gw.close();
      await new Promise<void>((r) => server.close(() => r()));
    });
    for (let i = 0; i < 6; i++) {
      const r = await send(gw.url(), { method: 'POST', body: `n${i}` });
      assert.equal(r.status, 200, r.body);
      assert.equal(r.body, `h2:n${i}`);
    }
  });

  test('WebSocket handshakes fail over', async (t) => {
    const { WebSocketServer } = await import('ws');
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    wss.on('connection', (ws) => ws.on('message', (m) => ws.send(`echo:${m.toString()}`)));
    const good = `127.0.0.1:${(wss.address() as AddressInfo).port}`;
    const dead = `127.0.0.1:${await deadPort()}`;
    const gw = await startGateway(simpleConfig([dead, good], {}, ROUND_ROBIN));
    t.after(async () => {
      await gw.close();
      await new Promise<void>((r) => wss.close(() => r()));
    });
    for (let i = 0; i < 4; i++) {
      const ws = new WebSocket(gw.url().replace('http:', 'ws:') + '/ws');
      const reply = await new Promise<string>((resolve, reject) => {
        ws.once('open', () => ws.send(`m${i}`));
        ws.once('message', (m) => resolve(m.toString()));
        ws.once('error', reject);
        ws.once('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)));
      });
      assert.equal(reply, `echo:m${i}`);
      ws.close();
    }
  });
});

describe('connect failover with a retries policy', () => {
  test('retries still work as documented: a 503 is retried on the other target', async (t) => {
    const a = await startFlaky('a');
    const b = await startFlaky('b');
    const gw = await startGateway(policyConfig([a.address, b.address], { retries: { attempts: 1 } }));
    t.after(async () => {
      await gw.close();
      await a.close();
      await b.close();
    });
    a.mode = 'status';
    a.status = 503;
    for (let i = 0; i < 4; i++) {
      const r = await sendFlaky(gw.url(), { path: `/g/${i}` });
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-upstream'], 'b');
    }
  });

  test('a policy without connect-failure still fails over a refused connect; every target refusing is one 502', async (t) => {
    const good = await startFlaky('good');
    const dead = `127.0.0.1:${await deadPort()}`;
    const gw = await startGateway(policyConfig([dead, good.address], { retries: { attempts: 1, on: [503] }, circuitBreaker: { volumeThreshold: 1000 } }));
    t.after(async () => {
      await gw.close();
      await good.close();
    });
    for (let i = 0; i < 6; i++) {
      const r = await sendFlaky(gw.url(), { method: 'POST', path: `/p/${i}`, body: 'x' });
      assert.equal(r.status, 200);
    }
    assert.equal(good.hits(), 6);
    await good.down();
    const r = await sendFlaky(gw.url(), { method: 'POST', body: 'x' });
    assert.equal(r.status, 502);
    assert.equal(codeOf(r), 'UPSTREAM_CONNECT_REFUSED');
  });
});
