// The agent's PROXY header addresses from a data stream's portico-client /
// portico-server headers (untrusted input): any value, array or absence
// never throws and gives either both ends as IPs with ports or UNKNOWN;
// valid ends round-trip through encode → parse (v1 and v2) to the same
// addresses; anything else (names, missing port, junk, arrays) gives
// v1 `PROXY UNKNOWN` / v2 `LOCAL`.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { encodeProxyHeader } from '../../src/l4/proxy-protocol/encode.js';
import { parseProxyHeader } from '../../src/l4/proxy-protocol/parse.js';
import { formatHostPort } from '../../src/net/address.js';
import { proxyOrigin } from '../../src/tunnel/agent/origin.js';
import { fuzzRuns } from '../helpers/fuzz.js';

const ip = fc.oneof(fc.ipV4(), fc.ipV6(), fc.ipV4().map((a) => `::ffff:${a}`));
const port = fc.integer({ min: 0, max: 65535 });
const endpoint = fc.tuple(ip, port).map(([host, p]) => formatHostPort({ host, port: p }));
const junk = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constant(''), fc.constant('example.com:80'), fc.constant('1.2.3.4'), fc.constant('1.2.3.4:70000'), fc.constant('[::1]'), fc.constant('::1:80'));
const header = fc.oneof(endpoint, junk, fc.constant(undefined), fc.array(fc.oneof(endpoint, junk), { maxLength: 3 }));

function normal(text: string): string {
  const a = ipaddr.parse(text);
  if (a.kind() === 'ipv4') return a.toString();
  const v6 = a as ipaddr.IPv6;
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address().toString() : v6.toRFC5952String();
}

describe('proxyOrigin', () => {
  it('never throws; gives two IP ends with ports, or UNKNOWN (LOCAL in v2)', () => {
    fc.assert(
      fc.property(header, header, (c, s) => {
        const a = proxyOrigin(c, s);
        const known = isIP(a.sourceAddress) !== 0 && isIP(a.destinationAddress) !== 0;
        if (!known) {
          assert.equal(encodeProxyHeader('v1', a).toString('latin1'), 'PROXY UNKNOWN\r\n');
          const v2 = parseProxyHeader(encodeProxyHeader('v2', a));
          assert.ok(v2.kind === 'header' && v2.header.command === 'LOCAL');
        }
        if (typeof c !== 'string' || typeof s !== 'string') assert.equal(known, false, 'absent or repeated headers give UNKNOWN');
      }),
      fuzzRuns(2000),
    );
  });

  it('valid ends round-trip through the v1 and v2 headers', () => {
    fc.assert(
      fc.property(ip, port, ip, port, (sa, sp, da, dp) => {
        const a = proxyOrigin(formatHostPort({ host: sa, port: sp }), formatHostPort({ host: da, port: dp }));
        for (const version of ['v1', 'v2'] as const) {
          const r = parseProxyHeader(encodeProxyHeader(version, a));
          assert.equal(r.kind, 'header');
          if (r.kind !== 'header') return;
          assert.deepEqual(r.header.addresses, { sourceAddress: normal(sa), sourcePort: sp, destinationAddress: normal(da), destinationPort: dp });
        }
      }),
      fuzzRuns(1000),
    );
  });

  it('refuses names, missing ports, out-of-range ports and one missing end', () => {
    for (const [c, s] of [
      ['example.com:80', '127.0.0.1:80'],
      ['127.0.0.1', '127.0.0.1:80'],
      ['127.0.0.1:65536', '127.0.0.1:80'],
      ['[::1]:80', undefined],
      [['127.0.0.1:1', '127.0.0.1:2'], '127.0.0.1:80'],
      [`[${'1:'.repeat(60)}1]:80`, '127.0.0.1:80'],
    ] as const) {
      assert.equal(proxyOrigin(c as string | string[], s).sourceAddress, '', `${String(c)} / ${String(s)}`);
    }
    assert.deepEqual(proxyOrigin('[::1]:443', '10.0.0.1:8443'), { sourceAddress: '::1', sourcePort: 443, destinationAddress: '10.0.0.1', destinationPort: 8443 });
  });
});
