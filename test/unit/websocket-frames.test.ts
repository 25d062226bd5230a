import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameScanner } from '../../src/http/websocket/frame-scanner.js';
import { closeFrame, GOING_AWAY, MESSAGE_TOO_BIG } from '../../src/http/websocket/close-frame.js';

interface FrameSpec {
  fin?: boolean;
  opcode: number;
  length: number;
  masked?: boolean;
  rsv1?: boolean;
}

/** A complete frame (RFC 6455 §5.2) with a payload of `length` bytes (pattern-filled, never read by the scanner). */
function frame({ fin = true, opcode, length, masked = false, rsv1 = false }: FrameSpec): Buffer {
  const header: number[] = [(fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode];
  const mask = masked ? 0x80 : 0;
  if (length < 126) {
    header.push(mask | length);
  } else if (length < 65536) {
    header.push(mask | 126, length >> 8, length & 0xff);
  } else {
    header.push(mask | 127);
    const big = BigInt(length);
    for (let i = 7; i >= 0; i--) header.push(Number((big >> BigInt(i * 8)) & 0xffn));
  }
  if (masked) header.push(0x12, 0x34, 0x56, 0x78);
  const payload = Buffer.alloc(length, 0xa5);
  return Buffer.concat([Buffer.from(header), payload]);
}

/** Just the header of a frame claiming `length` payload bytes (for lengths too big to allocate). */
function headerOnly(length: bigint, masked = true, opcode = 0x2): Buffer {
  const h = [0x80 | opcode, (masked ? 0x80 : 0) | 127];
  for (let i = 7; i >= 0; i--) h.push(Number((length >> BigInt(i * 8)) & 0xffn));
  if (masked) h.push(1, 2, 3, 4);
  return Buffer.from(h);
}

function scanAll(scanner: FrameScanner, chunks: Buffer[]): number[] {
  return chunks.map((c) => scanner.push(c));
}

/** A stream of mixed frames: small, 16-bit and 64-bit lengths, masked and not, control frames, a fragmented message. */
function mixedStream(): { bytes: Buffer; frames: number; messages: number; controls: number } {
  const specs: FrameSpec[] = [
    { opcode: 0x1, length: 5, masked: true },
    { opcode: 0x2, length: 0 },
    { opcode: 0x9, length: 4, masked: true }, // ping
    { opcode: 0x1, length: 125 },
    { opcode: 0x2, length: 126, masked: true },
    { opcode: 0x2, length: 65535 },
    { opcode: 0x2, length: 65536, masked: true, rsv1: true },
    { fin: false, opcode: 0x1, length: 10, masked: true }, // fragmented: 3 frames, 1 message
    { opcode: 0xa, length: 0, masked: true }, // pong between fragments (§5.4)
    { fin: false, opcode: 0x0, length: 300, masked: true },
    { opcode: 0x0, length: 1, masked: true },
    { opcode: 0x8, length: 2, masked: true }, // close
  ];
  return {
    bytes: Buffer.concat(specs.map(frame)),
    frames: specs.length,
    messages: 7,
    controls: 3,
  };
}

describe('FrameScanner', () => {
  test('one small frame in one chunk', () => {
    const s = new FrameScanner(1000);
    assert.equal(s.atBoundary, true);
    assert.equal(s.push(frame({ opcode: 0x1, length: 5, masked: true })), -1);
    assert.equal(s.frames, 1);
    assert.equal(s.messages, 1);
    assert.equal(s.controls, 0);
    assert.equal(s.atBoundary, true);
    assert.equal(s.closeSeen, false);
  });

  test('7-bit, 16-bit and 64-bit payload lengths are skipped exactly', () => {
    for (const length of [0, 1, 125, 126, 127, 1000, 65535, 65536, 70_000, 1 << 20]) {
      for (const masked of [false, true]) {
        const s = new FrameScanner();
        // The frame, then a 1-byte-payload frame: the second is only found if the first's length was read right.
        const bytes = Buffer.concat([frame({ opcode: 0x2, length, masked }), frame({ opcode: 0x1, length: 1, masked })]);
        assert.equal(s.push(bytes), -1);
        assert.equal(s.frames, 2, `length ${length}, masked ${masked}`);
        assert.equal(s.messages, 2);
        assert.equal(s.atBoundary, true);
      }
    }
  });

  test('a mixed stream gives the same counts however it is chunked: whole, byte by byte, every two-way split', () => {
    const { bytes, frames, messages, controls } = mixedStream();
    const check = (chunks: Buffer[], what: string) => {
      const s = new FrameScanner(1 << 20);
      assert.deepEqual(
        scanAll(s, chunks).filter((r) => r !== -1),
        [],
        what,
      );
      assert.equal(s.frames, frames, what);
      assert.equal(s.messages, messages, what);
      assert.equal(s.controls, controls, what);
      assert.equal(s.closeSeen, true, what);
      assert.equal(s.atBoundary, true, what);
    };
    check([bytes], 'one chunk');
    const single: Buffer[] = [];
    for (let i = 0; i < bytes.length; i++) single.push(bytes.subarray(i, i + 1));
    check(single, 'byte by byte');
    // Every split point inside the headers region of the small frames, and a sample of the rest.
    for (let cut = 1; cut < bytes.length; cut += cut < 600 ? 1 : 997) {
      check([bytes.subarray(0, cut), bytes.subarray(cut)], `split at ${cut}`);
    }
  });

  test('random chunkings (deterministic seed) agree', () => {
    const { bytes, frames, messages } = mixedStream();
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    for (let round = 0; round < 200; round++) {
      const s = new FrameScanner(1 << 20);
      let i = 0;
      while (i < bytes.length) {
        const n = 1 + Math.floor(rand() * (rand() < 0.5 ? 20 : 5000));
        assert.equal(s.push(bytes.subarray(i, i + n)), -1);
        i += n;
      }
      assert.equal(s.frames, frames);
      assert.equal(s.messages, messages);
      assert.equal(s.atBoundary, true);
    }
  });

  test('atBoundary is false inside a header and inside a payload', () => {
    const s = new FrameScanner();
    const f = frame({ opcode: 0x2, length: 300, masked: true });
    s.push(f.subarray(0, 1));
    assert.equal(s.atBoundary, false, 'after the first header byte');
    s.push(f.subarray(1, 5));
    assert.equal(s.atBoundary, false, 'inside the extended length / mask');
    s.push(f.subarray(5, 100));
    assert.equal(s.atBoundary, false, 'inside the payload');
    s.push(f.subarray(100));
    assert.equal(s.atBoundary, true);
    assert.equal(s.frames, 1);
  });

  test('control frames are counted apart from messages; close is remembered', () => {
    const s = new FrameScanner(125);
    s.push(Buffer.concat([frame({ opcode: 0x9, length: 3 }), frame({ opcode: 0xa, length: 3 })]));
    assert.equal(s.controls, 2);
    assert.equal(s.messages, 0);
    assert.equal(s.closeSeen, false);
    s.push(frame({ opcode: 0x8, length: 2 }));
    assert.equal(s.controls, 3);
    assert.equal(s.closeSeen, true);
  });

  test('a fragmented message counts once, when its final frame arrives', () => {
    const s = new FrameScanner();
    s.push(frame({ fin: false, opcode: 0x2, length: 10 }));
    assert.equal(s.messages, 0);
    s.push(frame({ fin: false, opcode: 0x0, length: 10 }));
    assert.equal(s.messages, 0);
    s.push(frame({ fin: true, opcode: 0x0, length: 10 }));
    assert.equal(s.messages, 1);
    assert.equal(s.frames, 3);
  });

  test('a frame at the limit passes; one byte over is reported at its header offset, on a boundary', () => {
    const ok = new FrameScanner(1000);
    assert.equal(ok.push(frame({ opcode: 0x2, length: 1000, masked: true })), -1);
    assert.equal(ok.oversized, -1);

    const s = new FrameScanner(1000);
    const first = frame({ opcode: 0x1, length: 20, masked: true });
    const chunk = Buffer.concat([first, frame({ opcode: 0x2, length: 1001, masked: true })]);
    assert.equal(s.push(chunk), first.length);
    assert.equal(s.oversized, 1001);
    assert.equal(s.atBoundary, true, 'the bytes before the offset end on a frame boundary');
    assert.equal(s.frames, 1, 'the oversized frame is not counted');
    assert.equal(s.push(frame({ opcode: 0x1, length: 1 })), 0, 'stopped after a violation');
  });

  test('an oversized 64-bit length is caught before its mask key and payload arrive', () => {
    for (const length of [70_000n, 1n << 32n, (1n << 63n) - 1n, 1n << 63n]) {
      const s = new FrameScanner(65_536);
      const h = headerOnly(length);
      // Only the first 10 bytes (no mask key yet).
      assert.equal(s.push(h.subarray(0, 10)), 0, `length ${length}`);
      assert.ok(s.oversized > 65_536);
      assert.equal(s.atBoundary, true);
    }
  });

  test('an oversized 16-bit length is caught', () => {
    const s = new FrameScanner(200);
    assert.equal(s.push(frame({ opcode: 0x1, length: 201 })), 0);
    assert.equal(s.oversized, 201);
  });

  test('an oversized frame whose header started in an earlier chunk leaves the stream off a boundary', () => {
    const s = new FrameScanner(1000);
    const small = frame({ opcode: 0x1, length: 3, masked: true });
    const big = frame({ opcode: 0x2, length: 5000, masked: true });
    // The small frame and the first byte of the big header go through first.
    assert.equal(s.push(Buffer.concat([small, big.subarray(0, 1)])), -1);
    assert.equal(s.push(big.subarray(1)), 0);
    assert.equal(s.oversized, 5000);
    assert.equal(s.atBoundary, false, 'part of its header already went through');
  });

  test('without a limit nothing is ever oversized', () => {
    const s = new FrameScanner();
    assert.equal(s.push(headerOnly(1n << 40n)), -1);
    assert.equal(s.frames, 1);
    assert.equal(s.atBoundary, false);
  });
});

describe('closeFrame', () => {
  test('server-to-client close frames are unmasked: FIN + opcode 8, code, reason', () => {
    const f = closeFrame(GOING_AWAY, 'bye', false);
    assert.equal(f[0], 0x88);
    assert.equal(f[1], 5);
    assert.equal(f.readUInt16BE(2), 1001);
    assert.equal(f.subarray(4).toString(), 'bye');
    const s = new FrameScanner();
    s.push(f);
    assert.equal(s.closeSeen, true);
    assert.equal(s.atBoundary, true);
  });

  test('client-to-server close frames are masked with a fresh key', () => {
    const a = closeFrame(MESSAGE_TOO_BIG, 'too big', true);
    const b = closeFrame(MESSAGE_TOO_BIG, 'too big', true);
    assert.equal(a[0], 0x88);
    assert.equal(a[1], 0x80 | 9);
    const key = a.subarray(2, 6);
    const payload = Buffer.from(a.subarray(6).map((byte, i) => byte ^ key[i & 3]!));
    assert.equal(payload.readUInt16BE(0), 1009);
    assert.equal(payload.subarray(2).toString(), 'too big');
    assert.notDeepEqual(a.subarray(2, 6), b.subarray(2, 6), 'two frames, two keys');
  });

  test('the reason is cut to fit a control frame (125 bytes)', () => {
    const f = closeFrame(GOING_AWAY, 'x'.repeat(500), false);
    assert.equal(f[1], 125);
    assert.equal(f.length, 127);
  });
});
