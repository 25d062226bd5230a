// Property tests of the PROXY protocol parser (docs/fuzzing.md; HAProxy
// proxy-protocol.txt v1 §2.1, v2 §2.2): encode → parse round trips for v1
// and v2, IPv4, IPv6 and mixed ends, v2 with TLVs; random and mutated
// bytes never throw and get one of the four defined verdicts; fed in
// chunks split anywhere, the first verdict that is not `incomplete` is the
// verdict on the whole input.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { encodeProxyHeader, V2_SIGNATURE, type ProxiedAddresses } from '../../src/l4/proxy-protocol/encode.js';
import { parseProxyHeader, V1_MAX_LENGTH, V2_MAX_TLV_BYTES, type ParseResult } from '../../src/l4/proxy-protocol/parse.js';
import { fuzzRuns } from '../helpers/fuzz.js';

const ip = fc.oneof(fc.ipV4(), fc.ipV6(), fc.ipV4().map((a) => `::ffff:${a}`));
const port = fc.integer({ min: 0, max: 65535 });
const ends: fc.Arbitrary<ProxiedAddresses> = fc.record({ sourceAddress: ip, sourcePort: port, destinationAddress: ip, destinationPort: port });
const clientData = fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b));

/** An address as the parser spells it: IPv4-mapped IPv6 as IPv4, IPv6 in RFC 5952 form. */
function normal(text: string): string {
  const a = ipaddr.parse(text);
  if (a.kind() === 'ipv4') return a.toString();
  const v6 = a as ipaddr.IPv6;
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address().toString() : v6.toRFC5952String();
}

const KINDS = new Set(['incomplete', 'not-proxy', 'malformed', 'header']);

/** parseProxyHeader must answer, not throw, with one of its four kinds; a header never claims more bytes than given. */
function verdict(buf: Buffer): ParseResult {
  let r: ParseResult;
  try {
    r = parseProxyHeader(buf);
  } catch (err) {
    throw new Error(`parseProxyHeader threw on ${buf.toString('hex')}: ${String(err)}`, { cause: err });
  }
  assert.ok(KINDS.has(r.kind), r.kind);
  if (r.kind === 'header') assert.ok(r.header.consumed > 0 && r.header.consumed <= buf.length);
  return r;
}

/** What a reader sees feeding `buf` in pieces cut at `cuts`: the first verdict that is not `incomplete`. */
function chunked(buf: Buffer, cuts: number[]): ParseResult {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b).concat(buf.length);
  for (const end of points) {
    const r = verdict(buf.subarray(0, end));
    if (r.kind !== 'incomplete') return r;
  }
  return { kind: 'incomplete' };
}

function tlv(type: number, value: Uint8Array): Buffer {
  const h = Buffer.alloc(3);
  h[0] = type;
  h.writeUInt16BE(value.length, 1);
  return Buffer.concat([h, value]);
}

/** A v2 PROXY header with TLVs appended after the address block (length adjusted). */
function withTlvs(header: Buffer, tlvs: Buffer[]): Buffer {
  const out = Buffer.concat([header, ...tlvs]);
  out.writeUInt16BE(header.readUInt16BE(14) + tlvs.reduce((n, t) => n + t.length, 0), 14);
  return out;
}

/** Mostly near-headers: signatures, `PROXY ` lines and their pieces, then random bytes. */
const hostile = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
  fc.tuple(fc.constantFrom(Buffer.from('PROXY '), Buffer.from('PROXY TCP4 '), Buffer.from('PROXY TCP6 '), Buffer.from('PROXY UNKNOWN'), V2_SIGNATURE), fc.uint8Array({ maxLength: 200 })).map(([a, b]) => Buffer.concat([a, b])),
  fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ maxLength: 300 })).map(([fixed, body]) => Buffer.concat([V2_SIGNATURE, fixed, body])),
  fc.string({ unit: fc.constantFrom(...'PROXY TCP46UNKNOW0123456789.:abcdef \r\n'.split('')), maxLength: 120 }).map((s) => Buffer.from(`PROXY ${s}`, 'latin1')),
);

describe('fuzz: PROXY protocol round trips', () => {
  it('v1 and v2: parse(encode(addresses) ‖ data) gives the addresses (normalised) and consumes exactly the header', () => {
    fc.assert(
      fc.property(ends, fc.constantFrom('v1', 'v2') as fc.Arbitrary<'v1' | 'v2'>, clientData, (a, version, data) => {
        const header = encodeProxyHeader(version, a);
        const r = verdict(Buffer.concat([header, data]));
        assert.equal(r.kind, 'header', JSON.stringify(r));
        if (r.kind !== 'header') return;
        assert.equal(r.header.version, version === 'v1' ? 1 : 2);
        assert.equal(r.header.command, 'PROXY');
        assert.equal(r.header.consumed, header.length);
        assert.deepEqual(r.header.addresses, {
          sourceAddress: normal(a.sourceAddress),
          sourcePort: a.sourcePort,
          destinationAddress: normal(a.destinationAddress),
          destinationPort: a.destinationPort,
        });
        if (version === 'v1') assert.ok(header.length <= V1_MAX_LENGTH);
      }),
      fuzzRuns(3000),
    );
  });

  it('ends that are not addresses, or ports out of range: UNKNOWN (v1) / LOCAL (v2), read as "use the connection\'s own"', () => {
    const notIp = fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('10', '1.2.3', '01.2.3.4', 'localhost', '::1 ')).filter((s) => isIP(s) === 0);
    const badPort = fc.oneof(fc.integer({ min: 65536 }), fc.integer({ max: -1 }), fc.double({ noInteger: true }));
    fc.assert(
      fc.property(ends, notIp, badPort, fc.boolean(), fc.constantFrom('v1', 'v2') as fc.Arbitrary<'v1' | 'v2'>, (a, s, p, which, version) => {
        const header = encodeProxyHeader(version, which ? { ...a, sourceAddress: s } : { ...a, destinationPort: p });
        const r = verdict(header);
        assert.equal(r.kind, 'header');
        if (r.kind !== 'header') return;
        assert.equal(r.header.consumed, header.length);
        assert.equal(r.header.addresses, null);
        assert.equal(r.header.command, version === 'v1' ? 'PROXY' : 'LOCAL');
      }),
      fuzzRuns(2000),
    );
  });

  it('v2 with TLVs: the same addresses, and consumed covers the TLVs; a TLV chain that overruns is malformed', () => {
    const tlvs = fc.array(fc.tuple(fc.nat({ max: 255 }), fc.uint8Array({ maxLength: 300 })).map(([t, v]) => tlv(t, v)), { maxLength: 6 });
    fc.assert(
      fc.property(ends, tlvs, clientData, fc.integer({ min: 1, max: 3 }), (a, list, data, cut) => {
        const header = withTlvs(encodeProxyHeader('v2', a), list);
        const tlvBytes = list.reduce((n, t) => n + t.length, 0);
        const r = verdict(Buffer.concat([header, data]));
        if (tlvBytes > V2_MAX_TLV_BYTES) {
          assert.equal(r.kind, 'malformed');
          return;
        }
        assert.equal(r.kind, 'header', JSON.stringify(r));
        if (r.kind !== 'header') return;
        assert.equal(r.header.consumed, header.length);
        assert.equal(r.header.addresses?.sourcePort, a.sourcePort);
        if (list.length > 0) {
          // The header's length now ends inside the last TLV (or its 3-byte head): never a header.
          const short = Buffer.from(header);
          short.writeUInt16BE(header.readUInt16BE(14) - Math.min(cut, list[list.length - 1]!.length - 1), 14);
          assert.equal(verdict(Buffer.concat([short, data])).kind, 'malformed');
        }
      }),
      fuzzRuns(2000),
    );
  });
});

describe('fuzz: PROXY protocol hostile input', () => {
  it('random and near-header bytes: never throws, one of the four verdicts', () => {
    fc.assert(fc.property(hostile, (b) => void verdict(b)), fuzzRuns(5000));
  });

  it('mutated real headers: never throws; a verdict is never `not-proxy` once the whole signature is intact', () => {
    fc.assert(
      fc.property(ends, fc.constantFrom('v1', 'v2') as fc.Arbitrary<'v1' | 'v2'>, fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 4 }), (a, version, edits) => {
        const b = Buffer.from(encodeProxyHeader(version, a));
        for (const [at, byte] of edits) b[at % b.length] = byte;
        const r = verdict(b);
        const prefix = version === 'v1' ? Buffer.from('PROXY ') : V2_SIGNATURE;
        if (b.subarray(0, prefix.length).equals(prefix)) assert.notEqual(r.kind, 'not-proxy');
      }),
      fuzzRuns(5000),
    );
  });

  it('fed in chunks cut anywhere: the first verdict that is not `incomplete` equals the verdict on the whole', () => {
    const input = fc.oneof(
      fc.tuple(ends, fc.constantFrom('v1', 'v2') as fc.Arbitrary<'v1' | 'v2'>, clientData).map(([a, v, d]) => Buffer.concat([encodeProxyHeader(v, a), d])),
      hostile,
    );
    fc.assert(
      fc.property(input, fc.array(fc.nat(), { maxLength: 8 }), (b, cuts) => {
        const whole = verdict(b);
        const pieces = chunked(b, cuts);
        if (whole.kind === 'malformed') assert.equal(pieces.kind, 'malformed');
        else assert.deepEqual(pieces, whole);
      }),
      fuzzRuns(3000),
    );
  });

  it('every split point of a real header (and of a header with TLVs) gives the one-chunk verdict', () => {
    fc.assert(
      fc.property(ends, fc.constantFrom('v1', 'v2') as fc.Arbitrary<'v1' | 'v2'>, clientData, fc.uint8Array({ maxLength: 40 }), (a, v, data, tlvValue) => {
        const header = v === 'v2' ? withTlvs(encodeProxyHeader('v2', a), [tlv(0x04, tlvValue)]) : encodeProxyHeader('v1', a);
        const b = Buffer.concat([header, data]);
        const whole = verdict(b);
        for (let k = 0; k <= b.length; k++) assert.deepEqual(chunked(b, [k]), whole, `split at ${k}`);
      }),
      fuzzRuns(500),
    );
  });
});
