/**
 * Reads WebSocket frame headers (RFC 6455 §5.2) in one direction of a
 * tunnel as the bytes pass, to enforce a frame size limit, to know where
 * frames start (so the gateway only ever injects a close frame between two
 * frames) and to count messages for the log.
 *
 *      0                   1                   2                   3
 *      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *     +-+-+-+-+-------+-+-------------+-------------------------------+
 *     |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
 *     |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
 *     |N|V|V|V|       |S|             |   (if payload len==126/127)   |
 *     | |1|2|3|       |K|             |                               |
 *     +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
 *     |     Extended payload length continued, if payload len == 127  |
 *     + - - - - - - - - - - - - - - - +-------------------------------+
 *     |                               |Masking-key, if MASK set to 1  |
 *     +-------------------------------+-------------------------------+
 *
 * Only the header bytes (2 to 14 per frame) are looked at, one by one, so a
 * header split across any number of chunks is read correctly; payloads are
 * skipped by length, never copied or unmasked. Extensions are not
 * interpreted (permessage-deflate only sets RSV1), and protocol rules the
 * endpoints enforce (masking, control frame sizes, fragmentation order) are
 * left to them.
 */
export class FrameScanner {
  /** Largest payload allowed; a larger frame stops the scan (see `push`). */
  readonly maxPayload: number;
  /** Frames whose header was read. */
  frames = 0;
  /** Data messages: frames with FIN set and a data or continuation opcode (RFC 6455 §5.4). */
  messages = 0;
  /** Control frames: close, ping, pong (opcodes 0x8-0xF). */
  controls = 0;
  /** A close frame's header was read: the sender started the closing handshake (RFC 6455 §5.5.1). */
  closeSeen = false;
  /** The payload length of the frame that broke the limit, or -1. */
  oversized = -1;

  /** Header bytes of the current frame read so far (0: between frames or in a payload). */
  private pos = 0;
  /** Full header length of the current frame, known once its second byte is read. */
  private headerLength = 2;
  /** Where the payload length ends in the header (2, 4 or 10). */
  private lengthEnd = 2;
  private fin = false;
  private opcode = 0;
  private length = 0;
  /** Payload bytes of the current frame still to skip. */
  private remaining = 0;
  /** The stream is unusable: a frame broke the limit after part of its header had gone through. */
  private broken = false;

  constructor(maxPayload = Number.POSITIVE_INFINITY) {
    this.maxPayload = maxPayload;
  }

  /** Between two frames: a frame of the gateway's own may be sent now without corrupting the stream. */
  get atBoundary(): boolean {
    return this.pos === 0 && this.remaining === 0 && !this.broken;
  }

  /**
   * Scans one chunk. Returns -1 when every frame header in it is within
   * the limit; otherwise the number of bytes of the chunk that precede the
   * oversized frame (they may be forwarded: they end the earlier frames).
   * When that frame's header started in this chunk, the stream up to that
   * offset ends on a frame boundary (`atBoundary` stays true); when it
   * started in an earlier chunk, part of it has already gone through and
   * `atBoundary` is false from then on. After a violation, the scanner
   * stays stopped: every later call returns 0.
   */
  push(chunk: Uint8Array): number {
    if (this.oversized >= 0) return 0;
    const n = chunk.length;
    let i = 0;
    /** Where the current frame's header starts in this chunk; -1: in an earlier chunk (or no header yet). */
    let start = -1;
    while (i < n) {
      if (this.remaining > 0) {
        const left = n - i;
        if (this.remaining >= left) {
          this.remaining -= left;
          return -1;
        }
        i += this.remaining;
        this.remaining = 0;
        continue;
      }
      const b = chunk[i]!;
      const pos = this.pos;
      if (pos === 0) {
        start = i;
        this.fin = (b & 0x80) !== 0;
        this.opcode = b & 0x0f;
        this.pos = 1;
        i++;
        continue;
      }
      if (pos === 1) {
        const len7 = b & 0x7f;
        const maskBytes = (b & 0x80) !== 0 ? 4 : 0;
        if (len7 < 126) {
          this.length = len7;
          this.lengthEnd = 2;
        } else {
          this.length = 0;
          this.lengthEnd = len7 === 126 ? 4 : 10;
        }
        this.headerLength = this.lengthEnd + maskBytes;
      } else if (pos < this.lengthEnd) {
        // Network byte order; a 64-bit length past 2^53 loses precision but is far over any limit.
        this.length = this.length * 256 + b;
      }
      this.pos = pos + 1;
      i++;
      if (this.pos === this.lengthEnd && this.length > this.maxPayload) {
        this.oversized = this.length;
        if (start >= 0) {
          // The whole header is in this chunk: nothing of it has gone through.
          this.pos = 0;
        } else {
          this.broken = true;
        }
        return start >= 0 ? start : 0;
      }
      if (this.pos === this.headerLength) this.endHeader();
    }
    return -1;
  }

  private endHeader(): void {
    this.pos = 0;
    this.frames++;
    const op = this.opcode;
    if (op >= 0x8) {
      this.controls++;
      if (op === 0x8) this.closeSeen = true;
    } else if (this.fin) {
      this.messages++;
    }
    this.remaining = this.length;
  }
}
