import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { ListenerTlsConfig } from '../config/schemas/tls.js';

/**
 * The server certificates of an `https` listener, read from their files
 * when the config is compiled (so a reload picks up renewed files), and
 * the choice of one per handshake by SNI (RFC 6066 §3):
 *
 * 1. a certificate with that exact name (case-insensitive, RFC 4343; a
 *    trailing dot ignored);
 * 2. a certificate with the wildcard `*.<rest>`, where the wildcard stands
 *    for exactly one whole left-most label (RFC 6125 §6.4.3: `*.example.com`
 *    serves `a.example.com`, not `example.com` nor `a.b.example.com`);
 * 3. the `default: true` certificate;
 * 4. none: the handshake is refused (also when the client sent no SNI and
 *    there is no default).
 *
 * A certificate's names are its subjectAltName DNS entries, or its subject
 * CN when it has none (RFC 6125 §6.4.4). When two certificates claim the
 * same name, the first in config order serves it.
 *
 * Each certificate gets its own SecureContext carrying the listener's
 * settings: `clientCa` (the CA store client certificates are verified
 * against, so it must be in every context an SNI switch may select),
 * `minVersion` (TLS 1.2 unless configured), `ciphers`, and a session id
 * context (required by OpenSSL to resume sessions when client
 * certificates are requested).
 */

export interface CertificateInfo {
  /** The SNI names this certificate serves (lower-case; wildcards as `*.example.com`). */
  names: string[];
  /** notAfter as an ISO 8601 timestamp. */
  validTo: string;
  default: boolean;
}

interface Loaded {
  names: string[];
  validTo: string;
  isDefault: boolean;
  context: tls.SecureContext;
  certPem: Buffer;
  keyPem: Buffer;
}

/** Whether a configured certificate or key is PEM text itself rather than a file path. */
export function isInlinePem(v: string): boolean {
  return v.trimStart().startsWith('-----BEGIN ');
}

/** A configured certificate or key as messages name it: its path, or "the inline PEM" (never the PEM itself: it may be a key). */
export function shownSource(v: string): string {
  return isInlinePem(v) ? 'the inline PEM' : v;
}

/** Reads a configured file (or takes inline PEM text as is); the error names the config path and the file. */
export function readConfigFile(path: string, where: string): Buffer {
  if (isInlinePem(path)) return Buffer.from(path, 'utf8');
  try {
    return readFileSync(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`${where}: cannot read ${path}: ${e.code ?? e.message}`);
  }
}

/** The first certificate of a PEM bundle, or an error naming the config path. */
export function parseCertificate(pem: Buffer, path: string, where: string): X509Certificate {
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`${where}: ${shownSource(path)} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new Error(`${where}: ${shownSource(path)} is not a valid PEM certificate: ${(err as Error).message}`);
  }
}

/** A PEM private key, or an error naming the config path (encrypted keys are not supported). */
export function parsePrivateKey(pem: Buffer, path: string, where: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = /passphrase/i.test(e.message) ? 'is encrypted (a passphrase is not supported: decrypt it, e.g. openssl pkey -in key -out key.plain)' : `is not a valid PEM private key (${e.message})`;
    throw new Error(`${where}: ${shownSource(path)} ${why}`);
  }
}

/**
 * Splits Node's `subjectAltName` text (`DNS:a.example, IP Address:127.0.0.1,
 * URI:"spiffe://x,y"`) into typed entries. Values with special characters
 * are JSON-quoted by Node (since 17.3.1 / 16.13.2), so commas inside them
 * do not split.
 */
export function parseSubjectAltName(text: string | undefined): { type: string; value: string }[] {
  const out: { type: string; value: string }[] = [];
  if (text === undefined || text === '') return out;
  let i = 0;
  while (i < text.length) {
    while (text[i] === ' ') i++;
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon);
    let j = colon + 1;
    let value: string;
    if (text[j] === '"') {
      // A JSON string: find its closing quote (skipping escapes).
      let k = j + 1;
      while (k < text.length && text[k] !== '"') k += text[k] === '\\' ? 2 : 1;
      const quoted = text.slice(j, k + 1);
      try {
        value = JSON.parse(quoted) as string;
      } catch {
        value = quoted.slice(1, -1);
      }
      j = k + 1;
    } else {
      const comma = text.indexOf(', ', j);
      const end = comma < 0 ? text.length : comma;
      value = text.slice(j, end);
      j = end;
    }
    out.push({ type, value });
    const next = text.indexOf(', ', j);
    if (next < 0) break;
    i = next + 2;
  }
  return out;
}

/** The CN of a Node-formatted subject (`C=FR\nO=x\nCN=api.example.com`), or undefined. */
export function commonName(subject: string | undefined): string | undefined {
  if (subject === undefined) return undefined;
  let cn: string | undefined;
  for (const line of subject.split('\n')) {
    if (line.startsWith('CN=')) cn = line.slice(3);
  }
  if (cn !== undefined && cn.startsWith('"') && cn.endsWith('"')) {
    try {
      cn = JSON.parse(cn) as string;
    } catch {
      /* keep as is */
    }
  }
  return cn;
}

/** The SNI names a server certificate serves: its DNS SANs, else its CN (RFC 6125 §6.4.4), lower-case. */
export function serverNames(cert: X509Certificate): string[] {
  const dns = parseSubjectAltName(cert.subjectAltName).filter((e) => e.type === 'DNS').map((e) => normalizeName(e.value));
  if (dns.length > 0) return dns;
  const cn = commonName(cert.subject);
  return cn === undefined ? [] : [normalizeName(cn)];
}

/** Lower-case, without one trailing dot (RFC 4343, RFC 6066 §3: SNI is sent without it, but some clients add it). */
export function normalizeName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** OpenSSL caps a session id context at 32 bytes. */
function sessionIdContext(where: string): string {
  return createHash('sha256').update(`portico:${where}`).digest('hex').slice(0, 32);
}

export class ServerCertificates {
  readonly config: ListenerTlsConfig;
  private readonly loaded: Loaded[] = [];
  private readonly exact = new Map<string, Loaded>();
  /** `*.example.com` certificates by the part after `*.` (`example.com`). */
  private readonly wildcard = new Map<string, Loaded>();
  private readonly fallback: Loaded | undefined;
  private readonly clientCa: Buffer | undefined;
  private readonly sessionId: string;

  /**
   * Reads and checks every file synchronously (at compile time). `where` is
   * the config path of the `tls:` block (`listeners[0].tls`); every error
   * message starts with the path of the faulty key.
   */
  constructor(config: ListenerTlsConfig, where: string) {
    this.config = config;
    this.sessionId = sessionIdContext(where);
    if (config.clientCa !== undefined) {
      const at = `${where}.clientCa`;
      const ca = readConfigFile(config.clientCa, at);
      parseCertificate(ca, config.clientCa, at);
      this.clientCa = ca;
    }
    config.certificates.forEach((c, i) => {
      const at = `${where}.certificates[${i}]`;
      const certPem = readConfigFile(c.cert, `${at}.cert`);
      const keyPem = readConfigFile(c.key, `${at}.key`);
      const x509 = parseCertificate(certPem, c.cert, `${at}.cert`);
      const key = parsePrivateKey(keyPem, c.key, `${at}.key`);
      if (!x509.checkPrivateKey(key)) throw new Error(`${at}.key: ${shownSource(c.key)} does not match the certificate in ${shownSource(c.cert)}`);
      const names = serverNames(x509);
      if (names.length === 0 && !c.default) {
        throw new Error(`${at}.cert: ${shownSource(c.cert)} has no DNS subjectAltName nor CN, so no SNI name selects it: add names or make it default: true`);
      }
      let context: tls.SecureContext;
      try {
        context = tls.createSecureContext(this.contextOptions(certPem, keyPem));
      } catch (err) {
        throw new Error(`${at}: ${(err as Error).message}`);
      }
      const entry: Loaded = { names, validTo: new Date(x509.validTo).toISOString(), isDefault: c.default, context, certPem, keyPem };
      this.loaded.push(entry);
      for (const name of names) {
        if (name.startsWith('*.')) {
          if (!this.wildcard.has(name.slice(2))) this.wildcard.set(name.slice(2), entry);
        } else if (!this.exact.has(name)) {
          this.exact.set(name, entry);
        }
      }
    });
    this.fallback = this.loaded.find((l) => l.isDefault);
  }

  private contextOptions(cert?: Buffer, key?: Buffer): tls.SecureContextOptions {
    return {
      ...(cert !== undefined && key !== undefined ? { cert, key } : {}),
      ...(this.clientCa !== undefined ? { ca: this.clientCa } : {}),
      minVersion: this.config.minVersion,
      ...(this.config.ciphers !== undefined ? { ciphers: this.config.ciphers } : {}),
      sessionIdContext: this.sessionId,
    };
  }

  /** The context for a handshake that sent `servername` (undefined: no SNI), or undefined to refuse it. */
  contextFor(servername: string | undefined): tls.SecureContext | undefined {
    if (servername === undefined || servername === '') return this.fallback?.context;
    const name = normalizeName(servername);
    const exact = this.exact.get(name);
    if (exact !== undefined) return exact.context;
    // `*.` stands for exactly one non-empty label; a wildcard over a single label (`*.com`) is never honoured.
    const dot = name.indexOf('.');
    if (dot > 0 && name.indexOf('.', dot + 1) > 0) {
      const wild = this.wildcard.get(name.slice(dot + 1));
      if (wild !== undefined) return wild.context;
    }
    return this.fallback?.context;
  }

  /** Every name served, in config order (for logs and status). */
  names(): string[] {
    return this.loaded.flatMap((l) => l.names);
  }

  /** One entry per certificate, in config order: its names, expiry and whether it is the default. */
  describe(): CertificateInfo[] {
    return this.loaded.map((l) => ({ names: [...l.names], validTo: l.validTo, default: l.isDefault }));
  }

  /** The tls.Server options of the listener (see serverTlsOptions). Implements ListenerTls. */
  serverOptions(): tls.TlsOptions {
    return serverTlsOptions(this.config, this);
  }

  /** The default certificate's PEM (for the server's own context), if any. */
  defaultPem(): { cert: Buffer; key: Buffer } | undefined {
    return this.fallback === undefined ? undefined : { cert: this.fallback.certPem, key: this.fallback.keyPem };
  }

  /** Context options shared by every certificate (clientCa, versions, ciphers, session id context), without a certificate. */
  sharedOptions(): tls.SecureContextOptions {
    return this.contextOptions();
  }
}

/**
 * The node:tls server options of an `https` listener (the caller adds
 * ALPNProtocols and timeouts):
 *
 * - `SNICallback` picks the certificate per ServerCertificates.contextFor,
 *   and refuses the handshake (unrecognized_name alert path: an error) when
 *   none fits;
 * - the server's own context, used when the client sends no SNI, holds the
 *   default certificate, or none at all (the handshake then fails);
 * - `requestCert` for clientAuth optional/require; `rejectUnauthorized` for
 *   require only (a missing, expired or unknown-CA certificate fails the
 *   handshake); with optional, the verification result is left to
 *   mtls-auth (socket.authorized / authorizationError).
 */
export function serverTlsOptions(cfg: ListenerTlsConfig, certs: ServerCertificates): tls.TlsOptions {
  const pem = certs.defaultPem();
  return {
    ...certs.sharedOptions(),
    ...(pem !== undefined ? { cert: pem.cert, key: pem.key } : {}),
    requestCert: cfg.clientAuth !== 'none',
    rejectUnauthorized: cfg.clientAuth === 'require',
    SNICallback(servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) {
      const ctx = certs.contextFor(servername);
      if (ctx === undefined) cb(new Error(`no certificate for server name "${servername}"`));
      else cb(null, ctx);
    },
  };
}
