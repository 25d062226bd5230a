// Property tests of the forward proxy's request-target parsers
// (docs/fuzzing.md; RFC 3986 §3.2.2-3.2.3, RFC 9112 §3.2.2-3.2.3):
// parseAuthority and parseAbsoluteForm never throw; what they accept is a
// lower-case host name that no resolver could read as an IPv4 address, or
// an IP literal, with a port 1-65535; `host:port` written from generated
// parts parses back to them; absolute-form targets yield an origin-form
// path.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import fc from 'fast-check';
import { parseAbsoluteForm, parseAuthority } from '../../src/l4/forward-proxy/target.js';
import { fuzzRuns } from '../helpers/fuzz.js';

const authorityChar = fc.constantFrom(...'0123456789abcdefxAZ.:-_[]%@/ '.split(''));
const authorityLike = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: authorityChar, maxLength: 40 }),
  fc.tuple(fc.oneof(fc.ipV4(), fc.ipV4Extended(), fc.ipV6().map((a) => `[${a}]`), fc.domain()), fc.option(fc.integer({ min: -1, max: 70000 }), { nil: undefined })).map(([h, p]) => (p === undefined ? h : `${h}:${p}`)),
);

describe('fuzz: forward-proxy targets', () => {
  it('parseAuthority: never throws; accepts only an IP literal or a DNS name no resolver reads as an address, and a port 1-65535', () => {
    fc.assert(
      fc.property(authorityLike, fc.option(fc.constantFrom(80, 443), { nil: undefined }), (text, defaultPort) => {
        const d = parseAuthority(text, defaultPort);
        if (d === undefined) return;
        assert.equal(d.authority, text);
        assert.ok(Number.isInteger(d.port) && d.port >= 1 && d.port <= 65535, `port ${d.port}`);
        if (d.isIp) {
          assert.notEqual(isIP(d.host), 0, d.host);
          assert.ok(!d.host.includes('%'), `zone id in ${d.host}`);
          return;
        }
        assert.equal(isIP(d.host), 0, d.host);
        assert.equal(d.host, d.host.toLowerCase());
        assert.ok(!d.host.endsWith('.') && d.host.length <= 253);
        const last = d.host.slice(d.host.lastIndexOf('.') + 1);
        // inet_aton reads `2130706433`, `0x7f` or `127.1` as IPv4: such a name must not pass as a host name.
        assert.ok(!/^(\d+|0x[0-9a-f]*)$/.test(last), `${d.host} could be read as an address`);
        assert.match(d.host, /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/);
      }),
      fuzzRuns(5000),
    );
  });

  it('host:port from generated parts parses back to the host (lower-case, no trailing dot) and port', () => {
    const host = fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain().filter((d) => !/^\d+$/.test(d.slice(d.lastIndexOf('.') + 1))));
    fc.assert(
      fc.property(host, fc.integer({ min: 1, max: 65535 }), fc.boolean(), (h, p, upper) => {
        const written = upper ? h.toUpperCase() : h;
        const text = isIP(h) === 6 ? `[${written}]:${p}` : `${written}:${p}`;
        const d = parseAuthority(text);
        assert.ok(d !== undefined, text);
        assert.equal(d.port, p);
        assert.equal(d.isIp, isIP(h) !== 0);
        assert.equal(d.host, h.toLowerCase());
        // Without a port: the default when there is one (absolute-form), refused when not (CONNECT).
        const bare = isIP(h) === 6 ? `[${written}]` : written;
        assert.equal(parseAuthority(bare, 80)?.port, 80);
        assert.equal(parseAuthority(bare), undefined);
      }),
      fuzzRuns(3000),
    );
  });

  it('parseAbsoluteForm: never throws; an accepted target has no userinfo or fragment and an origin-form path', () => {
    const target = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc.tuple(fc.constantFrom('http://', 'HTTP://', 'https://', 'http:/', 'http://user@'), authorityLike, fc.string({ unit: fc.constantFrom('/', '?', '#', 'a', '=', '%', '@'), maxLength: 15 })).map(([a, b, c]) => a + b + c),
    );
    fc.assert(
      fc.property(target, (t) => {
        const r = parseAbsoluteForm(t);
        if (r === undefined) return;
        assert.match(t, /^http:\/\//i);
        assert.ok(!t.includes('#'), t);
        assert.ok(!r.destination.authority.includes('@'), t);
        assert.ok(r.path.startsWith('/'), `${t} → ${r.path}`);
        assert.equal(t.slice(7, 7 + r.destination.authority.length), r.destination.authority);
      }),
      fuzzRuns(5000),
    );
  });
});
