// Datagram framing over a byte stream (2-byte big-endian length +
// payload): the wire format, the size limit, zero-copy views for whole
// frames, and properties — any list of datagrams survives any chunking
// (1-byte chunks, several frames and a partial one per chunk); arbitrary
// bytes never throw and never make the decoder hold more than one partial
// frame; a decoder's output depends only on the bytes, not the chunking.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DatagramDecoder, encodeDatagram, MAX_DATAGRAM_LENGTH } from '../../src/tunnel/datagram-framing.js';
import { fuzzRuns } from '../helpers/fuzz.js';

/** Cuts `bytes` at the given offsets (sorted, deduplicated, taken modulo the length + 1). */
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

function decodeAll(chunks: Buffer[]): { datagrams: Buffer[]; decoder: DatagramDecoder; maxBuffered: number } {
  const decoder = new DatagramDecoder();
  const datagrams: Buffer[] = [];
  let maxBuffered = 0;
  for (const c of chunks) {
    datagrams.push(...decoder.push(c));
    maxBuffered = Math.max(maxBuffered, decoder.buffered);
  }
  return { datagrams, decoder, maxBuffered };
}

const wire = (payloads: Buffer[]) => Buffer.concat(payloads.flatMap(encodeDatagram));

describe('encodeDatagram', () => {
  test('a 2-byte big-endian length, then the payload itself (not a copy)', () => {
    const payload = Buffer.from('hello');
    const [header, body] = encodeDatagram(payload);
    assert.deepEqual(header, Buffer.from([0, 5]));
    assert.equal(body, payload, 'the payload buffer is passed through');
    assert.deepEqual(encodeDatagram(Buffer.alloc(0))[0], Buffer.from([0, 0]));
    assert.deepEqual(encodeDatagram(Buffer.alloc(0x1234))[0], Buffer.from([0x12, 0x34]));
    assert.deepEqual(encodeDatagram(Buffer.alloc(MAX_DATAGRAM_LENGTH))[0], Buffer.from([0xff, 0xff]));
  });

  test('a payload over 65535 bytes is refused with a RangeError', () => {
    assert.throws(() => encodeDatagram(Buffer.alloc(65536)), RangeError);
  });
});

describe('DatagramDecoder', () => {
  test('whole frames inside one chunk are views of it; a frame split across chunks is reassembled', () => {
    const chunk = wire([Buffer.from('ab'), Buffer.alloc(0), Buffer.from('cde')]);
    const d = new DatagramDecoder();
    const out = d.push(chunk);
    assert.deepEqual(out.map(String), ['ab', '', 'cde']);
    assert.equal(out[0]!.buffer, chunk.buffer, 'no copy for a whole frame');
    assert.equal(d.atBoundary, true);

    const big = Buffer.alloc(1000, 7);
    const bytes = wire([big, Buffer.from('z')]);
    assert.deepEqual(d.push(bytes.subarray(0, 1)), []);
    assert.equal(d.buffered, 1);
    assert.deepEqual(d.push(bytes.subarray(1, 500)), []);
    assert.equal(d.atBoundary, false);
    const rest = d.push(bytes.subarray(500));
    assert.equal(rest.length, 2);
    assert.deepEqual(rest[0], big);
    assert.equal(String(rest[1]), 'z');
    assert.equal(d.buffered, 0);
  });

  test('a zero-length frame completed by its second header byte', () => {
    const d = new DatagramDecoder();
    assert.deepEqual(d.push(Buffer.from([0])), []);
    assert.deepEqual(d.push(Buffer.alloc(0)), [], 'an empty chunk changes nothing');
    assert.equal(d.buffered, 1);
    const out = d.push(Buffer.from([0]));
    assert.equal(out.length, 1);
    assert.equal(out[0]!.length, 0);
    assert.equal(d.atBoundary, true);
  });

  test('a 65535-byte datagram fed one byte at a time', () => {
    const payload = Buffer.alloc(MAX_DATAGRAM_LENGTH);
    for (let i = 0; i < payload.length; i++) payload[i] = i * 31;
    const bytes = wire([payload]);
    const d = new DatagramDecoder();
    let got: Buffer[] = [];
    for (let i = 0; i < bytes.length; i++) {
      got = got.concat(d.push(bytes.subarray(i, i + 1)));
      assert.ok(d.buffered <= MAX_DATAGRAM_LENGTH + 2);
    }
    assert.equal(got.length, 1);
    assert.ok(got[0]!.equals(payload));
  });

  const payloads = fc.array(
    fc.oneof({ weight: 4, arbitrary: fc.uint8Array({ maxLength: 64 }) }, { weight: 1, arbitrary: fc.uint8Array({ minLength: 200, maxLength: 3000 }) }).map((a) => Buffer.from(a)),
    { maxLength: 20 },
  );

  test('property: any datagram list survives any chunking, ending at a boundary', () => {
    fc.assert(
      fc.property(payloads, fc.array(fc.nat(), { maxLength: 30 }), (list, cuts) => {
        const { datagrams, decoder } = decodeAll(split(wire(list), cuts));
        assert.deepEqual(datagrams, list);
        assert.equal(decoder.atBoundary, true);
        assert.equal(decoder.buffered, 0);
      }),
      fuzzRuns(2000),
    );
  });

  test('property: byte-by-byte decoding gives the same datagrams', () => {
    fc.assert(
      fc.property(payloads, (list) => {
        const bytes = wire(list);
        const chunks = Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
        assert.deepEqual(decodeAll(chunks).datagrams, list);
      }),
      fuzzRuns(300),
    );
  });

  test('property: garbage never throws, holds at most one partial frame, and decodes the same under any chunking', () => {
    const garbage = fc.oneof(
      fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
      // Large lengths: partial frames near the 65535 limit.
      fc.tuple(fc.integer({ min: 60000, max: 65535 }), fc.uint8Array({ maxLength: 200 })).map(([n, rest]) => {
        const h = Buffer.alloc(2);
        h.writeUInt16BE(n, 0);
        return Buffer.concat([h, Buffer.from(rest)]);
      }),
    );
    fc.assert(
      fc.property(garbage, fc.array(fc.nat(), { maxLength: 20 }), (bytes, cuts) => {
        const whole = decodeAll([bytes]);
        const chunked = decodeAll(split(bytes, cuts));
        assert.deepEqual(chunked.datagrams, whole.datagrams);
        assert.equal(chunked.decoder.buffered, whole.decoder.buffered);
        assert.equal(chunked.decoder.atBoundary, whole.decoder.atBoundary);
        assert.ok(chunked.maxBuffered <= MAX_DATAGRAM_LENGTH + 2, `held ${chunked.maxBuffered} bytes`);
        // Whatever was decoded plus what is held accounts for every byte.
        const decodedBytes = whole.datagrams.reduce((n, d) => n + 2 + d.length, 0);
        assert.equal(decodedBytes + whole.decoder.buffered, bytes.length);
      }),
      fuzzRuns(2000),
    );
  });
});
