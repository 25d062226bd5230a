import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { V2_SIGNATURE, type ProxiedAddresses } from './encode.js';

/**
 * An incremental parser of PROXY protocol headers (HAProxy's
 * proxy-protocol.txt, v1 text §2.1 and v2 binary §2.2). Pure: it is given
 * the bytes received so far and answers what they are; the caller feeds it
 * again with more bytes after `incomplete`.
 *
 * Addresses are normalised: IPv6 in RFC 5952 form, and IPv4-mapped IPv6
 * (`::ffff:a.b.c.d`) as plain IPv4, as the listener does for its own
 * sockets — so one client has one spelling in limits, hashes and logs.
 */

/** Longest v1 header, CRLF included (spec §2.1: "107 characters"). */
export const V1_MAX_LENGTH = 107;
/** Most TLV bytes accepted after the v2 address block (a local cap; the spec allows up to 65535 − address). */
export const V2_MAX_TLV_BYTES = 4096;
/** The fixed part of a v2 header: signature, version/command, family/transport, length. */
export const V2_FIXED_LENGTH = 16;

export type ProxyFamily = 'inet' | 'inet6' | 'unix' | 'unspec';
export type ProxyTransport = 'stream' | 'dgram' | 'unspec';

export interface ProxyHeader {
  version: 1 | 2;
  /** LOCAL (v2 only): a connection of the proxy itself (health check): use the connection's own addresses. */
  command: 'LOCAL' | 'PROXY';
  /** v1: TCP4 → inet, TCP6 → inet6, UNKNOWN → unspec. */
  family: ProxyFamily;
  /** v1: TCP4/TCP6 → stream, UNKNOWN → unspec. */
  transport: ProxyTransport;
  /** The original connection's ends; null for LOCAL, UNKNOWN/UNSPEC and UNIX (use the connection's own). */
  addresses: ProxiedAddresses | null;
  /** Header bytes, from the first byte up to the client's data. */
  consumed: number;
}

export type ParseResult =
  /** A prefix of a possible header: feed more bytes. */
  | { kind: 'incomplete' }
  /** The first bytes cannot start a header (neither `PROXY ` nor the v2 signature). */
  | { kind: 'not-proxy' }
  /** A header was started but is invalid; the connection must be dropped (spec §2: "must not try to guess"). */
  | { kind: 'malformed'; reason: string }
  | { kind: 'header'; header: ProxyHeader };

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const INCOMPLETE: ParseResult = { kind: 'incomplete' };
const NOT_PROXY: ParseResult = { kind: 'not-proxy' };

const malformed = (reason: string): ParseResult => ({ kind: 'malformed', reason });

/** Parses the start of `buf` as a PROXY protocol header (v1 or v2). Never throws. */
export function parseProxyHeader(buf: Buffer): ParseResult {
  if (buf.length === 0) return INCOMPLETE;
  if (buf[0] === V1_PREFIX[0]) {
    if (!startsWithPrefix(buf, V1_PREFIX)) return NOT_PROXY;
    return buf.length < V1_PREFIX.length ? INCOMPLETE : parseV1(buf);
  }
  if (buf[0] === V2_SIGNATURE[0]) {
    if (!startsWithPrefix(buf, V2_SIGNATURE)) return NOT_PROXY;
    return buf.length < V2_FIXED_LENGTH ? INCOMPLETE : parseV2(buf);
  }
  return NOT_PROXY;
}

/**
 * Whether `buf` has at least the whole v1 `PROXY ` or the whole v2
 * signature: from there on it can only be a header (valid or not), and no
 * longer a client's own data.
 */
export function isHeaderStart(buf: Buffer): boolean {
  return (buf.length >= V1_PREFIX.length && startsWithPrefix(buf, V1_PREFIX)) || (buf.length >= V2_SIGNATURE.length && startsWithPrefix(buf, V2_SIGNATURE));
}

/** Whether buf and prefix agree on their common length. */
function startsWithPrefix(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.compare(prefix, 0, n, 0, n) === 0;
}

/** v1 (§2.1): `PROXY TCP4|TCP6 src dst sport dport\r\n` with single spaces, or `PROXY UNKNOWN[ anything]\r\n`. */
function parseV1(buf: Buffer): ParseResult {
  // The CR may be at index V1_MAX_LENGTH - 2 at the latest (the LF is the last allowed byte).
  const limit = Math.min(buf.length, V1_MAX_LENGTH - 1);
  let cr = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const c = buf[i]!;
    if (c === 0x0d) {
      cr = i;
      break;
    }
    // Printable US-ASCII and spaces only; a bare LF is not a line end here.
    if (c < 0x20 || c > 0x7e) return malformed('v1: invalid character in header');
  }
  if (cr === -1) return buf.length >= V1_MAX_LENGTH - 1 ? malformed(`v1: no CRLF within ${V1_MAX_LENGTH} bytes`) : INCOMPLETE;
  if (cr + 1 >= buf.length) return INCOMPLETE;
  if (buf[cr + 1] !== 0x0a) return malformed('v1: CR not followed by LF');
  const consumed = cr + 2;
  const line = buf.toString('latin1', V1_PREFIX.length, cr);
  if (line === 'UNKNOWN' || line.startsWith('UNKNOWN ')) {
    // "the receiver must ignore anything presented before the CRLF is found".
    return header({ version: 1, command: 'PROXY', family: 'unspec', transport: 'unspec', addresses: null, consumed });
  }
  const f = line.split(' ');
  if (f.length !== 5) return malformed('v1: expected "TCP4|TCP6 source destination sport dport"');
  const [proto, src, dst, sport, dport] = f as [string, string, string, string, string];
  const family = proto === 'TCP4' ? 4 : proto === 'TCP6' ? 6 : 0;
  if (family === 0) return malformed(`v1: unknown protocol "${proto.slice(0, 16)}"`);
  const source = textAddress(src, family);
  const destination = textAddress(dst, family);
  if (source === null || destination === null) return malformed(`v1: invalid ${proto} address`);
  const sourcePort = textPort(sport);
  const destinationPort = textPort(dport);
  if (sourcePort === null || destinationPort === null) return malformed('v1: invalid port');
  return header({
    version: 1,
    command: 'PROXY',
    family: family === 4 ? 'inet' : 'inet6',
    transport: 'stream',
    addresses: { sourceAddress: source, sourcePort, destinationAddress: destination, destinationPort },
    consumed,
  });
}

/** An address of the given family in text (no zone index), normalised; null if invalid. */
function textAddress(text: string, family: 4 | 6): string | null {
  if (isIP(text) !== family || text.includes('%')) return null;
  if (family === 4) return text;
  try {
    return normaliseV6(ipaddr.IPv6.parse(text));
  } catch {
    return null;
  }
}

/** A decimal port 0-65535 without leading zeros (§2.1); null otherwise. */
function textPort(text: string): number | null {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return null;
  const n = Number(text);
  return n <= 65535 ? n : null;
}

function normaliseV6(a: ipaddr.IPv6): string {
  return a.isIPv4MappedAddress() ? a.toIPv4Address().toString() : a.toRFC5952String();
}

const FAMILIES: Record<number, { family: ProxyFamily; addressLength: number }> = {
  0x0: { family: 'unspec', addressLength: 0 },
  0x1: { family: 'inet', addressLength: 12 },
  0x2: { family: 'inet6', addressLength: 36 },
  0x3: { family: 'unix', addressLength: 216 },
};
const TRANSPORTS: Record<number, ProxyTransport> = { 0x0: 'unspec', 0x1: 'stream', 0x2: 'dgram' };

/**
 * v2 (§2.2): the 12-byte signature, version 2 with command LOCAL (0) or
 * PROXY (1), family UNSPEC/INET/INET6/UNIX with transport
 * UNSPEC/STREAM/DGRAM, a 16-bit length, the address block, then TLVs.
 * Other values are rejected, as the spec requires. TLVs (§2.2.7) are
 * skipped, but each must fit in the length; the body of a LOCAL or UNSPEC
 * header is ignored whole (not even its length is checked against the
 * family's address block). At most V2_MAX_TLV_BYTES past the family's
 * address block are accepted: the length is checked on the 16 fixed
 * bytes, so a peer cannot make the reader wait for and buffer 64 KiB.
 */
function parseV2(buf: Buffer): ParseResult {
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return malformed(`v2: unsupported version ${verCmd >> 4}`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return malformed(`v2: unknown command ${cmd}`);
  const famByte = buf[13]!;
  const fam = FAMILIES[famByte >> 4];
  const transport = TRANSPORTS[famByte & 0x0f];
  if (fam === undefined || transport === undefined) return malformed(`v2: unknown family/transport 0x${famByte.toString(16).padStart(2, '0')}`);
  const command = cmd === 0 ? 'LOCAL' : 'PROXY';
  const length = buf.readUInt16BE(14);
  if (command === 'PROXY' && length < fam.addressLength) return malformed(`v2: length ${length} shorter than the ${fam.family} address block`);
  if (length > fam.addressLength + V2_MAX_TLV_BYTES) return malformed(`v2: more than ${V2_MAX_TLV_BYTES} bytes of TLVs`);
  const consumed = V2_FIXED_LENGTH + length;
  if (buf.length < consumed) return INCOMPLETE;
  // TLVs: type (1), length (2), value; the chain must end exactly at the header's end. A LOCAL or
  // UNSPEC header's body is to be ignored whole (§2.2), so it is not read as TLVs.
  const ignored = command === 'LOCAL' || fam.family === 'unspec';
  for (let at = ignored ? consumed : V2_FIXED_LENGTH + fam.addressLength; at < consumed; ) {
    if (at + 3 > consumed) return malformed('v2: truncated TLV');
    at += 3 + buf.readUInt16BE(at + 1);
    if (at > consumed) return malformed('v2: TLV longer than the header');
  }
  let addresses: ProxiedAddresses | null = null;
  // LOCAL: "the receiver must accept this connection as valid and must use the real connection endpoints".
  if (command === 'PROXY' && (fam.family === 'inet' || fam.family === 'inet6')) {
    const n = fam.family === 'inet' ? 4 : 16;
    const at = V2_FIXED_LENGTH;
    addresses = {
      sourceAddress: binaryAddress(buf.subarray(at, at + n)),
      destinationAddress: binaryAddress(buf.subarray(at + n, at + 2 * n)),
      sourcePort: buf.readUInt16BE(at + 2 * n),
      destinationPort: buf.readUInt16BE(at + 2 * n + 2),
    };
  }
  return header({ version: 2, command, family: fam.family, transport, addresses, consumed });
}

function binaryAddress(bytes: Buffer): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  return normaliseV6(ipaddr.fromByteArray([...bytes]) as ipaddr.IPv6);
}

function header(h: ProxyHeader): ParseResult {
  return { kind: 'header', header: h };
}
