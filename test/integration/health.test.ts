import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startFlaky, send, codeOf, startLoggedGateway, policyConfig } from '../helpers/flaky-upstream.js';
import { waitFor } from '../helpers/wait.js';

const ACTIVE = { path: '/healthz', interval: '50ms', timeout: '500ms', healthyThreshold: 2, unhealthyThreshold: 2 };

/** Which upstream answered each of `n` GETs. */
async function spread(url: string, n: number): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const r = await send(url, { path: `/s${i}` });
    const key = r.status === 200 ? String(r.headers['x-upstream']) : `${r.status} ${codeOf(r) ?? r.headers['x-upstream']}`;
    seen[key] = (seen[key] ?? 0) + 1;
  }
  return seen;
}

function healthLines(logs: Record<string, unknown>[], target: string) {
  return logs.filter((l) => l.msg === 'target health changed' && l.target === target);
}

describe('active health checks', () => {
  test('an HTTP check marks a target down and back up; traffic follows', async (t) => {
    const a = await startFlaky('a');
    const b = await startFlaky('b');
    const gw = await startLoggedGateway(policyConfig([a.address, b.address], { healthCheck: { active: ACTIVE } }));
    t.after(async () => {
      await gw.close();
      await Promise.all([a.close(), b.close()]);
    });
    await waitFor(() => a.checks() >= 2 && b.checks() >= 2, 'the first checks');
    assert.deepEqual(await spread(gw.url(), 4), { a: 2, b: 2 });

    a.healthStatus = 500;
    await waitFor(() => !gw.upstream().health().targets[0]!.healthy, 'a to be marked unhealthy');
    assert.deepEqual(await spread(gw.url(), 6), { b: 6 }, 'the balancer only sees healthy targets');
    const down = healthLines(gw.logs, a.address);
    assert.equal(down.length, 1);
    assert.equal(down[0]!.from, 'healthy');
    assert.equal(down[0]!.to, 'unhealthy');
    assert.match(String(down[0]!.reason), /2 failed active checks \(last: status 500 \(expected 200-399\)\)/);
    assert.equal(down[0]!.upstream, 'up');
    const view = gw.upstream().health();
    assert.equal(view.targets[0]!.active, 'unhealthy');
    assert.equal(view.panic, false, '1 of 2 healthy is not below 50%');

    a.healthStatus = 302; // 3xx is healthy by default (200-399)
    await waitFor(() => gw.upstream().health().targets[0]!.healthy, 'a to be healthy again');
    assert.deepEqual(await spread(gw.url(), 4), { a: 2, b: 2 });
    const up = healthLines(gw.logs, a.address)[1]!;
    assert.equal(up.from, 'unhealthy');
    assert.equal(up.to, 'healthy');
  });

  test('expectStatus, host and a check timeout', async (t) => {
    const a = await startFlaky('a');
    const b = await startFlaky('b');
    const gw = await startLoggedGateway(
      policyConfig([a.address, b.address], {
        healthCheck: { active: { ...ACTIVE, path: '/healthz/deep', expectStatus: [204, 204], host: 'health.internal', timeout: '100ms' } },
      }),
    );
    t.after(async () => {
      await gw.close();
      await Promise.all([a.close(), b.close()]);
    });
    a.healthStatus = 204;
    b.healthStatus = 200; // not in [204, 204]
    await waitFor(() => !gw.upstream().health().targets[1]!.healthy, 'b (200, expected 204) to be unhealthy');
    assert.equal(gw.upstream().health().targets[0]!.healthy, true);
    const check = a.received.find((r) => r.url === '/healthz/deep')!;
    assert.equal(check.method, 'GET');
    assert.equal(check.headers.host, 'health.internal');
    assert.equal(check.headers['user-agent'], 'portico-health-check');

    // A check that gets no answer within `timeout` fails.
    b.healthStatus = 204;
    await waitFor(() => gw.upstream().health().targets[1]!.healthy, 'b healthy');
    a.healthStatus = 0;
    await waitFor(() => !gw.upstream().health().targets[0]!.healthy, 'a (no answer) to be unhealthy');
    assert.match(String(healthLines(gw.logs, a.address).at(-1)!.reason), /no answer within 100ms/);
  });

  test('a TCP check marks a target down when it refuses connections, and up when it listens again', async (t) => {
    const a = await startFlaky('a');
    const b = await startFlaky('b');
    const gw = await startLoggedGateway(
      policyConfig([a.address, b.address], { healthCheck: { active: { type: 'tcp', interval: '50ms', timeout: '500ms', healthyThreshold: 1, unhealthyThreshold: 1 } } }),
    );
    t.after(async () => {
      await gw.close();
      await Promise.all([a.close(), b.close()]);
    });
    assert.equal(a.checks(), 0, 'a TCP check sends no HTTP request');
    await a.down();
    await waitFor(() => !gw.upstream().health().targets[0]!.healthy, 'a to be marked down');
    assert.match(String(healthLines(gw.logs, a.address)[0]!.reason), /ECONNREFUSED/);
    assert.deepEqual(await spread(gw.url(), 4), { b: 4 });
    await a.up();
    await waitFor(() => gw.upstream().health().targets[0]!.healthy, 'a to be marked up');
    assert.deepEqual(await spread(gw.url(), 4), { a: 2, b: 2 });
  });
});

describe('passive health checks', () => {
  test('consecutive failures eject a target for ejectTime, doubling on a repeat; it returns afterwards', async (t) => {
    const a = await startFlaky('a');
    const b = await startFlaky('b');
    const gw = await startLoggedGateway(
      policyConfig([a.address, b.address], { healthCheck: { passive: { unhealthyThreshold: 2, ejectTime: '1s', statuses: [500] } } }),
    );
    t.after(async () => {
      await gw.close();
      await Promise.all([a.close(), b.close()]);
    });
    a.mode = 'status';
    a.status = 500;
    // Round-robin: a, b, a → the second consecutive failure on a ejects it.
    assert.deepEqual(await spread(gw.url(), 3), { '500 a': 2, b: 1 });
    const view = gw.upstream().health().targets[0]!;
    assert.equal(view.ejected, true);
    assert.equal(view.healthy, false);
    assert.equal(view.ejections, 1);
    assert.ok(view.ejectedForMs > 0 && view.ejectedForMs <= 1000);
    assert.deepEqual(await spread(gw.url(), 4), { b: 4 }, 'an ejected target gets no traffic');
    const ejected = healthLines(gw.logs, a.address)[0]!;
    assert.equal(ejected.from, 'healthy');
    assert.equal(ejected.to, 'ejected');
    assert.match(String(ejected.reason), /2 consecutive failed requests \(last: status 500\); ejected for 1000ms/);

    await waitFor(() => gw.upstream().health().targets[0]!.healthy, 'a to return after ejectTime', 5000);
    assert.equal(healthLines(gw.logs, a.address)[1]!.to, 'healthy');
    // Still failing: ejected again, now for twice as long.
    await waitFor(async () => {
      await send(gw.url());
      return gw.upstream().health().targets[0]!.ejected;
    }, 'a second ejection');
    assert.match(String(healthLines(gw.logs, a.address)[2]!.reason), /ejected for 2000ms/);
    assert.equal(gw.upstream().health().targets[0]!.ejections, 2);

    a.mode = 'ok';
    await waitFor(() => gw.upstream().health().targets[0]!.healthy, 'a back', 5000);
    assert.deepEqual(await spread(gw.url(), 4), { a: 2, b: 2 });
  });

  test('connection failures count; other statuses do not unless listed', async (t) => {
    const a = await startFlaky('a');
    const b = await startFlaky('b');
    const gw = await startLoggedGateway(policyConfig([a.address, b.address], { healthCheck: { passive: { unhealthyThreshold: 2, ejectTime: '10s' } } }));
    t.after(async () => {
      await gw.close();
      await Promise.all([a.close(), b.close()]);
    });
    a.mode = 'status';
    a.status = 500;
    await spread(gw.url(), 6);
    assert.equal(gw.upstream().health().targets[0]!.ejected, false, 'no statuses configured: a 500 is an answer');
    a.mode = 'reset';
    const r = await spread(gw.url(), 4);
    assert.deepEqual(r, { '502 UPSTREAM_RESET': 2, b: 2 });
    assert.equal(gw.upstream().health().targets[0]!.ejected, true, 'two resets in a row eject');
  });

  test('a success resets the consecutive count', async (t) => {
    const a = await startFlaky('a');
    const gw = await startLoggedGateway(policyConfig([a.address], { healthCheck: { passive: { unhealthyThreshold: 2, ejectTime: '10s', statuses: [503] } } }));
    t.after(async () => {
      await gw.close();
      await a.close();
    });
    for (let i = 0; i < 4; i++) {
      a.mode = 'status';
      assert.equal((await send(gw.url())).status, 503);
      a.mode = 'ok';
      assert.equal((await send(gw.url())).status, 200);
    }
    assert.equal(gw.upstream().health().targets[0]!.ejections, 0);
  });
});

describe('panic mode and no healthy target', () => {
  async function allUnhealthy(t: { after(fn: () => Promise<void>): void }, minHealthyPercent?: number) {
    const a = await startFlaky('a');
    const b = await startFlaky('b');
    const c = await startFlaky('c');
    const gw = await startLoggedGateway(
      policyConfig([a.address, b.address, c.address], {
        healthCheck: { active: { ...ACTIVE, healthyThreshold: 1, unhealthyThreshold: 1 }, ...(minHealthyPercent === undefined ? {} : { minHealthyPercent }) },
      }),
    );
    t.after(async () => {
      await gw.close();
      await Promise.all([a.close(), b.close(), c.close()]);
    });
    return { a, b, c, gw };
  }

  test('below minHealthyPercent every target is used (panic), and it is logged', async (t) => {
    const { a, b, c, gw } = await allUnhealthy(t);
    a.healthStatus = 500;
    await waitFor(() => !gw.upstream().health().targets[0]!.healthy, 'a unhealthy');
    assert.equal(gw.upstream().health().panic, false, '2 of 3 healthy');
    assert.deepEqual(await spread(gw.url(), 4), { b: 2, c: 2 });

    b.healthStatus = 500; // 1 of 3 healthy: 33% < 50%
    await waitFor(() => gw.upstream().health().panic, 'panic mode');
    const line = gw.logs.find((l) => l.msg === 'upstream in panic mode: too few healthy targets, using all of them')!;
    assert.equal(line.upstream, 'up');
    assert.equal(line.healthy, 1);
    assert.equal(line.targets, 3);
    assert.deepEqual(await spread(gw.url(), 6), { a: 2, b: 2, c: 2 }, 'in panic, all targets take traffic');
    assert.equal(gw.upstream().health().targets[0]!.healthy, true, 'the view shows who is in the pick set');

    a.healthStatus = 200;
    await waitFor(() => !gw.upstream().health().panic, 'panic to end');
    assert.ok(gw.logs.some((l) => l.msg === 'upstream left panic mode'));
    assert.deepEqual(await spread(gw.url(), 4), { a: 2, c: 2 });
  });

  test('minHealthyPercent: 0 disables panic: no healthy target → 503 NO_TARGET', async (t) => {
    const { a, b, c, gw } = await allUnhealthy(t, 0);
    a.healthStatus = b.healthStatus = c.healthStatus = 500;
    await waitFor(() => gw.upstream().health().targets.every((x) => !x.healthy), 'every target unhealthy');
    const before = a.hits() + b.hits() + c.hits();
    const r = await send(gw.url());
    assert.equal(r.status, 503);
    assert.equal(codeOf(r), 'NO_TARGET');
    assert.equal(a.hits() + b.hits() + c.hits(), before);
    assert.ok(gw.logs.some((l) => l.msg === 'upstream has no healthy target'));
    c.healthStatus = 200;
    await waitFor(async () => (await send(gw.url())).status === 200, 'c serves again');
  });
});

describe('checker lifecycle', () => {
  test('a reload stops the old checks and starts the new ones; health carries over', async (t) => {
    const a = await startFlaky('a');
    const b = await startFlaky('b');
    const gw = await startLoggedGateway(policyConfig([a.address, b.address], { healthCheck: { active: ACTIVE } }));
    t.after(async () => {
      await gw.close();
      await Promise.all([a.close(), b.close()]);
    });
    a.healthStatus = 500;
    await waitFor(() => !gw.upstream().health().targets[0]!.healthy, 'a unhealthy');
    // Same healthCheck, different route: a stays unhealthy across the reload.
    const sameChecks = policyConfig([a.address, b.address], { healthCheck: { active: ACTIVE } }, { name: 'r2' });
    assert.equal((await gw.reload(sameChecks)).ok, true);
    assert.equal(gw.upstream().health().targets[0]!.healthy, false, 'state carried over');
    assert.deepEqual(await spread(gw.url(), 4), { b: 4 });

    // Checks on another path: the old checker must stop.
    assert.equal((await gw.reload(policyConfig([a.address, b.address], { healthCheck: { active: { ...ACTIVE, path: '/healthz-v2' } } }))).ok, true);
    const oldChecks = a.checks('/healthz') - a.checks('/healthz-v2');
    await waitFor(() => a.checks('/healthz-v2') >= 6, 'several rounds of the new checks');
    assert.ok(a.checks('/healthz') - a.checks('/healthz-v2') <= oldChecks + 1, 'at most one old check was already on its way');
  });

  test('stopping the gateway stops its checks and leaves no check socket open', async (t) => {
    const a = await startFlaky('a');
    t.after(() => a.close());
    const stopped = await startLoggedGateway(policyConfig([a.address], { healthCheck: { active: { ...ACTIVE, path: '/healthz-stopped' } } }));
    const witness = await startLoggedGateway(policyConfig([a.address], { healthCheck: { active: { ...ACTIVE, path: '/healthz-witness' } } }));
    t.after(() => witness.close());
    await waitFor(() => a.checks('/healthz-stopped') >= 2, 'checks of the first gateway');
    await stopped.close();
    const after = a.checks('/healthz-stopped');
    const w = a.checks('/healthz-witness');
    await waitFor(() => a.checks('/healthz-witness') >= w + 6, 'the witness to check six more times');
    assert.ok(a.checks('/healthz-stopped') <= after + 1);
    await witness.close();
    await waitFor(() => new Promise<boolean>((resolve) => a.server.getConnections((_e, n) => resolve(n === 0))), 'no check connection left open');
  });

  test('the health view without a healthCheck lists every target as healthy', async (t) => {
    const a = await startFlaky('a');
    const gw = await startLoggedGateway(policyConfig([a.address]));
    t.after(async () => {
      await gw.close();
      await a.close();
    });
    assert.deepEqual(gw.upstream().health(), {
      panic: false,
      targets: [{ address: a.address, weight: 1, healthy: true, active: 'unchecked', ejected: false, ejectedForMs: 0, ejections: 0, failures: { active: 0, passive: 0 } }],
      circuitBreaker: null,
    });
  });
});

