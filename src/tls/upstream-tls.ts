import { createHash } from 'node:crypto';
import type tls from 'node:tls';
import { parseCertificate, parsePrivateKey, readConfigFile } from './certificates.js';
import type { UpstreamTlsConfig } from '../config/schemas/tls.js';

/**
 * An upstream's `tls:` compiled into node:tls client options: Portico is
 * the TLS client of its targets. The files are read when the config is
 * compiled (a reload picks up renewed ones).
 *
 * - `ca` replaces the system's CAs for verifying targets (absent: the
 *   system's, i.e. Node's bundled Mozilla store);
 * - `servername` is both the SNI sent and the name checked against the
 *   target's certificate (RFC 6125); absent, the caller uses the target's
 *   host (an IP target then sends no SNI, RFC 6066 §3, and is checked
 *   against the certificate's IP SANs);
 * - `cert`/`key` are the client certificate for targets that require
 *   mutual TLS;
 * - `insecureSkipVerify` turns verification off (the caller warns loudly).
 */
export interface UpstreamTls {
  options: tls.ConnectionOptions;
  /** A short stable digest of everything that shapes a connection: pools are keyed by it, so changed TLS settings get new connections. */
  key: string;
  insecure: boolean;
}

export function loadUpstreamTls(cfg: UpstreamTlsConfig, where: string): UpstreamTls {
  const hash = createHash('sha256');
  const options: tls.ConnectionOptions = {
    rejectUnauthorized: !cfg.insecureSkipVerify,
    minVersion: cfg.minVersion,
  };
  hash.update(`v=${cfg.minVersion}\0insecure=${cfg.insecureSkipVerify}\0`);
  if (cfg.ca !== undefined) {
    const ca = readConfigFile(cfg.ca, `${where}.ca`);
    parseCertificate(ca, cfg.ca, `${where}.ca`);
    options.ca = ca;
    hash.update('ca\0').update(ca).update('\0');
  }
  if (cfg.serverName !== undefined) {
    options.servername = cfg.serverName;
    hash.update(`sni=${cfg.serverName}\0`);
  }
  if (cfg.cert !== undefined && cfg.key !== undefined) {
    const cert = readConfigFile(cfg.cert, `${where}.cert`);
    const key = readConfigFile(cfg.key, `${where}.key`);
    const x509 = parseCertificate(cert, cfg.cert, `${where}.cert`);
    const keyObject = parsePrivateKey(key, cfg.key, `${where}.key`);
    if (!x509.checkPrivateKey(keyObject)) throw new Error(`${where}.key: ${cfg.key} does not match the certificate in ${cfg.cert}`);
    options.cert = cert;
    options.key = key;
    hash.update('cert\0').update(cert).update('\0key\0').update(key).update('\0');
  }
  return { options, key: hash.digest('base64url').slice(0, 16), insecure: cfg.insecureSkipVerify };
}
