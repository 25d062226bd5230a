import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, test } from 'node:test';
import { startFlaky, send, codeOf, startLoggedGateway, policyConfig, type FlakyUpstream, type LoggedGateway } from '../helpers/flaky-upstream.js';
import { waitFor } from '../helpers/wait.js';

const RETRIES = { attempts: 1, on: ['connect-failure', 'reset', 502, 503, 504], backoff: { base: 0, max: 0 } };

/** Two upstreams a (failing as told) and b (healthy) behind a round-robin upstream with `upstream` options. */
async function pair(t: { after(fn: () => Promise<void>): void }, upstream: Record<string, unknown>, route: Record<string, unknown> = {}) {
  const a = await startFlaky('a');
  const b = await startFlaky('b');
  const gw = await startLoggedGateway(policyConfig([a.address, b.address], upstream, route));
  t.after(async () => {
    await gw.close();
    await Promise.all([a.close(), b.close()]);
  });
  return { a, b, gw };
}

let seq = 0;

/**
 * Sends requests (each to a fresh path) until one goes to `a` first (the
 * balancer rotates): returns that reply and its path.
 */
async function viaA(gw: LoggedGateway, a: FlakyUpstream, opts: Parameters<typeof send>[1] = {}) {
  for (let i = 0; i < 4; i++) {
    const path = `/req-${++seq}`;
    const r = await send(gw.url(), { ...opts, path });
    if (a.received.some((x) => x.url === path)) return Object.assign(r, { path });
  }
  throw new Error('no request reached a');
}

/** Whether `u` received a request for `path`. */
const got = (u: FlakyUpstream, path: string) => u.received.some((x) => x.url === path);

describe('retries land on the other target', () => {
  test('a retryable status: the failed answer is dropped, the other target answers', async (t) => {
    const { a, b, gw } = await pair(t, { retries: RETRIES });
    a.mode = 'status';
    a.status = 503;
    for (let i = 0; i < 6; i++) {
      const r = await send(gw.url(), { path: `/n${i}` });
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-upstream'], 'b');
      assert.doesNotMatch(r.body, /failed attempt/);
    }
    assert.ok(a.hits() >= 3, 'a was tried first at least every other time');
    assert.equal(b.hits(), 6);
    assert.deepEqual(a.received.map((x) => x.url), b.received.filter((x) => a.received.some((y) => y.url === x.url)).map((x) => x.url), 'b got the same requests a failed');
    await waitFor(() => gw.upstream().targets.every((x) => x.inflight === 0), 'inflight back to 0');
  });

  test('a reset before the response, and a refused connection', async (t) => {
    const { a, b, gw } = await pair(t, { retries: RETRIES });
    a.mode = 'reset';
    const r = await viaA(gw, a);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-upstream'], 'b');
    await a.down();
    const before = b.hits();
    for (let i = 0; i < 4; i++) assert.equal((await send(gw.url())).status, 200);
    assert.equal(b.hits() - before, 4);
    assert.equal((await send(gw.url(), { method: 'DELETE', path: '/thing' })).status, 200, 'DELETE is idempotent');
  });

  test('a retried answer with an unsized or endless body is not waited for: its connection is closed', async (t) => {
    const { a, gw } = await pair(t, { retries: RETRIES });
    a.mode = 'endless';
    a.status = 503;
    const connections = new Set<unknown>();
    a.server.on('connection', (c) => connections.add(c));
    const r = await viaA(gw, a);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-upstream'], 'b');
    assert.doesNotMatch(r.body, /failed attempt/);
    await waitFor(() => new Promise<boolean>((resolve) => a.server.getConnections((_e, n) => resolve(n === 0))), "a's connection to be closed");
    await waitFor(() => gw.upstream().targets.every((x) => x.inflight === 0), 'inflight back to 0');
  });

  test('a status not listed in `on` is forwarded as is', async (t) => {
    const { a, gw } = await pair(t, { retries: { ...RETRIES, on: [503] } });
    a.mode = 'status';
    a.status = 502;
    const r = await viaA(gw, a);
    assert.equal(r.status, 502);
    assert.equal(r.body, 'failed attempt from a');
  });

  test('attempts bounds the tries; every target tried once before one is repeated', async (t) => {
    const ups = await Promise.all(['a', 'b', 'c'].map((n) => startFlaky(n)));
    const gw = await startLoggedGateway(policyConfig(ups.map((u) => u.address), { retries: { ...RETRIES, attempts: 2 } }));
    t.after(async () => {
      await gw.close();
      await Promise.all(ups.map((u) => u.close()));
    });
    for (const u of ups) {
      u.mode = 'status';
      u.status = 503;
    }
    const r = await send(gw.url());
    assert.equal(r.status, 503, 'the last try answers');
    assert.equal(r.body, 'failed attempt from c');
    assert.deepEqual(ups.map((u) => u.hits()), [1, 1, 1]);
  });
});

describe('what is not retried', () => {
  test('POST is not retried unless retryNonIdempotent', async (t) => {
    const { a, b, gw } = await pair(t, { retries: RETRIES });
    a.mode = 'status';
    a.status = 503;
    let r = await viaA(gw, a, { method: 'POST', body: 'order=1' });
    assert.equal(r.status, 503);
    assert.equal(r.body, 'failed attempt from a');
    assert.equal(got(b, r.path), false);

    a.mode = 'reset';
    r = await viaA(gw, a, { method: 'POST', body: 'order=2' });
    assert.equal(r.status, 502);
    assert.equal(codeOf(r), 'UPSTREAM_RESET');
    assert.equal(got(b, r.path), false);
  });

  test('retryNonIdempotent: a POST body is buffered and replayed to the other target', async (t) => {
    const { a, b, gw } = await pair(t, { retries: { ...RETRIES, retryNonIdempotent: true } });
    a.mode = 'status';
    a.status = 503;
    const body = 'x'.repeat(10_000);
    let r = await viaA(gw, a, { method: 'POST', body });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).body, body, 'b received the whole body');
    assert.equal(a.received.at(-1)!.body, body, 'a received it too');
    // A chunked body within the limit is buffered as well.
    r = await viaA(gw, a, { method: 'POST', body: 'chunked-body', chunked: true });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).body, 'chunked-body');
  });

  test('a body larger than retryBufferBytes is streamed and then not retried', async (t) => {
    const { a, b, gw } = await pair(t, { retries: { ...RETRIES, retryBufferBytes: 1024 } });
    a.mode = 'status';
    a.status = 503;
    const big = Buffer.alloc(100_000, 98);
    let r = await viaA(gw, a, { method: 'PUT', body: big });
    assert.equal(r.status, 503, 'PUT is idempotent, but its body was not buffered');
    assert.equal(a.received.at(-1)!.body.length, big.length, 'streamed whole to a');
    assert.equal(got(b, r.path), false);
    // Chunked, past the limit: the part read while looking is sent first, then the rest.
    r = await viaA(gw, a, { method: 'PUT', body: big, chunked: true });
    assert.equal(r.status, 503);
    assert.equal(a.received.at(-1)!.body.length, big.length);
    assert.equal(got(b, r.path), false);
    // A small PUT is retried with its body.
    r = await viaA(gw, a, { method: 'PUT', body: 'small' });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).body, 'small');
  });

  test('never after response bytes went downstream', async (t) => {
    const { a, b, gw } = await pair(t, { retries: RETRIES });
    a.mode = 'midbody';
    const u = new URL(gw.url());
    for (let i = 0; i < 4; i++) {
      const path = `/mid-${i}`;
      const outcome = await new Promise<string>((resolve) => {
        const req = http.get({ host: u.hostname, port: u.port, path, agent: false }, (res) => {
          res.on('data', () => undefined);
          res.on('end', () => resolve('complete'));
          res.on('error', () => resolve('aborted'));
          res.on('aborted', () => resolve('aborted'));
        });
        req.on('error', () => resolve('aborted'));
      });
      if (!got(a, path)) continue;
      assert.equal(outcome, 'aborted', 'the client sees the cut, not a silent switch');
      assert.equal(got(b, path), false, 'no retry once the head went downstream');
      return;
    }
    assert.fail('no request reached a');
  });
});

describe('retry budget, per-try timeout, backoff and overrides', () => {
  test('the budget stops retries from multiplying an outage', async (t) => {
    const a = await startFlaky('a');
    const gw = await startLoggedGateway(policyConfig([a.address], { retries: { ...RETRIES, attempts: 3, budgetPercent: 10, budgetMinRetries: 2 } }));
    t.after(async () => {
      await gw.close();
      await a.close();
    });
    a.mode = 'status';
    a.status = 503;
    for (let i = 0; i < 10; i++) assert.equal((await send(gw.url())).status, 503);
    // 10 requests: retries ≤ max(2, 10% of 10) = 2, instead of 3 per request (40 tries).
    assert.equal(a.hits(), 12);
  });

  test('perTryTimeout: a slow try is abandoned and the other target answers', async (t) => {
    const { a, gw } = await pair(t, { retries: { ...RETRIES, on: ['timeout'], perTryTimeout: '200ms' } });
    a.mode = 'hang';
    const started = Date.now();
    const r = await viaA(gw, a);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-upstream'], 'b');
    assert.ok(Date.now() - started < 3000);
    await waitFor(() => a.received.length > 0, 'a saw the request');
  });

  test('without `timeout` in `on`, a per-try timeout is a 504', async (t) => {
    const { a, gw } = await pair(t, { retries: { ...RETRIES, perTryTimeout: '200ms' } });
    a.mode = 'hang';
    const r = await viaA(gw, a);
    assert.equal(r.status, 504);
    assert.equal(codeOf(r), 'UPSTREAM_RESPONSE_TIMEOUT');
  });

  test('backoff waits between tries; a client leaving during the wait ends the exchange', async (t) => {
    const a = await startFlaky('a');
    const gw = await startLoggedGateway(policyConfig([a.address], { retries: { ...RETRIES, backoff: { base: '300ms', max: '300ms' } } }));
    t.after(async () => {
      await gw.close();
      await a.close();
    });
    a.mode = 'status';
    a.status = 503;
    const started = Date.now();
    assert.equal((await send(gw.url())).status, 503);
    assert.ok(Date.now() - started >= 150, 'backoff between 50% and 100% of 300ms');
    assert.equal(a.hits(), 2);
    const u = new URL(gw.url());
    const req = http.get({ host: u.hostname, port: u.port, path: '/', agent: false });
    req.on('error', () => undefined);
    await waitFor(() => a.hits() === 3, 'the first try');
    req.destroy();
    await waitFor(() => gw.upstream().targets[0]!.inflight === 0, 'inflight back to 0');
    // A retry would have reached a by now if the wait had not ended: poll past the backoff.
    const deadline = Date.now() + 600;
    await waitFor(() => Date.now() > deadline, 'past the backoff', 2000);
    assert.equal(a.hits(), 3, 'no retry after the client left');
  });

  test('a route-level retries block overrides the upstream one', async (t) => {
    const { a, b, gw } = await pair(t, { retries: { ...RETRIES, attempts: 0 } }, { retries: RETRIES });
    a.mode = 'status';
    a.status = 503;
    const r = await viaA(gw, a);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-upstream'], 'b');
    assert.ok(b.hits() >= 1);
  });

  test('retries and the circuit breaker together: each try counts, and an open circuit stops retrying', async (t) => {
    const { a, b, gw } = await pair(t, {
      retries: RETRIES,
      circuitBreaker: { volumeThreshold: 4, errorPercent: 50, sleepWindow: '1m' },
    });
    a.mode = 'status';
    a.status = 503;
    b.mode = 'status';
    b.status = 503;
    for (let i = 0; i < 2; i++) await send(gw.url()); // 4 tries, all failed
    assert.equal(gw.upstream().breaker!.state, 'open');
    const r = await send(gw.url());
    assert.equal(codeOf(r), 'CIRCUIT_OPEN');
    assert.equal(a.hits() + b.hits(), 4);
  });
});
