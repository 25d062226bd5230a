import { randomFillSync } from 'node:crypto';

/** Close status codes the gateway sends (RFC 6455 §7.4.1). */
export const GOING_AWAY = 1001;
export const MESSAGE_TOO_BIG = 1009;
export const INTERNAL_ERROR = 1011;

/**
 * A close frame (RFC 6455 §5.5.1): FIN + opcode 0x8, a 2-byte status code
 * and a short UTF-8 reason (control frame payloads are at most 125 bytes).
 * `masked` frames are the ones a client sends (every client-to-server
 * frame is masked with a fresh random key, §5.3); the gateway masks the
 * close frames it sends upstream, where it stands in for the client.
 */
export function closeFrame(code: number, reason: string, masked: boolean): Buffer {
  let text = Buffer.from(reason, 'utf8');
  if (text.length > 123) text = text.subarray(0, 123);
  const length = 2 + text.length;
  const headerLength = masked ? 6 : 2;
  const frame = Buffer.allocUnsafe(headerLength + length);
  frame[0] = 0x88;
  frame[1] = (masked ? 0x80 : 0) | length;
  frame.writeUInt16BE(code, headerLength);
  text.copy(frame, headerLength + 2);
  if (masked) {
    randomFillSync(frame, 2, 4);
    for (let i = 0; i < length; i++) frame[headerLength + i]! ^= frame[2 + (i & 3)]!;
  }
  return frame;
}
