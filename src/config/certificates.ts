import type { Config } from './schema.js';
import type { ConfigError } from './errors.js';

/**
 * Gives each listener certificate written as `{ certificate: NAME }` the
 * cert and key of the top-level `certificates:` entry of that name, in
 * place, on a schema-valid config; a name with no entry is an error at its
 * path. Names of `certificates:` entries are unique (checked in references.ts).
 */
export function resolveCertificates(config: Config): ConfigError[] {
  const errors: ConfigError[] = [];
  const byName = new Map(config.certificates.map((c) => [c.name, c]));
  config.listeners.forEach((l, i) => {
    if (!('tls' in l) || l.tls === undefined) return;
    l.tls.certificates.forEach((c, j) => {
      if (!('certificate' in c) || c.certificate === undefined) return;
      const named = byName.get(c.certificate);
      if (named === undefined) {
        errors.push({ path: `listeners[${i}].tls.certificates[${j}].certificate`, message: `no certificate named "${c.certificate}"` });
        return;
      }
      c.cert = named.cert;
      c.key = named.key;
    });
  });
  return errors;
}
