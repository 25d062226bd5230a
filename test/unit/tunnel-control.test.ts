// The tunnel's control stream as the gateway reads it from an agent (untrusted):
// NDJSON lines (NdjsonReader) and the services list (readAnnouncements).
// Properties: any chunking of valid lines yields the same objects; arbitrary
// bytes never throw anything but the reader's own RangeError/SyntaxError, and
// a reader never holds more than its line cap; an over-long line is refused as
// soon as the cap is crossed; any JSON value as a services list yields only
// well-formed announcements, within the cap, and a refusal for every entry
// that is not one.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { NdjsonReader, ndjsonLine } from '../../src/tunnel/ndjson.js';
import { readAnnouncements } from '../../src/tunnel/announcement.js';
import { SERVICE_CODE } from '../../src/config/schemas/tunnel.js';
import { fuzzRuns } from '../helpers/fuzz.js';

function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of at) {
    out.push(bytes.subarray(prev, c));
    prev = c;
  }
  out.push(bytes.subarray(prev));
  return out;
}

describe('NdjsonReader', () => {
  test('reads objects across any chunking, skips blank lines, accepts CRLF', () => {
    fc.assert(
      fc.property(fc.array(fc.dictionary(fc.string(), fc.jsonValue()), { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), fc.boolean(), (objects, cuts, crlf) => {
        const text = objects.map((o) => ndjsonLine(o).replace(/\n$/, crlf ? '\r\n' : '\n')).join('') + '\n';
        const reader = new NdjsonReader(64 * 1024);
        const got: unknown[] = [];
        for (const c of split(Buffer.from(text), cuts)) got.push(...reader.push(c));
        assert.deepEqual(got, JSON.parse(JSON.stringify(objects)));
      }),
      fuzzRuns(300),
    );
  });

  test('arbitrary bytes: only its own errors, once, and never more than the cap held', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.array(fc.nat(), { maxLength: 10 }), (bytes, cuts) => {
        const reader = new NdjsonReader(128);
        let threw = 0;
        for (const c of split(Buffer.from(bytes), cuts)) {
          try {
            for (const o of reader.push(c)) assert.ok(o !== null && typeof o === 'object' && !Array.isArray(o));
          } catch (err) {
            assert.ok(err instanceof RangeError || err instanceof SyntaxError, String(err));
            threw++;
          }
          assert.ok((reader as unknown as { size: number }).size <= 128);
        }
        assert.ok(threw <= 1, 'a failed reader stays failed and silent');
      }),
      fuzzRuns(500),
    );
  });

  test('an over-long line is refused at the chunk that crosses the cap', () => {
    const reader = new NdjsonReader(100);
    assert.deepEqual(reader.push(Buffer.alloc(60, 0x61)), []);
    assert.throws(() => reader.push(Buffer.alloc(60, 0x61)), RangeError);
    assert.deepEqual(reader.push(Buffer.from('{}\n')), [], 'nothing after a failure');
  });

  test('a line that is JSON but not an object is refused', () => {
    assert.throws(() => new NdjsonReader(100).push(Buffer.from('[1,2]\n')), SyntaxError);
    assert.throws(() => new NdjsonReader(100).push(Buffer.from('null\n')), SyntaxError);
  });
});

describe('readAnnouncements', () => {
  test('any JSON value: well-formed announcements within the cap, every other entry refused with a reason', () => {
    const entry = fc.oneof(
      fc.jsonValue(),
      fc.record(
        {
          code: fc.oneof(fc.stringMatching(/^[A-Za-z0-9_.-]{1,63}$/), fc.string()),
          type: fc.oneof(fc.constantFrom('tcp', 'http', 'grpc', 'udp'), fc.string()),
          hosts: fc.oneof(fc.array(fc.stringMatching(/^[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,2}$/), { maxLength: 20 }), fc.jsonValue()),
          remotePort: fc.oneof(fc.integer({ min: -5, max: 70_000 }), fc.jsonValue()),
          up: fc.jsonValue(),
        },
        { requiredKeys: [] },
      ),
    );
    fc.assert(
      fc.property(fc.oneof(fc.array(entry, { maxLength: 30 }), fc.jsonValue()), fc.integer({ min: 1, max: 10 }), (raw, max) => {
        const { services, refused } = readAnnouncements(raw, max);
        assert.ok(services.length <= max);
        for (const s of services) {
          assert.match(s.code, SERVICE_CODE);
          assert.ok(['tcp', 'http', 'grpc', 'udp'].includes(s.type));
          assert.ok(Array.isArray(s.hosts) && s.hosts.length <= 16);
          assert.ok(s.remotePort === undefined || (Number.isInteger(s.remotePort) && s.remotePort >= 1 && s.remotePort <= 65_535));
          assert.equal(typeof s.up, 'boolean');
        }
        assert.equal(new Set(services.map((s) => s.code)).size, services.length, 'codes are unique');
        for (const r of refused) assert.ok(typeof r.reason === 'string' && r.reason.length > 0);
        if (Array.isArray(raw)) assert.equal(services.length + refused.length, raw.length, 'every entry is either registered or refused');
      }),
      fuzzRuns(500),
    );
  });
});
