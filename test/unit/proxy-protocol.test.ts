// The PROXY protocol (HAProxy proxy-protocol.txt v1 §2.1, v2 §2.2): the
// spec's examples, strict v1 field rules, v2 families/commands/TLVs and
// their bounds, encode → parse round trips on random addresses, feeding
// byte by byte, a seeded fuzz over random and mutated inputs (the parser
// never throws, answers only its defined outcomes, and a verdict on a
// prefix never changes with more bytes), and readProxyHeader on real
// loopback sockets (rest bytes kept, modes, timeout, close, no listener
// or timer left behind).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomInt } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { encodeProxyHeader, V2_SIGNATURE, type ProxiedAddresses } from '../../src/l4/proxy-protocol/encode.js';
import { parseProxyHeader, V1_MAX_LENGTH, V2_MAX_TLV_BYTES, type ParseResult, type ProxyHeader } from '../../src/l4/proxy-protocol/parse.js';
import { ProxyProtocolError, readProxyHeader } from '../../src/l4/proxy-protocol/read.js';

const latin1 = (s: string) => Buffer.from(s, 'latin1');

/** The parsed header, or a failed assertion naming what came instead. */
function headerOf(r: ParseResult, what = ''): ProxyHeader {
  assert.equal(r.kind, 'header', `${what}: expected a header, got ${JSON.stringify(r)}`);
  return (r as { header: ProxyHeader }).header;
}

/** A v2 header built by hand (not with encodeProxyHeader): fixed part + body. */
function v2(verCmd: number, famTransport: number, body: Buffer, length = body.length): Buffer {
  const fixed = Buffer.alloc(4);
  fixed[0] = verCmd;
  fixed[1] = famTransport;
  fixed.writeUInt16BE(length, 2);
  return Buffer.concat([V2_SIGNATURE, fixed, body]);
}

function tlv(type: number, value: Buffer): Buffer {
  const h = Buffer.alloc(3);
  h[0] = type;
  h.writeUInt16BE(value.length, 1);
  return Buffer.concat([h, value]);
}

const inetBody = (src: number[], dst: number[], sport: number, dport: number) => {
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(sport, 0);
  ports.writeUInt16BE(dport, 2);
  return Buffer.concat([Buffer.from(src), Buffer.from(dst), ports]);
};

const v6Bytes = (text: string) => Buffer.from(ipaddr.IPv6.parse(text).toByteArray());

describe('PROXY protocol v1', () => {
  test('spec examples: TCP4, TCP6 and UNKNOWN; the client data after the CRLF is not consumed', () => {
    const line4 = 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n';
    const h4 = headerOf(parseProxyHeader(latin1(`${line4}GET / HTTP/1.1\r\n`)));
    assert.deepEqual(h4, {
      version: 1,
      command: 'PROXY',
      family: 'inet',
      transport: 'stream',
      addresses: { sourceAddress: '192.168.0.1', sourcePort: 56324, destinationAddress: '192.168.0.11', destinationPort: 443 },
      consumed: line4.length,
    });
    const line6 = 'PROXY TCP6 2001:db8::1 2001:db8::2 12345 443\r\n';
    const h6 = headerOf(parseProxyHeader(latin1(`${line6}x`)));
    assert.deepEqual(h6.addresses, { sourceAddress: '2001:db8::1', sourcePort: 12345, destinationAddress: '2001:db8::2', destinationPort: 443 });
    assert.equal(h6.family, 'inet6');
    assert.equal(h6.consumed, line6.length);
    const unknown = headerOf(parseProxyHeader(latin1('PROXY UNKNOWN\r\nrest')));
    assert.deepEqual(unknown, { version: 1, command: 'PROXY', family: 'unspec', transport: 'unspec', addresses: null, consumed: 15 });
  });

  test('the worst case of §2.1 is exactly 107 bytes and accepted; one byte more is malformed', () => {
    const full = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const worst = `PROXY UNKNOWN ${full} ${full} 65535 65535\r\n`;
    assert.equal(worst.length, V1_MAX_LENGTH);
    assert.equal(headerOf(parseProxyHeader(latin1(worst))).consumed, 107);
    const tcp6 = `PROXY TCP6 ${full} ${full} 65535 65535\r\n`;
    assert.equal(headerOf(parseProxyHeader(latin1(tcp6))).addresses?.sourceAddress, full);
    const long = `PROXY UNKNOWN ${full} ${full} 65535 655355\r\n`;
    assert.equal(long.length, 108);
    assert.equal(parseProxyHeader(latin1(long)).kind, 'malformed');
    // A line with no CRLF yet is malformed as soon as it cannot fit any more, not after buffering more.
    assert.equal(parseProxyHeader(latin1(long.slice(0, 105))).kind, 'incomplete');
    assert.equal(parseProxyHeader(latin1(long.slice(0, 106))).kind, 'malformed');
  });

  test('addresses are normalised: RFC 5952 IPv6, IPv4-mapped IPv6 as IPv4', () => {
    const h = headerOf(parseProxyHeader(latin1('PROXY TCP6 2001:0DB8:0:0:0:0:0:0001 ::ffff:203.0.113.7 1 2\r\n')));
    assert.deepEqual(h.addresses, { sourceAddress: '2001:db8::1', sourcePort: 1, destinationAddress: '203.0.113.7', destinationPort: 2 });
    const z = headerOf(parseProxyHeader(latin1('PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n')));
    assert.deepEqual(z.addresses, { sourceAddress: '0.0.0.0', sourcePort: 0, destinationAddress: '255.255.255.255', destinationPort: 65535 });
  });

  test('strict fields: every deviation is malformed', () => {
    const bad = [
      'PROXY TCP4 192.168.0.1  192.168.0.11 56324 443\r\n', // two spaces
      'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 \r\n', // trailing space
      'PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n', // missing field
      'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 80\r\n', // extra field
      'PROXY TCP4 192.168.0.1 192.168.0.11 056324 443\r\n', // leading zero
      'PROXY TCP4 192.168.0.1 192.168.0.11 00 443\r\n',
      'PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n', // out of range
      'PROXY TCP4 192.168.0.1 192.168.0.11 -1 443\r\n',
      'PROXY TCP4 192.168.0.1 192.168.0.11 +1 443\r\n',
      'PROXY TCP4 192.168.0.1 192.168.0.11 0x1 443\r\n',
      'PROXY TCP4 192.168.0.1 192.168.0.11 1e3 443\r\n',
      'PROXY TCP4 192.168.0.01 192.168.0.11 1 443\r\n', // leading zero in an octet
      'PROXY TCP4 256.168.0.1 192.168.0.11 1 443\r\n',
      'PROXY TCP4 192.168.0 192.168.0.11 1 443\r\n',
      'PROXY TCP4 2001:db8::1 192.168.0.11 1 443\r\n', // wrong family
      'PROXY TCP6 192.168.0.1 2001:db8::2 1 443\r\n',
      'PROXY TCP6 fe80::1%eth0 2001:db8::2 1 443\r\n', // zone index
      'PROXY TCP6 2001:db8:::1 2001:db8::2 1 443\r\n',
      'PROXY tcp4 192.168.0.1 192.168.0.11 1 443\r\n', // case matters
      'PROXY TCP5 192.168.0.1 192.168.0.11 1 443\r\n',
      'PROXY UDP4 192.168.0.1 192.168.0.11 1 443\r\n',
      'PROXY  TCP4 192.168.0.1 192.168.0.11 1 443\r\n',
      'PROXY UNKNOWNX\r\n',
      'PROXY \r\n',
      'PROXY TCP4 192.168.0.1 192.168.0.11 1 443\n', // LF without CR
      'PROXY TCP4 192.168.0.1 192.168.0.11 1 443\rX', // CR without LF
      'PROXY TCP4\t192.168.0.1 192.168.0.11 1 443\r\n', // control character
      'PROXY TCP4 192.168.0.1 192.168.0.11 1 4\u00e93\r\n', // non-ASCII
    ];
    for (const line of bad) assert.equal(parseProxyHeader(latin1(line)).kind, 'malformed', JSON.stringify(line));
  });

  test('UNKNOWN ignores whatever follows it up to the CRLF (§2.1)', () => {
    const line = 'PROXY UNKNOWN 1.2.3.4 garbage here 99999\r\n';
    const h = headerOf(parseProxyHeader(latin1(`${line}data`)));
    assert.equal(h.addresses, null);
    assert.equal(h.consumed, line.length);
  });
});

describe('PROXY protocol v2', () => {
  test('INET over STREAM (spec §2.2 layout), the client data after it untouched', () => {
    const hdr = v2(0x21, 0x11, inetBody([192, 168, 0, 1], [192, 168, 0, 11], 56324, 443));
    assert.equal(hdr.length, 28);
    const h = headerOf(parseProxyHeader(Buffer.concat([hdr, latin1('payload')])));
    assert.deepEqual(h, {
      version: 2,
      command: 'PROXY',
      family: 'inet',
      transport: 'stream',
      addresses: { sourceAddress: '192.168.0.1', sourcePort: 56324, destinationAddress: '192.168.0.11', destinationPort: 443 },
      consumed: 28,
    });
  });

  test('INET6, and IPv4-mapped INET6 addresses read as IPv4', () => {
    const ports = Buffer.from([0x30, 0x39, 0x01, 0xbb]);
    const h = headerOf(parseProxyHeader(v2(0x21, 0x21, Buffer.concat([v6Bytes('2001:db8::1'), v6Bytes('2001:db8:0:0:1::2'), ports]))));
    assert.deepEqual(h.addresses, { sourceAddress: '2001:db8::1', sourcePort: 12345, destinationAddress: '2001:db8::1:0:0:2', destinationPort: 443 });
    assert.equal(h.consumed, 16 + 36);
    const m = headerOf(parseProxyHeader(v2(0x21, 0x21, Buffer.concat([v6Bytes('::ffff:203.0.113.7'), v6Bytes('::1'), ports]))));
    assert.equal(m.addresses?.sourceAddress, '203.0.113.7');
    assert.equal(m.addresses?.destinationAddress, '::1');
  });

  test('LOCAL: accepted, addresses ignored (null), with or without an address block', () => {
    const bare = headerOf(parseProxyHeader(v2(0x20, 0x00, Buffer.alloc(0))));
    assert.deepEqual(bare, { version: 2, command: 'LOCAL', family: 'unspec', transport: 'unspec', addresses: null, consumed: 16 });
    const withAddr = headerOf(parseProxyHeader(v2(0x20, 0x11, inetBody([10, 0, 0, 1], [10, 0, 0, 2], 1, 2))));
    assert.equal(withAddr.command, 'LOCAL');
    assert.equal(withAddr.addresses, null);
    assert.equal(withAddr.consumed, 28);
    // The body of a LOCAL (or UNSPEC) header is ignored whole, even when it is not a TLV chain.
    assert.equal(headerOf(parseProxyHeader(v2(0x20, 0x00, Buffer.from([0x01, 0xff])))).consumed, 18);
    assert.equal(headerOf(parseProxyHeader(v2(0x21, 0x00, Buffer.from([0x01, 0xff, 0xff])))).consumed, 19);
    assert.equal(headerOf(parseProxyHeader(v2(0x20, 0x11, Buffer.alloc(4)))).consumed, 20, 'LOCAL with a short INET block');
    assert.equal(parseProxyHeader(v2(0x20, 0x11, Buffer.alloc(0), 12 + V2_MAX_TLV_BYTES + 1)).kind, 'malformed', 'the length cap holds for LOCAL too');
  });

  test('TLVs are skipped; the header ends after the last one', () => {
    const tlvs = Buffer.concat([tlv(0x01, latin1('h2')), tlv(0x02, latin1('example.com')), tlv(0x04, Buffer.alloc(0)), tlv(0xe0, Buffer.alloc(300, 7))]);
    const body = Buffer.concat([inetBody([203, 0, 113, 7], [198, 51, 100, 1], 40000, 6379), tlvs]);
    const hdr = v2(0x21, 0x11, body);
    const h = headerOf(parseProxyHeader(Buffer.concat([hdr, latin1('PING\r\n')])));
    assert.equal(h.consumed, hdr.length);
    assert.equal(h.addresses?.sourceAddress, '203.0.113.7');
    // Exactly V2_MAX_TLV_BYTES of TLVs is still fine.
    const max = tlv(0xee, Buffer.alloc(V2_MAX_TLV_BYTES - 3));
    assert.equal(headerOf(parseProxyHeader(v2(0x21, 0x11, Buffer.concat([inetBody([1, 2, 3, 4], [5, 6, 7, 8], 1, 2), max])))).consumed, 16 + 12 + V2_MAX_TLV_BYTES);
  });

  test('UNIX, UNSPEC-with-PROXY and DGRAM are accepted; UNIX/UNSPEC carry no IP addresses', () => {
    const unix = headerOf(parseProxyHeader(v2(0x21, 0x31, Buffer.alloc(216))));
    assert.deepEqual([unix.family, unix.addresses, unix.consumed], ['unix', null, 232]);
    const unspec = headerOf(parseProxyHeader(v2(0x21, 0x00, Buffer.alloc(0))));
    assert.deepEqual([unspec.command, unspec.family, unspec.addresses], ['PROXY', 'unspec', null]);
    const dgram = headerOf(parseProxyHeader(v2(0x21, 0x12, inetBody([1, 2, 3, 4], [5, 6, 7, 8], 53, 53))));
    assert.equal(dgram.transport, 'dgram');
    assert.equal(dgram.addresses?.destinationPort, 53);
  });

  test('invalid version, command, family, transport, length and TLVs are malformed', () => {
    const addr = inetBody([1, 2, 3, 4], [5, 6, 7, 8], 1, 2);
    const cases: [string, Buffer][] = [
      ['version 1', v2(0x11, 0x11, addr)],
      ['version 3', v2(0x31, 0x11, addr)],
      ['command 2', v2(0x22, 0x11, addr)],
      ['command 15', v2(0x2f, 0x11, addr)],
      ['family 4', v2(0x21, 0x41, addr)],
      ['transport 3', v2(0x21, 0x13, addr)],
      ['INET shorter than 12', v2(0x21, 0x11, addr.subarray(0, 11))],
      ['INET6 shorter than 36', v2(0x21, 0x21, Buffer.alloc(35))],
      ['UNIX shorter than 216', v2(0x21, 0x31, Buffer.alloc(215))],
      ['truncated TLV (2 bytes)', v2(0x21, 0x11, Buffer.concat([addr, Buffer.from([0x01, 0x00])]))],
      ['TLV longer than the header', v2(0x21, 0x11, Buffer.concat([addr, Buffer.from([0x01, 0x00, 0x05, 0x61])]))],
    ];
    for (const [what, buf] of cases) assert.equal(parseProxyHeader(buf).kind, 'malformed', what);
  });

  test('an oversized length is refused from the 16 fixed bytes alone, before its body is awaited', () => {
    const fixed = v2(0x21, 0x11, Buffer.alloc(0), 12 + V2_MAX_TLV_BYTES + 1);
    assert.equal(parseProxyHeader(fixed).kind, 'malformed');
    assert.equal(parseProxyHeader(v2(0x21, 0x11, Buffer.alloc(0), 0xffff)).kind, 'malformed');
    // Within the cap, the same 16 bytes only ask for more.
    assert.equal(parseProxyHeader(v2(0x21, 0x11, Buffer.alloc(0), 12 + V2_MAX_TLV_BYTES)).kind, 'incomplete');
  });
});

describe('not a header', () => {
  test('data that cannot start a header is told apart at the first differing byte', () => {
    for (const s of ['GET / HTTP/1.1\r\n', '\x16\x03\x01\x02\x00', 'PROXX', 'PROXY\r\n', 'P ', '\r\n\r\nGET', '\r\n\r\n\x00\r\nQUIX', '*1\r\n$4\r\nPING\r\n']) {
      assert.equal(parseProxyHeader(latin1(s)).kind, 'not-proxy', JSON.stringify(s));
    }
    for (const s of ['', 'P', 'PROXY', '\r\n\r\n\x00\r\nQUI']) assert.equal(parseProxyHeader(latin1(s)).kind, 'incomplete', JSON.stringify(s));
  });
});

// A small seeded PRNG (mulberry32) so a failing fuzz case can be replayed from the seed in the message.
function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

function randomV4(r: (n: number) => number): string {
  return [r(256), r(256), r(256), r(256)].join('.');
}

/** A random IPv6 address in one of several textual forms; `canonical` is what the parser should answer. */
function randomV6(r: (n: number) => number): { text: string; canonical: string } {
  const groups = Array.from({ length: 8 }, () => (r(3) === 0 ? 0 : r(0x10000)));
  if (r(4) === 0) groups.fill(0, 0, 5); // long zero runs, ::ffff: prefixes
  if (r(6) === 0) groups[5] = 0xffff;
  const bytes = groups.flatMap((g) => [g >> 8, g & 0xff]);
  const addr = ipaddr.fromByteArray(bytes) as ipaddr.IPv6;
  const canonical = addr.isIPv4MappedAddress() ? addr.toIPv4Address().toString() : addr.toRFC5952String();
  const forms = [
    addr.toRFC5952String(),
    addr.toNormalizedString(), // all eight groups, no ::
    groups.map((g) => g.toString(16).padStart(4, '0')).join(':'), // leading zeros
    addr.toRFC5952String().toUpperCase(),
    `${groups.slice(0, 6).map((g) => g.toString(16)).join(':')}:${bytes.slice(12).join('.')}`, // dotted IPv4 tail
  ];
  return { text: forms[r(forms.length)]!, canonical };
}

describe('encode → parse round trips', () => {
  test('random IPv4, IPv6 (several spellings) and IPv4-mapped addresses, v1 and v2', () => {
    const seed = randomInt(2 ** 31);
    const r = prng(seed);
    for (let i = 0; i < 3000; i++) {
      // Each end IPv4 or IPv6 (several spellings, some IPv4-mapped): same and mixed families.
      const end = () => {
        if (r(2) === 0) return randomV6(r);
        const text = randomV4(r);
        return { text, canonical: text };
      };
      const src = end();
      const dst = end();
      const a: ProxiedAddresses = { sourceAddress: src.text, sourcePort: r(65536), destinationAddress: dst.text, destinationPort: r(65536) };
      const expected = { ...a, sourceAddress: src.canonical, destinationAddress: dst.canonical };
      for (const version of ['v1', 'v2'] as const) {
        const wire = Buffer.concat([encodeProxyHeader(version, a), latin1('DATA')]);
        const h = headerOf(parseProxyHeader(wire), `seed ${seed} #${i} ${version} ${JSON.stringify(a)}`);
        assert.equal(h.consumed, wire.length - 4);
        assert.deepEqual(h.addresses, expected, `seed ${seed} #${i} ${version} ${JSON.stringify(a)}`);
      }
    }
  });

  test('mixed families are sent as IPv6 (IPv4 end mapped) and read back as given; non-IP ends give UNKNOWN / LOCAL', () => {
    const a = { sourceAddress: '203.0.113.7', sourcePort: 1, destinationAddress: '2001:db8::1', destinationPort: 2 };
    assert.equal(encodeProxyHeader('v1', a).toString('latin1'), 'PROXY TCP6 ::ffff:203.0.113.7 2001:db8::1 1 2\r\n');
    for (const version of ['v1', 'v2'] as const) assert.deepEqual(headerOf(parseProxyHeader(encodeProxyHeader(version, a))).addresses, a, version);
    const mapped = { ...a, sourceAddress: '::ffff:203.0.113.7', destinationAddress: '::FFFF:198.51.100.1' };
    assert.equal(encodeProxyHeader('v1', mapped).toString('latin1'), 'PROXY TCP4 203.0.113.7 198.51.100.1 1 2\r\n');
    assert.equal(encodeProxyHeader('v1', { ...a, destinationAddress: 'fe80::1%eth0' }).toString('latin1'), 'PROXY TCP6 ::ffff:203.0.113.7 fe80::1 1 2\r\n');
    const local = { version: 2, command: 'LOCAL', family: 'unspec', transport: 'unspec', addresses: null, consumed: 16 };
    for (const bad of [{ ...a, sourceAddress: '/run/app.sock' }, { ...a, destinationAddress: '' }, { ...a, sourcePort: 70000 }]) {
      assert.equal(encodeProxyHeader('v1', bad).toString('latin1'), 'PROXY UNKNOWN\r\n');
      assert.deepEqual(headerOf(parseProxyHeader(encodeProxyHeader('v2', bad))), local);
    }
  });

  test('fed one byte at a time: incomplete until the last header byte, then the same header', () => {
    const headers = [
      latin1('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n'),
      latin1('PROXY TCP6 2001:db8::1 2001:db8::2 12345 443\r\n'),
      latin1('PROXY UNKNOWN\r\n'),
      encodeProxyHeader('v2', { sourceAddress: '10.1.2.3', sourcePort: 5, destinationAddress: '10.3.2.1', destinationPort: 6 }),
      encodeProxyHeader('v2', { sourceAddress: '2001:db8::7', sourcePort: 5, destinationAddress: '2001:db8::8', destinationPort: 6 }),
      v2(0x20, 0x00, Buffer.alloc(0)),
      v2(0x21, 0x11, Buffer.concat([inetBody([1, 2, 3, 4], [5, 6, 7, 8], 9, 10), tlv(0x01, latin1('h2')), tlv(0x20, Buffer.alloc(40))])),
    ];
    for (const hdr of headers) {
      const wire = Buffer.concat([hdr, latin1('after')]);
      const whole = headerOf(parseProxyHeader(wire));
      for (let n = 0; n < hdr.length; n++) assert.equal(parseProxyHeader(wire.subarray(0, n)).kind, 'incomplete', `${n} of ${hdr.length}`);
      for (let n = hdr.length; n <= wire.length; n++) assert.deepEqual(headerOf(parseProxyHeader(wire.subarray(0, n))), whole);
    }
  });
});

describe('fuzz', () => {
  const VALID = [
    'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n',
    'PROXY TCP6 2001:db8::1 2001:db8::2 12345 443\r\n',
    'PROXY TCP6 ::ffff:1.2.3.4 ::1 0 65535\r\n',
    'PROXY UNKNOWN\r\n',
  ].map(latin1);
  const TOKENS = ['PROXY', ' ', 'TCP4', 'TCP6', 'UNKNOWN', '\r\n', '\r', '\n', '0', '65535', '65536', '007', '1.2.3.4', '::1', '::ffff:1.2.3.4', '2001:db8::1', 'fe80::1%lo', '256.1.1.1', ':', '.', 'x'];

  function generate(r: (n: number) => number): Buffer {
    switch (r(5)) {
      case 0: // random bytes, sometimes after a real prefix
        return Buffer.concat([r(2) === 0 ? Buffer.alloc(0) : r(2) === 0 ? latin1('PROXY ') : V2_SIGNATURE, Buffer.from(Array.from({ length: r(300) }, () => r(256)))]);
      case 1: // v1-shaped token soup
        return latin1(`PROXY ${Array.from({ length: r(12) }, () => TOKENS[r(TOKENS.length)]).join(r(4) === 0 ? '' : ' ')}${r(2) === 0 ? '\r\n' : ''}`);
      case 2: {
        // a v2 header with random fixed bytes and body
        const body = Buffer.from(Array.from({ length: r(260) }, () => r(256)));
        return v2(r(256), r(256), body, r(3) === 0 ? r(0x10000) : body.length);
      }
      default: {
        // a valid header (fixed v1 examples, random v1/v2 encodings), mutated 0-3 times: flip, insert, delete, truncate
        const version = r(2) === 0 ? 'v1' : 'v2';
        const random: ProxiedAddresses =
          r(2) === 0
            ? { sourceAddress: randomV4(r), sourcePort: r(65536), destinationAddress: randomV4(r), destinationPort: r(65536) }
            : { sourceAddress: randomV6(r).text, sourcePort: r(65536), destinationAddress: randomV6(r).text, destinationPort: r(65536) };
        let b = Buffer.from(r(4) === 0 ? VALID[r(VALID.length)]! : encodeProxyHeader(version, random));
        for (let m = r(5) - 1; m >= 0; m--) {
          const at = r(b.length + 1);
          switch (r(4)) {
            case 0:
              if (at < b.length) b[at] = r(256);
              break;
            case 1:
              b = Buffer.concat([b.subarray(0, at), Buffer.from([r(256)]), b.subarray(at)]);
              break;
            case 2:
              b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
              break;
            default:
              b = b.subarray(0, at);
          }
        }
        return Buffer.concat([b, r(2) === 0 ? latin1('payload') : Buffer.alloc(0)]);
      }
    }
  }

  test('20 000 random and mutated inputs: no throw, defined outcomes, verdicts stable under more bytes, v1 re-encodes', () => {
    const seed = randomInt(2 ** 31);
    const r = prng(seed);
    const counts = { incomplete: 0, 'not-proxy': 0, malformed: 0, header: 0 };
    let reencoded = 0;
    let exact = 0;
    for (let i = 0; i < 20_000; i++) {
      const input = generate(r);
      const at = `seed ${seed} #${i} ${input.toString('hex')}`;
      let res: ParseResult;
      try {
        res = parseProxyHeader(input);
      } catch (err) {
        assert.fail(`${at}: threw ${String(err)}`);
      }
      assert.ok(res.kind in counts, at);
      counts[res.kind]++;
      // A final verdict on a prefix is the verdict on the whole; an undecided prefix stays consistent.
      const cut = r(input.length + 1);
      const early = parseProxyHeader(input.subarray(0, cut));
      if (early.kind !== 'incomplete') assert.deepEqual(res.kind === 'malformed' ? { kind: 'malformed' } : res, early.kind === 'malformed' ? { kind: 'malformed' } : early, `${at} cut ${cut}`);
      if (res.kind === 'malformed') assert.ok(typeof res.reason === 'string' && res.reason.length > 0, at);
      if (res.kind !== 'header') continue;
      const h = res.header;
      assert.ok(h.consumed > 0 && h.consumed <= input.length, at);
      assert.ok(h.version === 1 ? h.consumed <= V1_MAX_LENGTH : h.consumed <= 16 + 216 + V2_MAX_TLV_BYTES, at);
      if (h.addresses !== null) {
        const a = h.addresses;
        assert.ok(net.isIP(a.sourceAddress) !== 0 && net.isIP(a.destinationAddress) !== 0, at);
        assert.ok(Number.isInteger(a.sourcePort) && a.sourcePort >= 0 && a.sourcePort <= 65535, at);
        assert.ok(Number.isInteger(a.destinationPort) && a.destinationPort >= 0 && a.destinationPort <= 65535, at);
      }
      if (h.version !== 1) continue;
      const text = input.toString('latin1', 0, h.consumed);
      if (h.addresses === null) {
        assert.match(text, /^PROXY UNKNOWN( [\x20-\x7e]*)?\r\n$/, at);
        continue;
      }
      // Re-encoding gives the same header: byte for byte when the text was in canonical
      // form, else the same addresses (the parser normalises the spelling).
      const again = encodeProxyHeader('v1', h.addresses);
      const [, , src, dst] = text.split(' ');
      if (src === h.addresses.sourceAddress && dst === h.addresses.destinationAddress) {
        assert.equal(again.toString('latin1'), text, at);
        exact++;
      }
      reencoded++;
      assert.deepEqual(headerOf(parseProxyHeader(again), at).addresses, h.addresses, at);
    }
    // The generators reach every outcome (the test would be hollow otherwise).
    for (const [k, n] of Object.entries(counts)) assert.ok(n > 100, `seed ${seed}: only ${n} ${k} outcomes`);
    assert.ok(reencoded > 500 && exact > 200, `seed ${seed}: only ${reencoded} v1 TCP headers re-encoded, ${exact} byte for byte`);
  });
});

describe('readProxyHeader on real sockets', () => {
  let server: net.Server;
  let port = 0;
  /** Server-side sockets, handed to the test waiting for the next connection. */
  const waiting: ((s: net.Socket) => void)[] = [];
  const clients: net.Socket[] = [];
  const peers: net.Socket[] = [];

  before(async () => {
    server = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined);
      peers.push(s);
      waiting.shift()?.(s);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
  });
  after(async () => {
    for (const c of clients) c.destroy();
    for (const p of peers) p.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });

  /** A connected pair: the client socket and the server's side of it. */
  async function pair(): Promise<{ client: net.Socket; peer: net.Socket }> {
    const peer = new Promise<net.Socket>((r) => waiting.push(r));
    const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    client.on('error', () => undefined);
    clients.push(client);
    return { client, peer: await peer };
  }

  const timers = () => process.getActiveResourcesInfo().filter((t) => t === 'Timeout').length;
  const listeners = (s: net.Socket) => ['data', 'end', 'close', 'error'].map((e) => s.listenerCount(e));

  test('a header split over writes: addresses, the bytes after it as rest, then the stream continues; no listener left', async () => {
    const { client, peer } = await pair();
    const before = listeners(peer);
    const timersBefore = timers();
    const hdr = latin1('PROXY TCP4 203.0.113.7 198.51.100.1 40000 6380\r\n');
    const reading = readProxyHeader(peer, { required: true, timeoutMs: 10_000 });
    client.write(hdr.subarray(0, 10));
    await new Promise((r) => setTimeout(r, 20));
    client.write(Buffer.concat([hdr.subarray(10), latin1('HELLO')]));
    const res = await reading;
    assert.equal(res.present, true);
    assert.deepEqual(res.addresses, { sourceAddress: '203.0.113.7', sourcePort: 40000, destinationAddress: '198.51.100.1', destinationPort: 6380 });
    assert.equal(res.rest.toString('latin1'), 'HELLO');
    assert.deepEqual(listeners(peer), before);
    assert.equal(peer.isPaused(), true);
    assert.equal(timers(), timersBefore, 'the timeout timer is cleared');
    // Nothing past the header was lost: what follows is read in order.
    client.end('WORLD');
    const chunks: Buffer[] = [];
    peer.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise((r) => peer.once('end', r));
    peer.resume();
    await ended;
    assert.equal(Buffer.concat([res.rest, ...chunks]).toString('latin1'), 'HELLOWORLD');
  });

  test('required: data without a header is missing; a bad header is malformed', async () => {
    const a = await pair();
    a.client.write('GET / HTTP/1.1\r\n\r\n');
    await assert.rejects(readProxyHeader(a.peer, { required: true, timeoutMs: 10_000 }), (e: unknown) => e instanceof ProxyProtocolError && e.reason === 'missing');
    const b = await pair();
    b.client.write('PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n');
    await assert.rejects(readProxyHeader(b.peer, { required: true, timeoutMs: 10_000 }), (e: unknown) => e instanceof ProxyProtocolError && e.reason === 'malformed');
    const c = await pair();
    c.client.write('PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n');
    await assert.rejects(readProxyHeader(c.peer, { required: false, timeoutMs: 10_000 }), (e: unknown) => e instanceof ProxyProtocolError && e.reason === 'malformed');
  });

  test('accept: data without a header is handed back whole as rest', async () => {
    const { client, peer } = await pair();
    client.write('*1\r\n$4\r\nPING\r\n');
    const res = await readProxyHeader(peer, { required: false, timeoutMs: 10_000 });
    assert.deepEqual([res.present, res.addresses, res.rest.toString('latin1')], [false, null, '*1\r\n$4\r\nPING\r\n']);
  });

  test('accept: an end before a header has begun leaves the bytes so far (maybe none) as the client’s data', async () => {
    for (const sent of ['', 'PR', '\r\n']) {
      const { client, peer } = await pair();
      const reading = readProxyHeader(peer, { required: false, timeoutMs: 10_000 });
      client.end(sent);
      const res = await reading;
      assert.deepEqual([res.present, res.rest.toString('latin1'), peer.readableEnded], [false, sent, true], JSON.stringify(sent));
    }
  });

  test('timeouts: required rejects; accept with nothing (a server-first protocol) resolves absent; accept with a begun header rejects', async () => {
    const a = await pair();
    await assert.rejects(readProxyHeader(a.peer, { required: true, timeoutMs: 30 }), (e: unknown) => e instanceof ProxyProtocolError && e.reason === 'timeout');
    const b = await pair();
    const res = await readProxyHeader(b.peer, { required: false, timeoutMs: 30 });
    assert.deepEqual([res.present, res.addresses, res.rest.length], [false, null, 0]);
    const c = await pair();
    c.client.write('PRO'); // still possibly the client's own data
    const partial = readProxyHeader(c.peer, { required: false, timeoutMs: 100 });
    assert.equal((await partial).rest.toString('latin1'), 'PRO');
    const d = await pair();
    d.client.write('PROXY TCP4 1.2');
    await assert.rejects(readProxyHeader(d.peer, { required: false, timeoutMs: 100 }), (e: unknown) => e instanceof ProxyProtocolError && e.reason === 'timeout');
  });

  test('closed: an end within a begun header (or any end when required), a reset, an already closed socket', async () => {
    const a = await pair();
    const reading = readProxyHeader(a.peer, { required: false, timeoutMs: 10_000 });
    a.client.end('PROXY TCP4');
    await assert.rejects(reading, (e: unknown) => e instanceof ProxyProtocolError && e.reason === 'closed');
    const e = await pair();
    const reading3 = readProxyHeader(e.peer, { required: true, timeoutMs: 10_000 });
    e.client.end('PR');
    await assert.rejects(reading3, (err: unknown) => err instanceof ProxyProtocolError && err.reason === 'closed');
    const b = await pair();
    const reading2 = readProxyHeader(b.peer, { required: true, timeoutMs: 10_000 });
    b.client.resetAndDestroy();
    await assert.rejects(reading2, (e: unknown) => e instanceof ProxyProtocolError && e.reason === 'closed');
    const c = await pair();
    c.peer.destroy();
    await assert.rejects(readProxyHeader(c.peer, { required: true, timeoutMs: 10_000 }), (e: unknown) => e instanceof ProxyProtocolError && e.reason === 'closed');
  });
});
