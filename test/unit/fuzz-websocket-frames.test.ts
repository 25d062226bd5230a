// Property tests of the WebSocket frame scanner (docs/fuzzing.md; RFC 6455
// §5.2), which reads the frame headers of client bytes as they pass: a
// random stream of frames (any opcode, masked or not, 7/16/64-bit lengths,
// minimal or not) cut into random chunks gives the counts a reference
// decoder gives; the first frame over the limit is found at the same place
// whatever the chunking; random bytes never throw.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameScanner } from '../../src/http/websocket/frame-scanner.js';
import { fuzzRuns } from '../helpers/fuzz.js';

interface Frame {
  fin: boolean;
  rsv: number;
  opcode: number;
  mask: boolean;
  /** 7: the shortest encoding that fits; 16 or 64: that extended length even if a shorter one fits. */
  width: 7 | 16 | 64;
  payload: number;
}

const frame: fc.Arbitrary<Frame> = fc
  .record({
    fin: fc.boolean(),
    rsv: fc.nat({ max: 7 }),
    opcode: fc.nat({ max: 15 }),
    mask: fc.boolean(),
    width: fc.constantFrom(7, 16, 64) as fc.Arbitrary<7 | 16 | 64>,
    payload: fc.oneof(fc.nat({ max: 130 }), fc.nat({ max: 400 })),
  })
  .map((f) => (f.width === 7 && f.payload >= 126 ? { ...f, width: 16 as const } : f));

function header(f: Frame): Buffer {
  const first = (f.fin ? 0x80 : 0) | (f.rsv << 4) | f.opcode;
  const m = f.mask ? 0x80 : 0;
  let h: Buffer;
  if (f.width === 7) h = Buffer.from([first, m | f.payload]);
  else if (f.width === 16) {
    h = Buffer.from([first, m | 126, 0, 0]);
    h.writeUInt16BE(f.payload, 2);
  } else {
    h = Buffer.alloc(10);
    h[0] = first;
    h[1] = m | 127;
    h.writeBigUInt64BE(BigInt(f.payload), 2);
  }
  return f.mask ? Buffer.concat([h, Buffer.from([1, 2, 3, 4])]) : h;
}

/** The stream of frames and what a reference decoder counts in it under `maxPayload`. */
function reference(frames: Frame[], maxPayload: number) {
  const parts: Buffer[] = [];
  let at = 0;
  let counts = { frames: 0, messages: 0, controls: 0, closeSeen: false };
  /** The oversized frame: where its header starts and where its length field ends (exclusive). */
  let over: { start: number; lengthEnd: number; length: number } | null = null;
  for (const f of frames) {
    const h = header(f);
    if (over === null && f.payload > maxPayload) {
      over = { start: at, lengthEnd: at + (f.width === 7 ? 2 : f.width === 16 ? 4 : 10), length: f.payload };
    }
    if (over === null) {
      counts = {
        frames: counts.frames + 1,
        messages: counts.messages + (f.opcode < 8 && f.fin ? 1 : 0),
        controls: counts.controls + (f.opcode >= 8 ? 1 : 0),
        closeSeen: counts.closeSeen || f.opcode === 8,
      };
    }
    parts.push(h, Buffer.alloc(f.payload, 0xab));
    at += h.length + f.payload;
  }
  return { bytes: Buffer.concat(parts), counts, over };
}

/** Cuts `bytes` at the given points (mod its length). */
function chunks(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of [...points, bytes.length]) {
    if (p > from) out.push(bytes.subarray(from, p));
    from = Math.max(from, p);
  }
  return out;
}

describe('fuzz: WebSocket frame scanner', () => {
  it('random frames in random chunks: the reference counts, and the oversized frame found where it starts', () => {
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 12 }), fc.oneof(fc.constant(Number.POSITIVE_INFINITY), fc.nat({ max: 400 })), (frames, cuts, maxPayload) => {
        const ref = reference(frames, maxPayload);
        const scanner = new FrameScanner(maxPayload);
        let offset = 0;
        let stoppedAt: { chunkStart: number; result: number; boundary: boolean } | null = null;
        for (const c of chunks(ref.bytes, cuts)) {
          const r = scanner.push(c);
          if (stoppedAt !== null) assert.equal(r, 0, 'a stopped scanner answers 0');
          else if (r >= 0) stoppedAt = { chunkStart: offset, result: r, boundary: scanner.atBoundary };
          else assert.equal(r, -1);
          offset += c.length;
        }
        assert.equal(scanner.frames, ref.counts.frames);
        assert.equal(scanner.messages, ref.counts.messages);
        assert.equal(scanner.controls, ref.counts.controls);
        assert.equal(scanner.closeSeen, ref.counts.closeSeen);
        if (ref.over === null) {
          assert.equal(stoppedAt, null);
          assert.equal(scanner.oversized, -1);
          assert.equal(scanner.atBoundary, true);
          return;
        }
        assert.equal(scanner.oversized, ref.over.length);
        assert.ok(stoppedAt !== null, 'the oversized frame was reported');
        // Reported by the chunk holding the last byte of its length field.
        assert.ok(stoppedAt.chunkStart < ref.over.lengthEnd && ref.over.lengthEnd <= offset);
        if (ref.over.start >= stoppedAt.chunkStart) {
          assert.equal(stoppedAt.result, ref.over.start - stoppedAt.chunkStart);
          assert.equal(stoppedAt.boundary, true);
        } else {
          assert.equal(stoppedAt.result, 0);
          assert.equal(stoppedAt.boundary, false);
        }
      }),
      fuzzRuns(3000),
    );
  });

  it('random bytes in random chunks: never throws, and the counts do not depend on the chunking', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.array(fc.nat(), { maxLength: 12 }), fc.nat({ max: 1000 }), (raw, cuts, maxPayload) => {
        const bytes = Buffer.from(raw);
        const whole = new FrameScanner(maxPayload);
        whole.push(bytes);
        const pieces = new FrameScanner(maxPayload);
        for (const c of chunks(bytes, cuts)) pieces.push(c);
        for (const k of ['frames', 'messages', 'controls', 'closeSeen', 'oversized'] as const) assert.equal(pieces[k], whole[k], k);
      }),
      fuzzRuns(3000),
    );
  });
});
