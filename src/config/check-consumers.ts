import type { Config } from './schema.js';
import type { ConfigError } from './errors.js';

/**
 * Checks on `consumers:` and the traffic policies that a schema cannot
 * make: unique ids, API keys, issuers and certificate names (`tlsSubjects`);
 * `routes` naming existing routes; a `jwt-auth` without keys of its own
 * having token endpoints (or consumer secrets) to trust; an `mtls-auth` on
 * a listener that asks clients for a certificate. Called from checkReferences on a schema-valid config.
 * Messages never include a secret or key.
 */
export function checkConsumers(config: Config): ConfigError[] {
  const errors: ConfigError[] = [];
  const routeNames = new Set(config.routes.map((r) => r.name));
  const ids = new Map<string, number>();
  const keys = new Map<string, string>();
  const issuers = new Map<string, string>();
  const subjects = new Map<string, string>();
  config.consumers.forEach((c, i) => {
    if (ids.has(c.id)) errors.push({ path: `consumers[${i}].id`, message: `duplicate id "${c.id}" (also consumers[${ids.get(c.id)}])` });
    else ids.set(c.id, i);
    c.routes?.forEach((r, j) => {
      if (!routeNames.has(r)) errors.push({ path: `consumers[${i}].routes[${j}]`, message: `no route named "${r}"` });
    });
    c.keys?.forEach((k, j) => {
      const owner = keys.get(k);
      if (owner !== undefined) errors.push({ path: `consumers[${i}].keys[${j}]`, message: `this API key is already used by consumer "${owner}"` });
      else keys.set(k, c.id);
    });
    c.jwtIssuers?.forEach((iss, j) => {
      const owner = issuers.get(iss);
      if (owner !== undefined) errors.push({ path: `consumers[${i}].jwtIssuers[${j}]`, message: `issuer "${iss}" is already claimed by consumer "${owner}"` });
      else issuers.set(iss, c.id);
    });
    c.tlsSubjects?.forEach((name, j) => {
      const owner = subjects.get(name);
      if (owner !== undefined) {
        const where = owner === c.id ? 'listed twice by this consumer' : `already claimed by consumer "${owner}"`;
        errors.push({ path: `consumers[${i}].tlsSubjects[${j}]`, message: `certificate name "${name}" is ${where}` });
      } else subjects.set(name, c.id);
    });
  });

  const hasTokenEndpoint = config.routes.some((r) => r['token-endpoint'] !== undefined);
  const listeners = new Map(config.listeners.map((l) => [l.name, l]));
  config.routes.forEach((r, i) => {
    r.middlewares.forEach((m, j) => {
      if (m.name === 'mtls-auth') {
        // A dangling listener name is reported by checkReferences.
        const l = listeners.get(r.listener);
        if (l !== undefined && (!('tls' in l) || l.tls === undefined || l.tls.clientAuth === 'none')) {
          errors.push({
            path: `routes[${i}].middlewares[${j}].mtls-auth`,
            message: `listener "${l.name}" does not ask for client certificates: use protocol: https with tls.clientCa and tls.clientAuth: optional (or require)`,
          });
        }
        return;
      }
      if (m.name !== 'jwt-auth') return;
      const o = m.options as { signingKey?: string; publicKey?: string; jwksUrl?: string; consumerSecrets?: boolean };
      const ownKeys = o.signingKey !== undefined || o.publicKey !== undefined || o.jwksUrl !== undefined;
      if (!ownKeys && !hasTokenEndpoint && !o.consumerSecrets) {
        errors.push({
          path: `routes[${i}].middlewares[${j}].jwt-auth`,
          message: 'has no key to verify tokens: set signingKey, publicKey or jwksUrl, add a route with token-endpoint, or set consumerSecrets: true',
        });
      }
    });
  });
  return errors;
}
