import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Resolver } from 'node:dns/promises';
import fc from 'fast-check';
import { discoverySchema, isDnsServer } from '../../src/config/schemas/discovery.js';
import { MAX_SRV_WEIGHT, nextDelay, retryDelay, selectSrv } from '../../src/discovery/dns-records.js';

const clamp = fc.tuple(fc.integer({ min: 100, max: 86_400_000 }), fc.integer({ min: 100, max: 86_400_000 })).map(([a, b]): [number, number] => (a <= b ? [a, b] : [b, a]));
const srv = fc.record({
  name: fc.constantFrom('a.example.internal', 'b.example.internal', 'c.example.internal', '.', ''),
  port: fc.integer({ min: 0, max: 70_000 }),
  priority: fc.integer({ min: 0, max: 65_535 }),
  weight: fc.integer({ min: 0, max: 65_535 }),
});

describe('dns discovery scheduling', () => {
  it('nextDelay is the smallest TTL in ms, clamped to [minTtl, maxTtl]', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2 ** 31 - 1 }), { maxLength: 20 }), clamp, (ttls, [min, max]) => {
        const d = nextDelay(ttls, min, max);
        assert.ok(Number.isInteger(d) && d >= min && d <= max, `${d} outside [${min}, ${max}]`);
        if (ttls.length === 0) assert.equal(d, min);
        else assert.equal(d, Math.min(max, Math.max(min, Math.min(...ttls) * 1000)));
      }),
    );
  });

  it('nextDelay ignores TTLs that are not numbers of seconds', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(Number.NaN, -1, Number.POSITIVE_INFINITY, -Infinity)), clamp, (ttls, [min, max]) => {
        assert.equal(nextDelay(ttls, min, max), min);
      }),
    );
  });

  it('retryDelay starts at minTtl, never shrinks and never passes maxTtl', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), clamp, (n, [min, max]) => {
        const d = retryDelay(n, min, max);
        assert.ok(d >= min && d <= max);
        assert.ok(retryDelay(n + 1, min, max) >= d);
        assert.equal(retryDelay(1, min, max), min);
      }),
    );
  });
});

describe('dns discovery SRV selection (RFC 2782)', () => {
  it('keeps only the lowest priority among usable records, weights in 1..cap', () => {
    fc.assert(
      fc.property(fc.array(srv, { maxLength: 30 }), (records) => {
        const { chosen, skipped } = selectSrv(records);
        const usable = records.filter((r) => r.name !== '' && r.name !== '.' && r.port >= 1 && r.port <= 65_535);
        assert.equal(skipped.length, records.length - usable.length);
        if (usable.length === 0) return assert.equal(chosen.length, 0);
        const lowest = Math.min(...usable.map((r) => r.priority));
        const expected = usable.filter((r) => r.priority === lowest);
        assert.equal(chosen.length, expected.length);
        expected.forEach((r, i) => {
          assert.equal(chosen[i]!.name, r.name);
          assert.equal(chosen[i]!.port, r.port);
          assert.equal(chosen[i]!.weight, r.weight === 0 ? 1 : Math.min(MAX_SRV_WEIGHT, r.weight));
        });
      }),
    );
  });

  it('names why a record is not a target', () => {
    const { chosen, skipped } = selectSrv([
      { name: '.', port: 80, priority: 0, weight: 1 },
      { name: 'a.example.internal', port: 0, priority: 0, weight: 1 },
      { name: 'b.example.internal', port: 8080, priority: 5, weight: 0 },
    ]);
    assert.deepEqual(chosen, [{ name: 'b.example.internal', port: 8080, weight: 1 }]);
    assert.match(skipped[0]!.reason, /not available/);
    assert.match(skipped[1]!.reason, /port 0/);
  });
});

describe('dns discovery servers (config)', () => {
  const ipPort = fc.oneof(
    fc.ipV4(),
    fc.ipV6(),
    fc.tuple(fc.ipV4(), fc.integer({ min: 1, max: 65_535 })).map(([ip, port]) => `${ip}:${port}`),
    fc.tuple(fc.ipV6(), fc.integer({ min: 1, max: 65_535 })).map(([ip, port]) => `[${ip}]:${port}`),
  );

  it('accepts every IP literal with or without a port', () => {
    fc.assert(fc.property(ipPort, (v) => assert.ok(isDnsServer(v), v)));
  });

  it('whatever it accepts, node:dns setServers takes (the backend never meets a server it cannot use)', () => {
    fc.assert(
      fc.property(fc.oneof(ipPort, fc.string(), fc.constantFrom('dns.local', 'dns.local:53', '1.2.3.4:0', '1.2.3.4:65536', '[::1]', '::1:53', ' 1.2.3.4', '')), (v) => {
        if (!isDnsServer(v)) return;
        new Resolver().setServers([v]);
      }),
    );
  });

  it('a bad server is a config error naming the field', () => {
    for (const bad of ['dns.local', '1.2.3.4:0', '[::1]', 'not an address']) {
      const r = discoverySchema.safeParse({ type: 'dns', name: 'api.example.internal', port: 80, servers: [bad] });
      assert.equal(r.success, false, bad);
      assert.deepEqual(r.error?.issues[0]?.path, ['servers', 0]);
      assert.match(r.error?.issues[0]?.message ?? '', /must be an IP address/);
    }
  });
});
