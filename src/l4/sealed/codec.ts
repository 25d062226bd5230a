import { createCipheriv, createDecipheriv, createHash, hkdfSync, pbkdf2, pbkdf2Sync, randomBytes } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { formatHostPort, type HostPort } from '../../net/address.js';
import { SealedError } from './errors.js';

/**
 * The sealed-address codec (docs/sealed.md). A client names its
 * backend with one line that only holders of the secret can write or read.
 *
 * v1 is exactly what `openssl enc -aes-256-cbc -a -salt -k SECRET` makes:
 * base64 of `Salted__` + 8-byte salt + AES-256-CBC/PKCS#7 ciphertext, the
 * key and IV derived from the secret and salt by one of three kdfs.
 *
 * v2 is `v2.` + base64url(salt[16] ‖ AES-256-GCM ciphertext ‖ tag[16]) of
 * `exp` (u64 BE unix seconds) ‖ `host:port`; the per-line key and nonce come
 * from HKDF-SHA256 over a master key that PBKDF2 stretches from the secret
 * once per process (see `v2Master`).
 */

/** The most bytes a sealed line may have, its `\n` included, unless an Unsealer is given another `lineLimit` (the listener's). */
export const SEALED_LINE_LIMIT = 1024;

/** v1 key derivations: OpenSSL's `EVP_BytesToKey` with MD5 (`-md md5`) or SHA-256 (the 1.1+ default), or `-pbkdf2`. */
export type SealKdf = 'md5' | 'sha256' | 'pbkdf2';
/** `auto` tries `AUTO_ORDER` and keeps the first kdf whose padding and plaintext are both valid. */
export type UnsealKdf = SealKdf | 'auto';
export const SEAL_KDFS: readonly SealKdf[] = ['md5', 'sha256', 'pbkdf2'];
/** Cheap kdfs first: a failed `auto` pays all three, success stops at the first that fits. */
export const AUTO_ORDER: readonly SealKdf[] = ['md5', 'sha256', 'pbkdf2'];

/** `openssl enc -pbkdf2` defaults: 10,000 iterations of HMAC-SHA256. */
export const V1_PBKDF2_ITERATIONS = 10_000;
/** Stretching of the v2 master key, paid once per secret per process (OWASP 2023 figure for PBKDF2-HMAC-SHA256). */
export const V2_PBKDF2_ITERATIONS = 600_000;
export const V2_PREFIX = 'v2.';

const MAGIC = Buffer.from('Salted__', 'latin1');
const V2_SALT = Buffer.from('portico-sealed-v2', 'latin1');
const V2_INFO = Buffer.from('portico-sealed-v2 key+nonce', 'latin1');
const V2_AAD = Buffer.from(V2_PREFIX, 'latin1');
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
const PORT = /^[1-9]\d{0,4}$/;

/** A successfully opened seal. */
export interface SealedAddress extends HostPort {
  /** `host:port`, IPv6 hosts bracketed: what the listener dials and logs. */
  address: string;
  version: 1 | 2;
  /** v1: the kdf that opened it (with `auto`, the one that fit). */
  kdf?: SealKdf;
  /** v2: the expiry, unix seconds. */
  exp?: number;
}

// ---------------------------------------------------------------- plaintext

/**
 * The plaintext rule: `host:port` or `[ipv6]:port`, a port 1-65535 without
 * leading zeros, and a sane host (an IPv4 or IPv6 literal, or a DNS name of
 * letter/digit/hyphen/underscore labels, at most 253 characters, whose last
 * label is not all digits). One trailing `\n` or `\r\n` is dropped: it is
 * what `echo HOST:PORT | openssl enc …` seals. Returns undefined otherwise.
 */
export function parseSealedAddress(text: string): HostPort | undefined {
  if (text.endsWith('\n')) text = text.slice(0, text.endsWith('\r\n') ? -2 : -1);
  if (text.length > 300) return undefined;
  const colon = text.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const portText = text.slice(colon + 1);
  if (!PORT.test(portText)) return undefined;
  const port = Number(portText);
  if (port > 65535) return undefined;
  let host = text.slice(0, colon);
  if (host.startsWith('[')) {
    if (!host.endsWith(']')) return undefined;
    host = host.slice(1, -1);
    return isIPv6(host) ? { host, port } : undefined;
  }
  return saneHost(host) ? { host, port } : undefined;
}

function saneHost(host: string): boolean {
  if (isIPv4(host)) return true;
  if (host.length === 0 || host.length > 253) return false;
  const labels = host.split('.');
  for (const l of labels) if (!LABEL.test(l)) return false;
  return !/^\d+$/.test(labels[labels.length - 1]!);
}

function addressOf(address: string | HostPort): HostPort {
  const hp = typeof address === 'string' ? parseSealedAddress(address) : parseSealedAddress(formatHostPort(address));
  if (!hp) throw new RangeError('not a HOST:PORT address (port 1-65535, IPv6 in brackets)');
  return hp;
}

// ---------------------------------------------------------------- v1 (openssl enc)

/**
 * Key (32 bytes) ‖ IV (16 bytes) for `openssl enc -aes-256-cbc`:
 * EVP_BytesToKey with one iteration (D_i = H(D_{i-1} ‖ pass ‖ salt)), or
 * PBKDF2-HMAC-SHA256 with 10,000 iterations for `-pbkdf2`.
 */
export function deriveV1(kdf: SealKdf, secret: Buffer, salt: Buffer): Buffer {
  if (kdf === 'pbkdf2') return pbkdf2Sync(secret, salt, V1_PBKDF2_ITERATIONS, 48, 'sha256');
  const parts: Buffer[] = [];
  let total = 0;
  let prev = Buffer.alloc(0);
  while (total < 48) {
    prev = createHash(kdf).update(prev).update(secret).update(salt).digest();
    parts.push(prev);
    total += prev.length;
  }
  return Buffer.concat(parts, total).subarray(0, 48);
}

/** deriveV1 off the event loop: PBKDF2 runs on libuv's thread pool; the EVP_BytesToKey kdfs (microseconds) run inline. */
export function deriveV1Async(kdf: SealKdf, secret: Buffer, salt: Buffer): Promise<Buffer> {
  if (kdf !== 'pbkdf2') return Promise.resolve(deriveV1(kdf, secret, salt));
  return new Promise((resolve, reject) => pbkdf2(secret, salt, V1_PBKDF2_ITERATIONS, 48, 'sha256', (err, key) => (err ? reject(err) : resolve(key))));
}

export interface SealV1Options {
  secret: string;
  /** Default `pbkdf2`: the only one `openssl enc` does not warn about. */
  kdf?: SealKdf;
  /** Fixed salt (tests only); default 8 random bytes. */
  salt?: Buffer;
}

/** Seals `host:port` as `openssl enc -aes-256-cbc -a -A -salt` would: one base64 line, no `\n`. */
export function sealV1(address: string | HostPort, options: SealV1Options): string {
  const hp = addressOf(address);
  const salt = options.salt ?? randomBytes(8);
  if (salt.length !== 8) throw new RangeError('a v1 salt is 8 bytes');
  const material = deriveV1(options.kdf ?? 'pbkdf2', secretBytes(options.secret), salt);
  const cipher = createCipheriv('aes-256-cbc', material.subarray(0, 32), material.subarray(32, 48));
  const body = Buffer.concat([cipher.update(formatHostPort(hp), 'latin1'), cipher.final()]);
  return Buffer.concat([MAGIC, salt, body]).toString('base64');
}

/**
 * The length of the plaintext once its PKCS#7 padding is removed, or -1.
 * Reads the whole last block whatever the pad byte says, so the time spent
 * does not depend on where the padding goes wrong.
 */
function unpaddedLength(block: Buffer): number {
  const n = block.length;
  const pad = block[n - 1]!;
  let bad = ((pad - 1) >>> 31) | ((16 - pad) >>> 31); // pad === 0 or pad > 16
  for (let i = 0; i < 16; i++) {
    const inPad = ((i - pad) >>> 31) & 1; // i < pad
    const differs = (((block[n - 1 - i]! ^ pad) + 0xff) >>> 8) & 1;
    bad |= inPad & differs;
  }
  return bad ? -1 : n - pad;
}

/** One kdf's attempt: the address, or undefined. Never throws. */
function openV1(material: Buffer, body: Buffer): HostPort | undefined {
  let plain: Buffer;
  try {
    const d = createDecipheriv('aes-256-cbc', material.subarray(0, 32), material.subarray(32, 48));
    d.setAutoPadding(false);
    plain = Buffer.concat([d.update(body), d.final()]);
  } catch {
    return undefined;
  }
  const length = unpaddedLength(plain);
  // Parse even when the padding is bad, so both failures cost about the same.
  const hp = parseSealedAddress(plain.toString('latin1', 0, length < 0 ? plain.length : length));
  return length < 0 ? undefined : hp;
}

// ---------------------------------------------------------------- v2 (AES-256-GCM, expiring)

const masters = new Map<string, Buffer>();
/** v2 master derivations in progress on the thread pool, by the same id as `masters`. */
const mastering = new Map<string, Promise<Buffer>>();

function masterId(secret: Buffer): string {
  return createHash('sha256').update('portico-sealed-v2 cache').update(secret).digest('base64');
}

function keepMaster(id: string, master: Buffer): Buffer {
  if (masters.size >= 16) masters.delete(masters.keys().next().value!);
  masters.set(id, master);
  return master;
}

/**
 * The v2 master key: PBKDF2-HMAC-SHA256(secret, "portico-sealed-v2",
 * 600,000) — about 0.2 s, paid once per secret per process and cached
 * (keyed by a SHA-256 of the secret, never the secret itself). Per line,
 * only an HKDF runs, so a gateway's handshake cost stays in microseconds
 * while a guess at a weak secret still costs an attacker the full stretch.
 */
function v2Master(secret: Buffer): Buffer {
  const id = masterId(secret);
  return masters.get(id) ?? keepMaster(id, pbkdf2Sync(secret, V2_SALT, V2_PBKDF2_ITERATIONS, 32, 'sha256'));
}

/** v2Master on the thread pool (the listener must not stall its event loop for 0.2 s); concurrent calls share one derivation. */
function v2MasterAsync(secret: Buffer): Promise<Buffer> {
  const id = masterId(secret);
  const ready = masters.get(id);
  if (ready) return Promise.resolve(ready);
  let running = mastering.get(id);
  if (!running) {
    running = new Promise<Buffer>((resolve, reject) =>
      pbkdf2(secret, V2_SALT, V2_PBKDF2_ITERATIONS, 32, 'sha256', (err, key) => (err ? reject(err) : resolve(keepMaster(id, key)))),
    ).finally(() => mastering.delete(id));
    mastering.set(id, running);
  }
  return running;
}

/** Key (32) ‖ nonce (12) for one line: HKDF-SHA256(master, salt, info). A fresh 16-byte salt makes both unique per line. */
function v2KeyNonce(master: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', master, salt, V2_INFO, 44));
}

export interface SealV2Options {
  secret: string;
  /** Expiry, unix seconds. */
  exp: number;
  /** Fixed salt (tests only); default 16 random bytes. */
  salt?: Buffer;
}

/** Seals `host:port` with an expiry as `v2.` + base64url(salt ‖ ciphertext ‖ tag). */
export function sealV2(address: string | HostPort, options: SealV2Options): string {
  const hp = addressOf(address);
  if (!Number.isSafeInteger(options.exp) || options.exp < 0) throw new RangeError('exp is a non-negative whole number of unix seconds');
  const salt = options.salt ?? randomBytes(16);
  if (salt.length !== 16) throw new RangeError('a v2 salt is 16 bytes');
  const kn = v2KeyNonce(v2Master(secretBytes(options.secret)), salt);
  const plain = Buffer.alloc(8 + Buffer.byteLength(formatHostPort(hp), 'latin1'));
  plain.writeBigUInt64BE(BigInt(options.exp), 0);
  plain.write(formatHostPort(hp), 8, 'latin1');
  const cipher = createCipheriv('aes-256-gcm', kn.subarray(0, 32), kn.subarray(32, 44), { authTagLength: 16 });
  cipher.setAAD(V2_AAD);
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return V2_PREFIX + Buffer.concat([salt, body, cipher.getAuthTag()]).toString('base64url');
}

// ---------------------------------------------------------------- unseal

export interface UnsealOptions {
  secret: string;
  /** v1 kdf; default `auto`. Ignored for v2 lines. */
  kdf?: UnsealKdf;
  /** Formats accepted; default both. A gateway that only issues v2 should refuse v1 (it has no integrity or expiry). */
  versions?: readonly (1 | 2)[];
  /** The clock for v2 expiry, in milliseconds (tests). */
  now?: () => number;
  /** How many v1 derived keys to keep, by kdf and salt; default 256 (0 disables). */
  cacheSize?: number;
  /** Longest input accepted, in bytes (a trailing newline included); default SEALED_LINE_LIMIT. */
  lineLimit?: number;
}

/** A line that passed the structural checks, ready for key derivation. */
type Parsed = { version: 1; salt: Buffer; body: Buffer } | { version: 2; raw: Buffer };

/**
 * Opens sealed lines for one secret. Holds the per-gateway caches: v1
 * derived keys by (kdf, salt) — a client that reuses its line costs one
 * derivation, not one per connection — and the v2 master key. Every
 * failure is a SealedError: `BAD_SEAL` for anything that does not open,
 * `EXPIRED` for an authentic v2 line past its `exp`.
 *
 * `unseal` is synchronous (the CLI); `unsealAsync` gives the same answers
 * but runs the PBKDF2 derivations (v1 `pbkdf2`, the v2 master) on libuv's
 * thread pool, so a listener's event loop never stalls on them.
 */
export class Unsealer {
  readonly #secret: Buffer;
  readonly #kdfs: readonly SealKdf[];
  readonly #v1: boolean;
  readonly #v2: boolean;
  readonly #now: () => number;
  readonly #cacheSize: number;
  readonly #lineLimit: number;
  readonly #cache = new Map<string, Buffer>();
  #master: Buffer | undefined;

  constructor(options: UnsealOptions) {
    if (!options.secret) throw new RangeError('the secret is empty');
    const kdf = options.kdf ?? 'auto';
    if (kdf !== 'auto' && !SEAL_KDFS.includes(kdf)) throw new RangeError(`unknown kdf "${String(kdf)}"`);
    this.#secret = secretBytes(options.secret);
    this.#kdfs = kdf === 'auto' ? AUTO_ORDER : [kdf];
    const versions = options.versions ?? [1, 2];
    this.#v1 = versions.includes(1);
    this.#v2 = versions.includes(2);
    this.#now = options.now ?? Date.now;
    this.#cacheSize = options.cacheSize ?? 256;
    this.#lineLimit = options.lineLimit ?? SEALED_LINE_LIMIT;
  }

  /**
   * Opens one line (string or bytes; a trailing `\n` or `\r\n` is allowed,
   * and v1 base64 may be wrapped in lines as `openssl enc -a` prints it).
   */
  unseal(line: string | Buffer): SealedAddress {
    const p = this.#parse(line);
    if (p.version === 2) return this.#openV2(p.raw, (this.#master ??= v2Master(this.#secret)));
    for (const kdf of this.#kdfs) {
      const opened = this.#tryV1(kdf, this.#material(kdf, p.salt), p.body);
      if (opened) return opened;
    }
    throw new SealedError('BAD_SEAL');
  }

  /** `unseal` without blocking the event loop on PBKDF2; rejects with the same SealedErrors. */
  async unsealAsync(line: string | Buffer): Promise<SealedAddress> {
    const p = this.#parse(line);
    if (p.version === 2) return this.#openV2(p.raw, await this.#masterAsync());
    for (const kdf of this.#kdfs) {
      const opened = this.#tryV1(kdf, this.#cached(kdf, p.salt) ?? this.#keep(kdf, p.salt, await deriveV1Async(kdf, this.#secret, p.salt)), p.body);
      if (opened) return opened;
    }
    throw new SealedError('BAD_SEAL');
  }

  /**
   * Derives the v2 master key on the thread pool, when v2 is accepted and
   * it is not known yet: a listener calls this once configured, so its
   * first v2 client does not wait the 0.2 s stretch. Never rejects.
   */
  prepare(): Promise<void> {
    return this.#v2 ? this.#masterAsync().then(() => undefined, () => undefined) : Promise.resolve();
  }

  #masterAsync(): Promise<Buffer> {
    if (this.#master) return Promise.resolve(this.#master);
    return v2MasterAsync(this.#secret).then((m) => (this.#master = m));
  }

  /** The structural checks: format, encoding, lengths. Cheap; throws BAD_SEAL. */
  #parse(line: string | Buffer): Parsed {
    if (line.length > this.#lineLimit) throw new SealedError('BAD_SEAL');
    let text = typeof line === 'string' ? line : line.toString('latin1');
    text = text.replace(/\r?\n$/, '');
    if (text.startsWith(V2_PREFIX)) {
      if (!this.#v2) throw new SealedError('BAD_SEAL');
      const b64 = text.slice(V2_PREFIX.length);
      if (!BASE64URL.test(b64)) throw new SealedError('BAD_SEAL');
      const raw = Buffer.from(b64, 'base64url');
      // Canonical base64url; salt ‖ exp (8) + at least one address byte ‖ tag.
      if (raw.toString('base64url') !== b64 || raw.length < 16 + 9 + 16) throw new SealedError('BAD_SEAL');
      return { version: 2, raw };
    }
    if (!this.#v1) throw new SealedError('BAD_SEAL');
    const b64 = text.replace(/\r?\n/g, '');
    if (b64.length % 4 !== 0 || !BASE64.test(b64)) throw new SealedError('BAD_SEAL');
    const raw = Buffer.from(b64, 'base64');
    // Canonical base64 only (no stray bits in the last character): one line, one ciphertext.
    if (raw.toString('base64') !== b64) throw new SealedError('BAD_SEAL');
    // Salted__ ‖ salt ‖ at least one block, whole blocks only.
    if (raw.length < 32 || raw.length % 16 !== 0 || !raw.subarray(0, 8).equals(MAGIC)) throw new SealedError('BAD_SEAL');
    return { version: 1, salt: raw.subarray(8, 16), body: raw.subarray(16) };
  }

  #tryV1(kdf: SealKdf, material: Buffer, body: Buffer): SealedAddress | undefined {
    const hp = openV1(material, body);
    return hp ? { ...hp, address: formatHostPort(hp), version: 1, kdf } : undefined;
  }

  #material(kdf: SealKdf, salt: Buffer): Buffer {
    return this.#cached(kdf, salt) ?? this.#keep(kdf, salt, deriveV1(kdf, this.#secret, salt));
  }

  /** A cached derived key (refreshed as most recently used), or undefined. */
  #cached(kdf: SealKdf, salt: Buffer): Buffer | undefined {
    if (this.#cacheSize <= 0) return undefined;
    const id = kdf + salt.toString('latin1');
    const m = this.#cache.get(id);
    if (m) {
      this.#cache.delete(id);
      this.#cache.set(id, m);
    }
    return m;
  }

  #keep(kdf: SealKdf, salt: Buffer, material: Buffer): Buffer {
    if (this.#cacheSize <= 0) return material;
    const id = kdf + salt.toString('latin1');
    this.#cache.delete(id);
    if (this.#cache.size >= this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(id, material);
    return material;
  }

  #openV2(raw: Buffer, master: Buffer): SealedAddress {
    const kn = v2KeyNonce(master, raw.subarray(0, 16));
    let plain: Buffer;
    try {
      const d = createDecipheriv('aes-256-gcm', kn.subarray(0, 32), kn.subarray(32, 44), { authTagLength: 16 });
      d.setAAD(V2_AAD);
      d.setAuthTag(raw.subarray(raw.length - 16));
      plain = Buffer.concat([d.update(raw.subarray(16, raw.length - 16)), d.final()]);
    } catch {
      throw new SealedError('BAD_SEAL');
    }
    const exp = plain.readBigUInt64BE(0);
    const hp = parseSealedAddress(plain.toString('latin1', 8));
    if (!hp || exp > BigInt(Number.MAX_SAFE_INTEGER)) throw new SealedError('BAD_SEAL');
    if (Number(exp) * 1000 <= this.#now()) throw new SealedError('EXPIRED');
    return { ...hp, address: formatHostPort(hp), version: 2, exp: Number(exp) };
  }
}

/** One-off unseal (the CLI, tests); a listener keeps one Unsealer per secret for its caches. */
export function unseal(line: string | Buffer, options: UnsealOptions): SealedAddress {
  return new Unsealer({ ...options, cacheSize: 0 }).unseal(line);
}

/** The secret's bytes as `openssl enc -k` takes them (UTF-8). */
function secretBytes(secret: string): Buffer {
  if (!secret) throw new RangeError('the secret is empty');
  return Buffer.from(secret, 'utf8');
}
