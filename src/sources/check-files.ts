import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Config } from '../config/schema.js';
import type { ConfigError } from '../config/errors.js';
import { parseCertificate, parsePrivateKey, readConfigFile, ServerCertificates, shownSource } from '../tls/certificates.js';
import { loadUpstreamTls } from '../tls/upstream-tls.js';

/**
 * Checks the files a validated config names, as `start` will load them (as
 * `nginx -t` does): every certificate, key and CA file readable and a valid
 * PEM, each key matching its certificate; every access-log file openable
 * for appending (created, with its folder, as start would). One error per
 * `tls:` block (the first problem found in it) and per log file.
 */
export function checkConfigFiles(config: Config): ConfigError[] {
  const errors: ConfigError[] = [];
  const attempt = (where: string, load: () => unknown) => {
    try {
      load();
    } catch (err) {
      errors.push(splitWhere((err as Error).message, where));
    }
  };
  config.listeners.forEach((l, i) => {
    if ('tls' in l && l.tls !== undefined) {
      const tls = l.tls;
      attempt(`listeners[${i}].tls`, () => new ServerCertificates(tls, `listeners[${i}].tls`));
    }
    if (l.accessLog !== false && l.accessLog !== true && l.accessLog.path !== undefined) {
      const path = l.accessLog.path;
      attempt(`listeners[${i}].accessLog.path`, () => {
        try {
          mkdirSync(dirname(path), { recursive: true });
          closeSync(openSync(path, 'a'));
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          throw new Error(`listeners[${i}].accessLog.path: cannot open ${path} for appending: ${e.code ?? e.message}`);
        }
      });
    }
  });
  config.certificates.forEach((c, i) => {
    attempt(`certificates[${i}]`, () => checkCertificatePair(c.cert, c.key, `certificates[${i}]`));
  });
  config.upstreams.forEach((u, i) => {
    if (u.tls !== undefined) {
      const tls = u.tls;
      attempt(`upstreams[${i}].tls`, () => loadUpstreamTls(tls, `upstreams[${i}].tls`));
    }
  });
  return errors;
}

/** The loaders' messages start with the config path of the faulty key (`listeners[0].tls.certificates[0].key: …`). */
function splitWhere(message: string, fallback: string): ConfigError {
  const m = /^([A-Za-z0-9_.[\]-]+): ([\s\S]*)$/.exec(message);
  return m && m[1]!.startsWith(fallback.split('.')[0]!) ? { path: m[1]!, message: m[2]! } : { path: fallback, message };
}

/** A named certificate's cert and key: readable, valid PEM, and matching each other. */
function checkCertificatePair(cert: string, key: string, where: string): void {
  const x509 = parseCertificate(readConfigFile(cert, `${where}.cert`), shownSource(cert), `${where}.cert`);
  const keyObject = parsePrivateKey(readConfigFile(key, `${where}.key`), shownSource(key), `${where}.key`);
  if (!x509.checkPrivateKey(keyObject)) throw new Error(`${where}.key: ${shownSource(key)} does not match the certificate in ${shownSource(cert)}`);
}
