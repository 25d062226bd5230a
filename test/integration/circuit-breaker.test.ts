import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, test } from 'node:test';
import { startFlaky, send, codeOf, startLoggedGateway, policyConfig, type Reply } from '../helpers/flaky-upstream.js';
import { waitFor } from '../helpers/wait.js';

const BREAKER = { volumeThreshold: 4, errorPercent: 50, sleepWindow: '200ms', window: '10s' };

function transitions(logs: Record<string, unknown>[]): string[] {
  return logs.filter((l) => l.msg === 'circuit breaker state changed').map((l) => `${l.from}→${l.to}`);
}

describe('circuit breaker, driven by a real upstream', () => {
  test('closed → open → half-open → open → half-open → closed', async (t) => {
    const a = await startFlaky('a');
    // sleepWindow 1s: long enough that the checks right after opening run while it is open, even on a busy machine.
    const gw = await startLoggedGateway(policyConfig([a.address], { circuitBreaker: { ...BREAKER, sleepWindow: '1s' } }));
    t.after(async () => {
      await gw.close();
      await a.close();
    });
    assert.equal((await send(gw.url())).status, 200);
    assert.equal((await send(gw.url())).status, 200);
    a.mode = 'status';
    a.status = 503;
    // 2 of 3 failed, but below volumeThreshold (4): still closed, the upstream's 503 is forwarded.
    let r = await send(gw.url());
    assert.equal(r.status, 503);
    assert.equal(r.body, 'failed attempt from a');
    assert.equal(gw.upstream().breaker!.state, 'closed');
    r = await send(gw.url()); // 2 of 4 = 50%
    assert.equal(r.body, 'failed attempt from a');
    assert.equal(gw.upstream().breaker!.state, 'open');
    assert.deepEqual(transitions(gw.logs), ['closed→open']);
    const reason = String(gw.logs.find((l) => l.msg === 'circuit breaker state changed')!.reason);
    assert.match(reason, /2 of 4 calls failed \(50% >= 50%\)/);

    // Open: rejected at once without touching the upstream.
    const hits = a.hits();
    r = await send(gw.url());
    assert.equal(r.status, 503);
    assert.equal(codeOf(r), 'CIRCUIT_OPEN');
    assert.equal(JSON.parse(r.body).requestId, r.headers['x-request-id']);
    assert.equal(a.hits(), hits);

    // After sleepWindow one probe goes through; the upstream still fails: open again.
    await waitFor(async () => {
      await send(gw.url());
      return a.hits() > hits;
    }, 'a probe to reach the upstream', 5000, 50);
    assert.deepEqual(transitions(gw.logs).slice(0, 3), ['closed→open', 'open→half-open', 'half-open→open']);
    assert.equal(a.hits(), hits + 1, 'exactly one probe');

    // Heal; the next probe succeeds and closes the circuit.
    a.mode = 'ok';
    await waitFor(async () => (await send(gw.url())).status === 200, 'the circuit to close', 5000, 50);
    assert.deepEqual(transitions(gw.logs), ['closed→open', 'open→half-open', 'half-open→open', 'open→half-open', 'half-open→closed']);
    assert.equal(gw.upstream().breaker!.state, 'closed');
    assert.equal(gw.upstream().health().circuitBreaker!.calls, 0, 'closing starts a fresh window (the probe is not in it)');
  });

  test('half-open lets exactly one probe through while it is in flight', async (t) => {
    const a = await startFlaky('a');
    const gw = await startLoggedGateway(policyConfig([a.address], { circuitBreaker: BREAKER }));
    t.after(async () => {
      await gw.close();
      await a.close();
    });
    a.mode = 'reset';
    for (let i = 0; i < 4; i++) assert.equal((await send(gw.url())).status, 502);
    assert.equal(gw.upstream().breaker!.state, 'open');
    a.mode = 'hang';
    const hits = a.hits();
    // Keep calling until one call is the probe (it hangs in the upstream).
    const probes: Promise<Reply>[] = [];
    await waitFor(() => {
      if (a.hits() > hits) return true;
      probes.push(send(gw.url()));
      return false;
    }, 'the probe to reach the upstream', 5000, 20);
    assert.equal(gw.upstream().breaker!.state, 'half-open');
    for (let i = 0; i < 5; i++) {
      const r = await send(gw.url());
      assert.equal(codeOf(r), 'CIRCUIT_OPEN', 'rejected while the probe is in flight');
    }
    assert.equal(a.hits(), hits + 1);
    a.release();
    const replies = await Promise.all(probes);
    assert.equal(replies.filter((r) => r.status === 200).length, 1, 'the probe got its answer');
    assert.ok(replies.filter((r) => r.status !== 200).every((r) => codeOf(r) === 'CIRCUIT_OPEN'));
    assert.equal(gw.upstream().breaker!.state, 'closed');
  });

  test('connect failures and breaker timeouts count as failures; a timed-out call is aborted (504)', async (t) => {
    const a = await startFlaky('a');
    const gw = await startLoggedGateway(policyConfig([a.address], { circuitBreaker: { ...BREAKER, timeout: '150ms', sleepWindow: '1m' } }));
    t.after(async () => {
      await gw.close();
      await a.close();
    });
    a.mode = 'slow';
    a.delayMs = 2000;
    const started = Date.now();
    let r = await send(gw.url());
    assert.equal(r.status, 504);
    assert.equal(codeOf(r), 'UPSTREAM_RESPONSE_TIMEOUT');
    assert.ok(Date.now() - started < 1500, 'aborted at the breaker timeout, not after the upstream answered');
    await a.down();
    for (let i = 0; i < 3; i++) {
      r = await send(gw.url());
      assert.equal(codeOf(r), 'UPSTREAM_CONNECT_REFUSED');
    }
    assert.equal(gw.upstream().breaker!.state, 'open');
    assert.equal(codeOf(await send(gw.url())), 'CIRCUIT_OPEN');
  });

  test('maxConcurrent: more calls in flight are rejected at once', async (t) => {
    const a = await startFlaky('a');
    const gw = await startLoggedGateway(policyConfig([a.address], { circuitBreaker: { ...BREAKER, maxConcurrent: 2 } }));
    t.after(async () => {
      await gw.close();
      await a.close();
    });
    a.mode = 'hang';
    const held = [send(gw.url()), send(gw.url())];
    await waitFor(() => a.hits() === 2, 'two calls in flight');
    const r = await send(gw.url());
    assert.equal(r.status, 503);
    assert.equal(codeOf(r), 'CIRCUIT_OPEN');
    assert.match(JSON.parse(r.body).error, /2 requests in flight/);
    assert.equal(a.hits(), 2);
    a.release();
    assert.deepEqual((await Promise.all(held)).map((x) => x.status), [200, 200]);
    a.mode = 'ok';
    assert.equal((await send(gw.url())).status, 200, 'admitted again');
    assert.equal(gw.upstream().breaker!.state, 'closed', 'rejections do not open the circuit');
    assert.equal(gw.upstream().breaker!.inflight, 0);
  });

  test('an open circuit answers with the configured fallback', async (t) => {
    const a = await startFlaky('a');
    const gw = await startLoggedGateway(
      policyConfig([a.address], {
        circuitBreaker: { ...BREAKER, sleepWindow: '1m', fallback: { status: 200, headers: { 'X-Fallback': 'yes' }, body: { degraded: true } } },
      }),
    );
    t.after(async () => {
      await gw.close();
      await a.close();
    });
    a.mode = 'status';
    a.status = 500;
    for (let i = 0; i < 4; i++) await send(gw.url());
    const r = await send(gw.url());
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-fallback'], 'yes');
    assert.equal(r.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(r.body), { degraded: true });
    assert.ok(r.headers['x-request-id']);
    assert.equal(a.hits(), 4);
  });

  test('a client that leaves mid-call releases the breaker slot and aborts the upstream call', async (t) => {
    const a = await startFlaky('a');
    const gw = await startLoggedGateway(policyConfig([a.address], { circuitBreaker: { ...BREAKER, maxConcurrent: 1 } }));
    t.after(async () => {
      await gw.close();
      await a.close();
    });
    a.mode = 'hang';
    const u = new URL(gw.url());
    const req = http.get({ host: u.hostname, port: u.port, path: '/', agent: false });
    req.on('error', () => undefined);
    await waitFor(() => a.hits() === 1, 'the call in flight');
    req.destroy();
    await waitFor(() => gw.upstream().breaker!.inflight === 0 && gw.upstream().targets[0]!.inflight === 0, 'the slot to be released');
    a.mode = 'ok';
    assert.equal((await send(gw.url())).status, 200);
  });
});
