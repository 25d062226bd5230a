import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import { validateConfig, type LoadResult } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { ConsumerRegistry } from '../../src/consumers/consumer.js';
import { GatewayError } from '../../src/errors.js';
import { RequestContext, type ListenerRuntime } from '../../src/snapshot/snapshot.js';
import { consumerQuota } from '../../src/middlewares/consumer-quota.js';
import { rateLimit } from '../../src/middlewares/rate-limit.js';
import { AUTH_MIDDLEWARES, MIDDLEWARE_FACTORIES } from '../../src/middlewares/registry.js';
import { createLogger } from '../../src/observability/logger.js';
import { dayWindow, localDate } from '../../src/state/day.js';
import { MemoryStore } from '../../src/state/memory.js';
import { createStateStore } from '../../src/state/index.js';
import type { TokenBucketResult } from '../../src/state/store.js';

/** A clock the test moves by hand. */
function clock(start: number) {
  const c = { t: start, now: () => c.t };
  return c;
}

function ok(result: LoadResult): Config {
  if (!result.ok) assert.fail(result.errors.map((e) => `${e.path}: ${e.message}`).join('\n'));
  return result.config;
}

function doc(extra: Record<string, unknown> = {}, middlewares: unknown[] = []) {
  return {
    listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0' }],
    upstreams: [{ name: 'up', targets: [{ address: '127.0.0.1:9' }] }],
    routes: [{ name: 'r', listener: 'web', upstream: 'up', middlewares }],
    ...extra,
  };
}

/** A request context as the handler builds it, with no real socket behind it. */
function requestContext(clientIp = '127.0.0.1', rawHeaders: string[] = []): RequestContext {
  const req = { rawHeaders, headers: {} } as unknown as IncomingMessage;
  return new RequestContext(req, {} as ServerResponse, {} as ListenerRuntime, 'req-1', clientIp);
}

describe('MemoryStore token bucket', () => {
  it('starts full, takes one token per call, then refuses with the time to the next token', () => {
    const c = clock(1_000_000);
    const s = new MemoryStore({ now: c.now });
    const got: TokenBucketResult[] = [];
    for (let i = 0; i < 6; i++) got.push(s.takeToken('k', 10, 5));
    assert.deepEqual(
      got.map((r) => [r.allowed, r.remaining]),
      [
        [true, 4],
        [true, 3],
        [true, 2],
        [true, 1],
        [true, 0],
        [false, 0],
      ],
    );
    assert.equal(got[5]!.retryAfterMs, 100, 'one token at 10/s takes 100 ms');
    assert.equal(got[5]!.resetMs, 500, 'five tokens at 10/s take 500 ms');
    assert.equal(got[4]!.retryAfterMs, 0);
    void s.close();
  });

  it('refills lazily at `rate`, never above `burst`', () => {
    const c = clock(0);
    const s = new MemoryStore({ now: c.now });
    for (let i = 0; i < 5; i++) s.takeToken('k', 10, 5);
    c.t += 250; // 2.5 tokens
    assert.equal(s.takeToken('k', 10, 5).allowed, true);
    const second = s.takeToken('k', 10, 5);
    assert.equal(second.allowed, true);
    assert.equal(second.remaining, 0);
    const third = s.takeToken('k', 10, 5);
    assert.equal(third.allowed, false);
    assert.equal(third.retryAfterMs, 50, '0.5 token missing at 10/s');
    c.t += 60_000;
    const full = s.takeToken('k', 10, 5);
    assert.equal(full.remaining, 4, 'a minute later the bucket holds burst, not more');
    void s.close();
  });

  it('keys are independent; fractional rates and costs work', () => {
    const c = clock(0);
    const s = new MemoryStore({ now: c.now });
    assert.equal(s.takeToken('a', 0.5, 1).allowed, true);
    const r = s.takeToken('a', 0.5, 1);
    assert.equal(r.allowed, false);
    assert.equal(r.retryAfterMs, 2000);
    assert.equal(s.takeToken('b', 0.5, 1).allowed, true, 'another key has its own bucket');
    assert.equal(s.takeToken('c', 1, 2, 3).allowed, false, 'a cost above burst never passes');
    c.t += 1000;
    assert.equal(s.takeToken('a', 0.5, 1).allowed, false);
    c.t += 1000;
    assert.equal(s.takeToken('a', 0.5, 1).allowed, true);
    void s.close();
  });

  it('delay mode: goes into debt up to maxDelay worth of tokens, each caller told how long to wait', () => {
    const c = clock(0);
    const s = new MemoryStore({ now: c.now });
    const take = () => s.takeToken('d', 10, 1, 1, 300);
    const first = take();
    assert.deepEqual([first.allowed, first.delayMs], [true, 0]);
    assert.deepEqual([take().delayMs, take().delayMs, take().delayMs], [100, 200, 300]);
    const refused = take();
    assert.equal(refused.allowed, false, 'a fourth waiter would wait 400 ms > maxDelay');
    assert.equal(refused.retryAfterMs, 400);
    assert.equal(refused.remaining, 0);
    c.t += 400; // the debt of 3 is paid and one token is back
    const again = take();
    assert.deepEqual([again.allowed, again.delayMs], [true, 0]);
    void s.close();
  });

  it('peekTokens reads a bucket without taking from it', () => {
    const c = clock(0);
    const s = new MemoryStore({ now: c.now });
    assert.equal(s.peekTokens('p', 10, 5), 5, 'a bucket never used is full');
    s.takeToken('p', 10, 5, 5);
    assert.equal(s.peekTokens('p', 10, 5), 0);
    c.t += 150;
    assert.equal(s.peekTokens('p', 10, 5), 1.5);
    assert.equal(s.peekTokens('p', 10, 5), 1.5, 'peeking takes nothing');
    s.takeToken('d', 10, 1, 1, 1000);
    s.takeToken('d', 10, 1, 1, 1000);
    assert.equal(s.peekTokens('d', 10, 1), -1, 'in debt');
    void s.close();
  });

  it('counters add up until they expire, then start again', () => {
    const c = clock(0);
    const s = new MemoryStore({ now: c.now });
    assert.equal(s.increment('n', 1, 1000), 1);
    assert.equal(s.increment('n', 2, 1000), 3);
    c.t = 999;
    assert.equal(s.increment('n', 1, 1000), 4);
    c.t = 1000;
    assert.equal(s.increment('n', 1, 2000), 1, 'expired at expiresAt');
    void s.close();
  });
});

describe('day windows in a time zone', () => {
  it('UTC days are 24 h from midnight', () => {
    const w = dayWindow(Date.parse('2026-11-22T13:45:00Z'), 'UTC');
    assert.deepEqual(w, { day: '2026-11-22', start: Date.parse('2026-11-22T00:00:00Z'), end: Date.parse('2026-11-23T00:00:00Z') });
  });

  it('follows the zone offset and DST changes (23 h and 25 h days)', () => {
    const tokyo = dayWindow(Date.parse('2026-11-22T15:30:00Z'), 'Asia/Tokyo');
    assert.deepEqual(tokyo, { day: '2026-11-23', start: Date.parse('2026-11-22T15:00:00Z'), end: Date.parse('2026-11-23T15:00:00Z') });
    const spring = dayWindow(Date.parse('2026-03-08T12:00:00Z'), 'America/New_York');
    assert.equal(spring.start, Date.parse('2026-03-08T05:00:00Z'));
    assert.equal(spring.end, Date.parse('2026-03-09T04:00:00Z'));
    assert.equal(spring.end - spring.start, 23 * 3_600_000);
    const fall = dayWindow(Date.parse('2026-11-01T12:00:00Z'), 'America/New_York');
    assert.equal(fall.end - fall.start, 25 * 3_600_000);
    const kolkata = dayWindow(Date.parse('2026-06-01T18:29:59.999Z'), 'Asia/Kolkata');
    assert.equal(kolkata.day, '2026-06-01');
    assert.equal(kolkata.end, Date.parse('2026-06-01T18:30:00Z'));
    assert.equal(localDate(kolkata.end, 'Asia/Kolkata'), '2026-06-02');
  });
});

describe('state and rate-limit config', () => {
  it('state defaults to memory (in UTC); redis takes url, keyPrefix, timeout and timeZone', () => {
    assert.deepEqual(ok(validateConfig(doc())).state, { store: 'memory' });
    assert.deepEqual(ok(validateConfig(doc({ state: { store: 'memory' } }))).state, { store: 'memory' });
    assert.deepEqual(ok(validateConfig(doc({ state: { store: 'redis', url: 'redis://127.0.0.1:6379' } }))).state, {
      store: 'redis',
      url: 'redis://127.0.0.1:6379',
      keyPrefix: 'portico:',
      timeout: 150,
    });
    const memory = createStateStore(ok(validateConfig(doc())).state, createLogger('silent'));
    assert.equal(memory.timeZone, 'UTC', 'no timeZone means UTC');
    void memory.close();
    const tz = ok(validateConfig(doc({ state: { store: 'redis', url: 'rediss://h:1', timeout: '200ms', timeZone: 'Europe/Paris' } }))).state;
    assert.deepEqual([tz.timeZone, tz.store === 'redis' && tz.timeout], ['Europe/Paris', 200]);
  });

  it('rejects an unknown time zone and a bad redis timeout, naming the path', () => {
    const r = validateConfig(doc({ state: { store: 'memory', timeZone: 'Mars/Olympus_Mons' } }));
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.errors[0]!.path, 'state.timeZone');
      assert.match(r.errors[0]!.message, /IANA time zone/);
    }
    const t = validateConfig(doc({ state: { store: 'redis', url: 'redis://h:1', timeout: '1h' } }));
    assert.equal(t.ok, false);
    if (!t.ok) assert.equal(t.errors[0]!.path, 'state.timeout');
  });

  it('rate-limit options: defaults, and rate: -1 is an error naming the path', () => {
    const c = ok(validateConfig(doc({}, [{ 'rate-limit': { rate: 2.5 } }])));
    assert.deepEqual(c.routes[0]!.middlewares[0], {
      name: 'rate-limit',
      options: { rate: 2.5, burst: 3, key: 'route', mode: 'reject', maxDelay: 1000 },
    });
    const bad = validateConfig(doc({}, [{ 'rate-limit': { rate: -1 } }]));
    assert.equal(bad.ok, false);
    if (!bad.ok) {
      assert.equal(bad.errors.length, 1);
      assert.equal(bad.errors[0]!.path, 'routes[0].middlewares[0].rate-limit.rate');
      assert.match(bad.errors[0]!.message, /> 0/);
    }
    for (const [opts, path] of [
      [{ rate: 1, burst: 0 }, 'burst'],
      [{ rate: 1, burst: 1.5 }, 'burst'],
      [{ rate: 1, key: 'cookie:x' }, 'key'],
      [{ rate: 1, key: 'header:' }, 'key'],
      [{ rate: 1, mode: 'queue' }, 'mode'],
      [{ rate: 1, maxDelay: 'soon' }, 'maxDelay'],
      [{ rate: 1, extra: 1 }, 'extra'],
      [{}, 'rate'],
    ] as const) {
      const r = validateConfig(doc({}, [{ 'rate-limit': opts }]));
      assert.equal(r.ok, false, JSON.stringify(opts));
      if (!r.ok) assert.equal(r.errors[0]!.path, `routes[0].middlewares[0].rate-limit.${path}`, JSON.stringify(opts));
    }
    const env = ok(validateConfig(doc({}, [{ 'rate-limit': { rate: '${RATE}', burst: '${BURST}', key: 'header:X-Api-Key', mode: 'delay', maxDelay: '250ms' } }]), { RATE: '7.5', BURST: '20' }));
    assert.deepEqual(env.routes[0]!.middlewares[0]!.options, { rate: 7.5, burst: 20, key: 'header:X-Api-Key', mode: 'delay', maxDelay: 250 });
  });

  it('registers rate-limit and names the auth middlewares', () => {
    assert.equal(typeof MIDDLEWARE_FACTORIES['rate-limit'], 'function');
    assert.deepEqual([...AUTH_MIDDLEWARES].sort(), ['basic-auth', 'jwt-auth', 'key-auth', 'mtls-auth']);
  });
});

describe('rate-limit on the memory store', () => {
  it('stays synchronous: onRequest returns no promise, admitted or refused', () => {
    const config = ok(validateConfig(doc({}, [{ 'rate-limit': { rate: 1, burst: 1 } }])));
    const route = config.routes[0]!;
    const state = new MemoryStore();
    const mw = rateLimit(route.middlewares[0]!.options as never, { route, state, consumers: new ConsumerRegistry([]), logger: createLogger('silent') });
    const rc = requestContext();
    assert.equal(mw.onRequest!(rc), undefined);
    const head = { status: 200, headers: [] as string[] };
    mw.onResponse!(rc, head);
    assert.deepEqual(head.headers, ['RateLimit-Policy', '"r";q=1;w=1', 'RateLimit', '"r";r=0;t=1']);
    assert.throws(
      () => mw.onRequest!(requestContext()),
      (err: unknown) => err instanceof GatewayError && err.code === 'RATE_LIMITED' && err.headers?.['Retry-After'] === '1',
    );
    void state.close();
  });
});

describe('consumer quotas (consumerQuota with an injected clock)', () => {
  function setup(consumers: Record<string, unknown>[], timeZone: string, start: number) {
    const c = clock(start);
    const state = new MemoryStore({ now: c.now, timeZone });
    const config = ok(validateConfig(doc({ consumers })));
    const registry = new ConsumerRegistry(config.consumers);
    const mw = consumerQuota({ route: config.routes[0]!, state, consumers: registry, logger: createLogger('silent') });
    const call = (id: string | undefined): string => {
      const rc = requestContext();
      rc.consumer = id === undefined ? undefined : registry.get(id);
      try {
        const r = mw.onRequest!(rc);
        assert.equal(r, undefined, 'the memory store keeps quotas synchronous');
        return 'ok';
      } catch (err) {
        assert.ok(err instanceof GatewayError);
        assert.equal(err.code, 'QUOTA_EXCEEDED');
        assert.equal(err.status, 429);
        return `429 retry-after ${err.headers!['Retry-After']}`;
      }
    };
    return { c, state, call };
  }

  it('qps is a token bucket per consumer id (burst max(1, qps))', () => {
    const { c, state, call } = setup([{ id: 'a', qps: 2 }, { id: 'b', qps: 0.5 }, { id: 'free' }], 'UTC', 0);
    assert.deepEqual([call('a'), call('a'), call('a')], ['ok', 'ok', '429 retry-after 1']);
    assert.deepEqual([call('b'), call('b')], ['ok', '429 retry-after 2']);
    assert.equal(call('free'), 'ok');
    assert.equal(call(undefined), 'ok', 'no consumer, no quota');
    c.t += 500;
    assert.equal(call('a'), 'ok');
    void state.close();
  });

  it('qpd counts per calendar day in state.timeZone and resets at its midnight', () => {
    // 23:59:58 in Tokyo (UTC+9) is 14:59:58 UTC.
    const start = Date.parse('2026-11-22T14:59:58Z');
    const tokyo = setup([{ id: 'a', qpd: 2 }, { id: 'b', qpd: 2 }], 'Asia/Tokyo', start);
    assert.deepEqual([tokyo.call('a'), tokyo.call('a'), tokyo.call('a')], ['ok', 'ok', '429 retry-after 2']);
    assert.equal(tokyo.call('b'), 'ok', 'per consumer');
    tokyo.c.t = Date.parse('2026-11-22T15:00:00Z'); // midnight in Tokyo
    assert.deepEqual([tokyo.call('a'), tokyo.call('a'), tokyo.call('a')], ['ok', 'ok', `429 retry-after ${24 * 3600}`]);
    void tokyo.state.close();

    // The same instants in UTC are the same day: no reset.
    const utc = setup([{ id: 'a', qpd: 2 }], 'UTC', start);
    assert.deepEqual([utc.call('a'), utc.call('a')], ['ok', 'ok']);
    utc.c.t = Date.parse('2026-11-22T15:00:00Z');
    assert.equal(utc.call('a'), `429 retry-after ${9 * 3600}`, 'next UTC midnight is 9 h away');
    void utc.state.close();
  });

  it('a request refused by qps does not use up qpd', () => {
    const { c, state, call } = setup([{ id: 'a', qps: 1, qpd: 3 }], 'UTC', Date.parse('2026-01-01T00:00:00Z'));
    assert.deepEqual([call('a'), call('a'), call('a')], ['ok', '429 retry-after 1', '429 retry-after 1']);
    c.t += 1000;
    assert.equal(call('a'), 'ok');
    c.t += 1000;
    assert.equal(call('a'), 'ok');
    c.t += 1000;
    assert.match(call('a'), /^429 retry-after \d+$/);
    void state.close();
  });
});
