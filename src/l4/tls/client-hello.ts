/**
 * A TLS ClientHello reader for routing by SNI without terminating TLS: it
 * reads the record layer and the ClientHello only as far as the
 * server_name extension, and never changes a byte (the caller relays them
 * all). Pure and total: any input gives a result, never an exception.
 *
 * - Record layer (RFC 8446 §5.1; RFC 5246 §6.2.1): records of type
 *   handshake (22), version 3.x, a length of 1 to 2^14. A ClientHello may
 *   be fragmented over several records, which must all be handshake
 *   records ("MUST NOT be interleaved with other record types"; zero-length
 *   handshake fragments are not allowed). SSL 2.0-style hellos are refused.
 * - ClientHello (RFC 8446 §4.1.2; RFC 5246 §7.4.1.2): legacy_version,
 *   random, session id ≤ 32 bytes, cipher suites (even, ≥ 2 bytes),
 *   compression methods (≥ 1), then extensions, which a TLS 1.2 hello may
 *   leave out. Every length must fit its enclosing one exactly; an
 *   extension type may appear once (RFC 8446 §4.2).
 * - server_name (RFC 6066 §3): a ServerNameList with one host_name entry
 *   (name_type 0) of 1 to 255 bytes. Any other name_type is an error, as
 *   in OpenSSL. The name is returned lower-case (RFC 4343), without a
 *   trailing dot; it must consist of letters, digits, `-` and `_` in
 *   dot-separated labels.
 *
 * `maxBytes` bounds the records carrying the ClientHello (record headers
 * included): a hello that would need more is `too-large`, known as soon as
 * a length says so, so a client cannot make Portico buffer beyond it.
 */

/** The record content type of handshake messages and the ClientHello message type (RFC 8446 §5.1, §4). */
const HANDSHAKE = 22;
const CLIENT_HELLO = 1;
const RECORD_HEADER = 5;
/** Largest TLSPlaintext fragment (RFC 8446 §5.1). */
const MAX_FRAGMENT = 1 << 14;
const EXT_SERVER_NAME = 0;
const NAME_TYPE_HOST = 0;

export type ClientHelloFailure = 'not-tls' | 'malformed' | 'too-large';

export interface ClientHello {
  /** The host_name of the server_name extension (lower-case, no trailing dot); null when the client sent none. */
  serverName: string | null;
  /** Bytes of the records that carry the ClientHello (what was needed to read it). */
  length: number;
}

export type ClientHelloResult =
  /** Not enough bytes yet: parse again once at least `need` bytes are there. */
  | { status: 'partial'; need: number }
  | { status: 'ok'; hello: ClientHello }
  | { status: 'invalid'; reason: ClientHelloFailure; detail: string };

class Malformed extends Error {}

/** Bounds-checked big-endian reads over one buffer; a read past the end throws Malformed. */
class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer, private readonly what: string) {}

  get left(): number {
    return this.buf.length - this.pos;
  }

  u8(field: string): number {
    this.need(1, field);
    return this.buf[this.pos++]!;
  }

  u16(field: string): number {
    this.need(2, field);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  bytes(n: number, field: string): Buffer {
    this.need(n, field);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** A vector with a 1- or 2-byte length prefix, as a sub-reader. */
  vector(prefix: 1 | 2, field: string): Reader {
    const n = prefix === 1 ? this.u8(field) : this.u16(field);
    return new Reader(this.bytes(n, field), field);
  }

  end(): void {
    if (this.left !== 0) throw new Malformed(`${this.left} unexpected byte(s) after ${this.what}`);
  }

  private need(n: number, field: string): void {
    if (this.left < n) throw new Malformed(`${field} runs past the end of ${this.what}`);
  }
}

const invalid = (reason: ClientHelloFailure, detail: string): ClientHelloResult => ({ status: 'invalid', reason, detail });

/**
 * Reads the ClientHello at the start of `data` (everything the client sent
 * so far). `partial` says how many bytes to wait for; bytes after the
 * ClientHello's last record are ignored.
 */
export function parseClientHello(data: Buffer, maxBytes = 16_384): ClientHelloResult {
  // The first bytes tell TLS from anything else before a whole header is in.
  if (data.length >= 1 && data[0] !== HANDSHAKE) {
    return invalid('not-tls', data[0]! & 0x80 ? 'an SSL 2.0-style or non-TLS first byte' : `first byte 0x${data[0]!.toString(16).padStart(2, '0')} is not a TLS handshake record`);
  }
  if (data.length >= 2 && data[1] !== 3) return invalid('not-tls', `record version ${data[1]}.x is not TLS (3.x)`);

  // Reassemble the handshake message from the fragments of consecutive records.
  const fragments: Buffer[] = [];
  let got = 0;
  let off = 0;
  let messageEnd = -1;
  for (;;) {
    if (off + RECORD_HEADER > maxBytes) return invalid('too-large', `the ClientHello does not fit in ${maxBytes} bytes`);
    if (data.length < off + RECORD_HEADER) return { status: 'partial', need: off + RECORD_HEADER };
    if (data[off] !== HANDSHAKE) return invalid('malformed', `a record of type ${data[off]} interrupts the ClientHello (RFC 8446 §5.1)`);
    if (data[off + 1] !== 3) return invalid('malformed', `record version ${data[off + 1]}.x is not TLS (3.x)`);
    const len = data.readUInt16BE(off + 3);
    if (len === 0) return invalid('malformed', 'zero-length handshake record (RFC 8446 §5.1)');
    if (len > MAX_FRAGMENT) return invalid('malformed', `record length ${len} exceeds 2^14 (RFC 8446 §5.1)`);
    const recordEnd = off + RECORD_HEADER + len;
    if (recordEnd > maxBytes) return invalid('too-large', `the ClientHello does not fit in ${maxBytes} bytes`);
    if (data.length < recordEnd) return { status: 'partial', need: recordEnd };
    fragments.push(data.subarray(off + RECORD_HEADER, recordEnd));
    got += len;
    off = recordEnd;
    if (messageEnd < 0 && got >= 4) {
      const head = fragments.length === 1 ? fragments[0]! : Buffer.concat(fragments);
      if (head[0] !== CLIENT_HELLO) return invalid('malformed', `the first handshake message is of type ${head[0]}, not ClientHello (1)`);
      messageEnd = 4 + head.readUIntBE(1, 3);
      // Each further record costs at least a header: the least the rest can take.
      if (off + Math.max(0, messageEnd - got) > maxBytes) return invalid('too-large', `a ClientHello of ${messageEnd} bytes does not fit in ${maxBytes} bytes`);
    }
    if (messageEnd >= 0 && got >= messageEnd) break;
  }
  const message = fragments.length === 1 ? fragments[0]! : Buffer.concat(fragments);
  try {
    const serverName = readServerName(message.subarray(4, messageEnd));
    return { status: 'ok', hello: { serverName, length: off } };
  } catch (err) {
    if (err instanceof Malformed) return invalid('malformed', err.message);
    throw err;
  }
}

/** The ClientHello body (after the 4-byte handshake header) → its SNI host name, or null. */
function readServerName(body: Buffer): string | null {
  const r = new Reader(body, 'the ClientHello');
  const major = r.u8('legacy_version');
  r.u8('legacy_version');
  if (major !== 3) throw new Malformed(`legacy_version ${major}.x is not TLS`);
  r.bytes(32, 'random');
  const session = r.vector(1, 'legacy_session_id');
  if (session.left > 32) throw new Malformed('legacy_session_id is longer than 32 bytes');
  const suites = r.vector(2, 'cipher_suites');
  if (suites.left < 2 || suites.left % 2 !== 0) throw new Malformed('cipher_suites must be a non-empty list of 2-byte values');
  const compression = r.vector(1, 'legacy_compression_methods');
  if (compression.left < 1) throw new Malformed('legacy_compression_methods is empty');
  // A TLS 1.2 ClientHello may end here (RFC 5246 §7.4.1.2).
  if (r.left === 0) return null;
  const extensions = r.vector(2, 'extensions');
  r.end();
  const seen = new Set<number>();
  let serverName: string | null = null;
  while (extensions.left > 0) {
    const type = extensions.u16('extension type');
    const data = extensions.vector(2, `extension ${type}`);
    if (seen.has(type)) throw new Malformed(`extension ${type} appears twice (RFC 8446 §4.2)`);
    seen.add(type);
    if (type === EXT_SERVER_NAME) serverName = readServerNameList(data);
  }
  return serverName;
}

/** The server_name extension's data (RFC 6066 §3) → the host name. */
function readServerNameList(data: Reader): string {
  const list = data.vector(2, 'server_name_list');
  data.end();
  let host: string | null = null;
  while (list.left > 0) {
    const nameType = list.u8('name_type');
    if (nameType !== NAME_TYPE_HOST) throw new Malformed(`server_name of unknown name_type ${nameType}`);
    const name = list.vector(2, 'host_name');
    if (host !== null) throw new Malformed('more than one host_name in server_name (RFC 6066 §3)');
    host = hostName(name.bytes(name.left, 'host_name'));
  }
  if (host === null) throw new Malformed('empty server_name_list');
  return host;
}

const HOST = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

function hostName(raw: Buffer): string {
  if (raw.length === 0 || raw.length > 255) throw new Malformed(`host_name of ${raw.length} bytes (1 to 255)`);
  let name = raw.toString('latin1').toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (!HOST.test(name)) throw new Malformed('host_name is not a DNS host name');
  return name;
}
