/**
 * Datagrams over a byte stream (a tunnel data stream of a `type: udp`
 * service; tunnel spec, "Data streams"): each datagram is a 2-byte
 * big-endian length followed by that many payload bytes. Lengths 0-65535;
 * a zero-length datagram is valid (UDP allows it, RFC 768).
 *
 * Every byte sequence is a valid prefix of a framed stream, so decoding
 * never fails; a stream that ends in the middle of a frame is truncated
 * (`DatagramDecoder.atBoundary` is false), which the caller reports.
 */

/** Bytes of the length prefix. */
export const DATAGRAM_HEADER_LENGTH = 2;
/** Largest payload a frame can carry. */
export const MAX_DATAGRAM_LENGTH = 0xffff;

/**
 * The frame of one datagram, as two buffers to write in order (writev):
 * a fresh 2-byte header and `payload` itself, not copied. Throws a
 * RangeError for a payload over 65535 bytes.
 */
export function encodeDatagram(payload: Buffer): Buffer[] {
  if (payload.length > MAX_DATAGRAM_LENGTH) throw new RangeError(`a datagram is at most ${MAX_DATAGRAM_LENGTH} bytes, got ${payload.length}`);
  const header = Buffer.allocUnsafe(DATAGRAM_HEADER_LENGTH);
  header.writeUInt16BE(payload.length, 0);
  return [header, payload];
}

/**
 * Splits a byte stream back into datagrams, for any chunking of the
 * stream.
 *
 * Contract of `push(chunk)`: returns the datagrams completed by `chunk`,
 * in order. A datagram lying whole inside `chunk` is a view of it (not a
 * copy; it shares `chunk`'s memory, so the caller must not reuse the chunk
 * while the datagram is in use). Only a datagram split across chunks is
 * copied, once, into a buffer of its exact size. Between pushes the
 * decoder holds at most one partial frame: a 1-byte header, or one
 * payload buffer of at most 65535 bytes (`buffered` ≤ 65537 bytes in all),
 * and no reference to any chunk.
 */
export class DatagramDecoder {
  /** First byte of a header split across chunks, or -1. */
  #headerByte = -1;
  /** The datagram being reassembled (its exact size), or null. */
  #partial: Buffer | null = null;
  /** Bytes of #partial filled so far. */
  #filled = 0;

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let at = 0;
    const end = chunk.length;
    if (this.#partial !== null) {
      const want = this.#partial.length - this.#filled;
      const take = Math.min(want, end);
      chunk.copy(this.#partial, this.#filled, 0, take);
      this.#filled += take;
      at = take;
      if (this.#filled < this.#partial.length) return out;
      out.push(this.#partial);
      this.#partial = null;
      this.#filled = 0;
    } else if (this.#headerByte >= 0 && end > 0) {
      const length = (this.#headerByte << 8) | chunk[0]!;
      this.#headerByte = -1;
      at = this.#payload(chunk, 1, length, out);
    }
    while (at < end) {
      if (end - at < DATAGRAM_HEADER_LENGTH) {
        this.#headerByte = chunk[at]!;
        break;
      }
      const length = chunk.readUInt16BE(at);
      at = this.#payload(chunk, at + DATAGRAM_HEADER_LENGTH, length, out);
    }
    return out;
  }

  /** Takes a payload of `length` starting at `at`: whole (a view) or the start of a partial. Returns where the next frame starts. */
  #payload(chunk: Buffer, at: number, length: number, out: Buffer[]): number {
    if (chunk.length - at >= length) {
      out.push(chunk.subarray(at, at + length));
      return at + length;
    }
    const partial = Buffer.allocUnsafe(length);
    this.#filled = chunk.copy(partial, 0, at);
    this.#partial = partial;
    return chunk.length;
  }

  /** Bytes held for the frame in progress: 0 at a frame boundary, at most 65537. */
  get buffered(): number {
    if (this.#partial !== null) return DATAGRAM_HEADER_LENGTH + this.#filled;
    return this.#headerByte >= 0 ? 1 : 0;
  }

  /** True iff the bytes pushed so far end exactly at a frame boundary (a stream ending now is not truncated). */
  get atBoundary(): boolean {
    return this.#partial === null && this.#headerByte < 0;
  }
}
