import assert from 'node:assert/strict';
import fc from 'fast-check';
import { describe, it } from 'node:test';
import { SERVICE_CODE } from '../../src/config/schemas/tunnel.js';
import { readAnnouncements } from '../../src/tunnel/announcement.js';
import { NdjsonReader, ndjsonLine } from '../../src/tunnel/ndjson.js';
import { fuzzRuns } from '../helpers/fuzz.js';

/** Cuts `buf` at the given fractions into chunks (empty chunks included). */
function chunked(buf: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => Math.floor(c * buf.length)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const i of at) {
    out.push(buf.subarray(prev, i));
    prev = i;
  }
  out.push(buf.subarray(prev));
  return out;
}

const object = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 });

describe('NdjsonReader (the control stream) under property tests', () => {
  it('reads back any objects written as lines, whatever the chunking, with LF or CRLF', () => {
    fc.assert(
      fc.property(fc.array(object, { maxLength: 12 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 20 }), fc.boolean(), (objects, cuts, crlf) => {
        const text = objects.map((o) => (crlf ? ndjsonLine(o).replace(/\n$/, '\r\n') : ndjsonLine(o))).join('');
        const reader = new NdjsonReader(64 * 1024);
        const got: unknown[] = [];
        for (const c of chunked(Buffer.from(text), cuts)) got.push(...reader.push(c));
        assert.deepEqual(got, JSON.parse(JSON.stringify(objects)));
      }),
      fuzzRuns(2000),
    );
  });

  it('fails once with a RangeError when a line passes the cap, then reads nothing more', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 256 }), fc.integer({ min: 1, max: 300 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 10 }), (cap, extra, cuts) => {
        const long = Buffer.alloc(cap + extra, 0x61);
        const reader = new NdjsonReader(cap);
        let threw = 0;
        for (const c of chunked(Buffer.concat([long, Buffer.from('\n{"a":1}\n')]), cuts)) {
          try {
            assert.deepEqual(reader.push(c), []);
          } catch (err) {
            assert.ok(err instanceof RangeError);
            threw++;
          }
        }
        assert.equal(threw, 1);
        assert.deepEqual(reader.push(Buffer.from('{"b":2}\n')), []);
      }),
      fuzzRuns(2000),
    );
  });

  it('random bytes: only objects, a RangeError or a SyntaxError, and nothing after the first error', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.constant(new Uint8Array([10]))), { maxLength: 30 }), (chunks) => {
        const reader = new NdjsonReader(128);
        let failed = false;
        for (const c of chunks) {
          try {
            const got = reader.push(Buffer.from(c));
            if (failed) assert.deepEqual(got, []);
            for (const o of got) assert.ok(o !== null && typeof o === 'object' && !Array.isArray(o));
          } catch (err) {
            assert.ok(err instanceof RangeError || err instanceof SyntaxError, String(err));
            assert.equal(failed, false, 'an error is thrown once');
            failed = true;
          }
        }
      }),
      fuzzRuns(2000),
    );
  });
});

describe('readAnnouncements (an agent\'s services message) under property tests', () => {
  const entry = fc.oneof(
    fc.record(
      {
        code: fc.oneof(fc.constantFrom('crm', 'ssh', 'a', 'x'.repeat(63), 'x'.repeat(64), '', 'bad code', '../etc'), fc.string({ maxLength: 70 }), fc.jsonValue()),
        type: fc.oneof(fc.constantFrom('tcp', 'http', 'grpc', 'udp', 'ftp'), fc.jsonValue()),
        hosts: fc.oneof(fc.constant(undefined), fc.array(fc.oneof(fc.domain(), fc.string({ maxLength: 20 })), { maxLength: 20 }), fc.jsonValue()),
        remotePort: fc.oneof(fc.constant(undefined), fc.integer({ min: -2, max: 70_000 }), fc.double(), fc.jsonValue()),
        up: fc.jsonValue(),
      },
      { requiredKeys: [] },
    ),
    fc.jsonValue(),
  );

  it('never throws; one verdict per entry; accepted services are well formed, unique and at most max', () => {
    fc.assert(
      fc.property(fc.oneof(fc.array(entry, { maxLength: 40 }), fc.jsonValue()), fc.integer({ min: 1, max: 16 }), (raw, max) => {
        const { services, refused } = readAnnouncements(raw, max);
        if (!Array.isArray(raw)) {
          assert.deepEqual(services, []);
          assert.deepEqual(refused, [{ code: '?', reason: 'services must be a list' }]);
          return;
        }
        assert.equal(services.length + refused.length, raw.length);
        assert.ok(services.length <= max);
        assert.equal(new Set(services.map((s) => s.code)).size, services.length);
        for (const s of services) {
          assert.match(s.code, SERVICE_CODE);
          assert.ok(['tcp', 'http', 'grpc', 'udp'].includes(s.type));
          assert.ok(Array.isArray(s.hosts) && s.hosts.length <= 16 && s.hosts.every((h) => typeof h === 'string' && h.length <= 253));
          if (s.remotePort !== undefined) assert.ok(Number.isInteger(s.remotePort) && s.remotePort >= 1 && s.remotePort <= 65_535);
          assert.equal(typeof s.up, 'boolean');
        }
        for (const r of refused) {
          assert.ok(typeof r.code === 'string' && r.code.length >= 1 && r.code.length <= 63);
          assert.ok(typeof r.reason === 'string' && r.reason.length > 0);
        }
      }),
      fuzzRuns(2000),
    );
  });
});
