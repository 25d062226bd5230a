import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseDiscoveredEntry } from '../../src/discovery/entry.js';
import { parseHostPort } from '../../src/net/address.js';
import { fuzzRuns, STANDARD_RUNS } from '../helpers/fuzz.js';

describe('parseDiscoveredEntry: a registry entry as a target', () => {
  it('reads the node name, host:port data, "host:port weight" data and JSON data', () => {
    assert.deepEqual(parseDiscoveredEntry('127.0.0.1:2003', undefined), { address: '127.0.0.1:2003', weight: 1 });
    assert.deepEqual(parseDiscoveredEntry('127.0.0.1:2003', ''), { address: '127.0.0.1:2003', weight: 1 });
    assert.deepEqual(parseDiscoveredEntry('n1', '10.0.0.1:80'), { address: '10.0.0.1:80', weight: 1 });
    assert.deepEqual(parseDiscoveredEntry('n1', '10.0.0.1:80 5'), { address: '10.0.0.1:80', weight: 5 });
    assert.deepEqual(parseDiscoveredEntry('n1', '{"address":"api.internal:8080","weight":3}'), { address: 'api.internal:8080', weight: 3 });
    assert.deepEqual(parseDiscoveredEntry('n1', '{"host":"::1","port":9000}'), { address: '[::1]:9000', weight: 1 });
    assert.deepEqual(parseDiscoveredEntry('[::1]:9000', undefined), { address: '[::1]:9000', weight: 1 });
  });

  it('says why an entry is not a target, as a class', () => {
    const bad: [string, string | undefined, RegExp][] = [
      ['not-an-address', undefined, /its name "not-an-address" is not host:port/],
      ['x', '127.0.0.1', /not host:port/],
      ['x', '127.0.0.1:0', /not host:port/],
      ['x', '127.0.0.1:65536', /not host:port/],
      ['x', '127.0.0.1:80 -1', /weight/],
      ['x', '127.0.0.1:80 1.5', /weight/],
      ['x', '127.0.0.1:80 99999', /weight/],
      ['x', '127.0.0.1:80 1 extra', /must be host:port/],
      ['x', '{"address":', /not valid JSON/],
      ['x', '{"address":42}', /needs "address"/],
      ['x', '{"address":"a:1","weight":"3"}', /weight is not a number/],
      ['x', '[1,2]', /not host:port/],
      ['x', 'a'.repeat(5000), /longer than/],
      ['x', 'evil\u0000host:80', /\\x00/],
    ];
    for (const [name, data, why] of bad) {
      const r = parseDiscoveredEntry(name, data);
      assert.ok('error' in r, `${JSON.stringify([name, data])} is refused`);
      assert.match(r.error, why);
      assert.ok(r.error.length < 200, 'a bounded message');
    }
  });

  it('never throws; what it accepts is a host:port the dialer reads back to itself, weight 0..10000', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.option(fc.oneof(fc.string({ maxLength: 60 }), fc.json({ maxDepth: 2 })), { nil: undefined }), (name, data) => {
        const r = parseDiscoveredEntry(name, data);
        if ('error' in r) return;
        const hp = parseHostPort(r.address);
        assert.ok(hp !== undefined && hp.port > 0, r.address);
        assert.ok(Number.isInteger(r.weight) && r.weight >= 0 && r.weight <= 10_000);
      }),
      fuzzRuns(STANDARD_RUNS),
    );
  });

  it('reads back every address and weight it is given, in each of the three data forms', () => {
    const host = fc.oneof(fc.ipV4(), fc.domain().filter((d) => d.length < 60));
    fc.assert(
      fc.property(host, fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 0, max: 10_000 }), (h, port, weight) => {
        const address = `${h}:${port}`;
        if (parseHostPort(address) === undefined) return;
        assert.deepEqual(parseDiscoveredEntry(address, undefined), { address, weight: 1 });
        assert.deepEqual(parseDiscoveredEntry('n', `${address} ${weight}`), { address, weight });
        assert.deepEqual(parseDiscoveredEntry('n', JSON.stringify({ address, weight })), { address, weight });
      }),
      fuzzRuns(STANDARD_RUNS),
    );
  });
});
