import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

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
 * text or v2 §2.2 binary) for a TCP connection. Both ends IPv4 (IPv4-mapped
 * IPv6 counts as IPv4): TCP4 / INET. Otherwise both as IPv6 (an IPv4 end
 * as `::ffff:a.b.c.d`, zone index dropped; v1 text in RFC 5952 form): TCP6
 * / INET6. An end that is not an IP address, or a port out of 0-65535,
 * gives UNKNOWN (v1) / LOCAL (v2), which tells the receiver to use the
 * connection's own addresses.
 */
export function encodeProxyHeader(version: 'v1' | 'v2', a: ProxiedAddresses): Buffer {
  let src = ipOf(a.sourceAddress);
  let dst = ipOf(a.destinationAddress);
  const portsOk = [a.sourcePort, a.destinationPort].every((p) => Number.isInteger(p) && p >= 0 && p <= 65535);
  if (src === null || dst === null || !portsOk) {
    if (version === 'v1') return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
    // Version 2, command LOCAL; family UNSPEC, no address block.
    return Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  }
  const v4 = src.kind() === 'ipv4' && dst.kind() === 'ipv4';
  if (!v4) {
    src = src.kind() === 'ipv4' ? (src as ipaddr.IPv4).toIPv4MappedAddress() : src;
    dst = dst.kind() === 'ipv4' ? (dst as ipaddr.IPv4).toIPv4MappedAddress() : dst;
  }
  if (version === 'v1') {
    return Buffer.from(`PROXY TCP${v4 ? 4 : 6} ${ipText(src)} ${ipText(dst)} ${a.sourcePort} ${a.destinationPort}\r\n`, 'latin1');
  }
  const addrLen = v4 ? 4 : 16;
  const length = 2 * addrLen + 4;
  const out = Buffer.alloc(16 + length);
  V2_SIGNATURE.copy(out, 0);
  out[12] = 0x21; // version 2, command PROXY
  out[13] = v4 ? 0x11 : 0x21; // AF_INET / AF_INET6, STREAM
  out.writeUInt16BE(length, 14);
  Buffer.from(src.toByteArray()).copy(out, 16);
  Buffer.from(dst.toByteArray()).copy(out, 16 + addrLen);
  out.writeUInt16BE(a.sourcePort, 16 + 2 * addrLen);
  out.writeUInt16BE(a.destinationPort, 18 + 2 * addrLen);
  return out;
}

/** An IP address (IPv4-mapped IPv6 as IPv4, IPv6 without zone index), or null if `text` is not one. */
function ipOf(text: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  // node:net's check first: dotted-quad IPv4 only (ipaddr.js would take "10" for 0.0.0.10).
  if (isIP(text) === 0) return null;
  try {
    const ip = ipaddr.parse(text);
    if (ip.kind() === 'ipv4') return ip;
    const v6 = ip as ipaddr.IPv6;
    return v6.isIPv4MappedAddress() ? v6.toIPv4Address() : (ipaddr.fromByteArray(v6.toByteArray()) as ipaddr.IPv6);
  } catch {
    return null;
  }
}

/** Text for a v1 header: dotted IPv4; IPv6 in RFC 5952 form, IPv4-mapped ones with a dotted tail (RFC 5952 §5). */
function ipText(ip: ipaddr.IPv4 | ipaddr.IPv6): string {
  if (ip.kind() === 'ipv4') return ip.toString();
  const v6 = ip as ipaddr.IPv6;
  return v6.isIPv4MappedAddress() ? `::ffff:${v6.toIPv4Address().toString()}` : v6.toRFC5952String();
}
