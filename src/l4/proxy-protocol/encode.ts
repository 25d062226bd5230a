import { isIP } from 'node:net';

/** The two ends of the client's original connection, as a PROXY protocol header carries them. */
export interface ProxiedAddresses {
  /** The client: source address and port. */
  sourceAddress: string;
  sourcePort: number;
  /** Where the client connected: destination address and port. */
  destinationAddress: string;
  destinationPort: number;
}

/** The 12-byte signature that opens a v2 header (spec §2.2). */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** `::ffff:a.b.c.d` (a v4 client on a dual-stack socket) as plain IPv4. */
export function unmapV4(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/**
 * Encodes a PROXY protocol header (HAProxy's proxy-protocol.txt, v1 §2.1
 * text or v2 §2.2 binary) for a TCP connection. Both ends must be the same
 * family after unmapping; otherwise (or for addresses that are not IPs) the
 * header says UNKNOWN (v1) / LOCAL (v2), which tells the receiver to use
 * the connection's own addresses.
 */
export function encodeProxyHeader(version: 'v1' | 'v2', a: ProxiedAddresses): Buffer {
  const src = unmapV4(a.sourceAddress);
  const dst = unmapV4(a.destinationAddress);
  const family = isIP(src);
  const known = family !== 0 && family === isIP(dst);
  if (version === 'v1') {
    if (!known) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
    return Buffer.from(`PROXY TCP${family} ${src} ${dst} ${a.sourcePort} ${a.destinationPort}\r\n`, 'latin1');
  }
  if (!known) {
    // Version 2, command LOCAL; family UNSPEC, no address block.
    return Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  }
  const length = family === 4 ? 12 : 36;
  const out = Buffer.alloc(16 + length);
  V2_SIGNATURE.copy(out, 0);
  out[12] = 0x21; // version 2, command PROXY
  out[13] = family === 4 ? 0x11 : 0x21; // AF_INET / AF_INET6, STREAM
  out.writeUInt16BE(length, 14);
  const addrLen = family === 4 ? 4 : 16;
  ipBytes(src, family).copy(out, 16);
  ipBytes(dst, family).copy(out, 16 + addrLen);
  out.writeUInt16BE(a.sourcePort, 16 + 2 * addrLen);
  out.writeUInt16BE(a.destinationPort, 18 + 2 * addrLen);
  return out;
}

function ipBytes(ip: string, family: number): Buffer {
  if (family === 4) return Buffer.from(ip.split('.').map(Number));
  // Expand `::` and any embedded IPv4 tail into eight 16-bit groups.
  let text = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const p = v4[1]!.split('.').map(Number);
    text = `${text.slice(0, v4.index)}${((p[0]! << 8) | p[1]!).toString(16)}:${((p[2]! << 8) | p[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}
