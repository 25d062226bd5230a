import type { Config } from './schema.js';
import type { ConfigError } from './load.js';
import { parseCidr } from '../http/ip.js';
import { isLoopbackHost } from './loopback.js';

/** Checks what a schema cannot: unique names, references between sections, address clashes. */
export function checkReferences(config: Config): ConfigError[] {
  const errors: ConfigError[] = [];
  const listenerNames = unique(config.listeners, 'listeners', errors);
  const upstreamNames = unique(config.upstreams, 'upstreams', errors);
  unique(config.routes, 'routes', errors);

  const bound = new Map<string, string>();
  const claim = (key: string, path: string) => {
    if (key.endsWith(':0')) return;
    const other = bound.get(key);
    if (other) errors.push({ path, message: `address ${key} is already used by ${other}` });
    else bound.set(key, path);
  };
  if (config.admin) {
    claim(`${config.admin.listen.host}:${config.admin.listen.port}`, 'admin.listen');
    if (!isLoopbackHost(config.admin.listen.host) && !config.admin.apiKey) {
      errors.push({ path: 'admin.apiKey', message: 'is required when admin.listen is not a loopback address' });
    }
  }

  config.listeners.forEach((l, i) => {
    claim(`${l.listen.host}:${l.listen.port}`, `listeners[${i}].listen`);
    l.trustedProxies.forEach((c, j) => {
      if (!parseCidr(c)) errors.push({ path: `listeners[${i}].trustedProxies[${j}]`, message: 'is not a valid IP address or CIDR' });
    });
  });

  config.routes.forEach((r, i) => {
    if (!listenerNames.has(r.listener)) {
      errors.push({ path: `routes[${i}].listener`, message: `no listener named "${r.listener}"` });
    }
    if (r.upstream !== undefined && !upstreamNames.has(r.upstream)) {
      errors.push({ path: `routes[${i}].upstream`, message: `no upstream named "${r.upstream}"` });
    }
    const hosts = r.match.host === undefined ? [] : Array.isArray(r.match.host) ? r.match.host : [r.match.host];
    hosts.forEach((h, j) => {
      if (h !== '*' && (h.slice(1).includes('*') || (h.startsWith('*') && !h.startsWith('*.')))) {
        const path = Array.isArray(r.match.host) ? `routes[${i}].match.host[${j}]` : `routes[${i}].match.host`;
        errors.push({ path, message: 'a wildcard is allowed only as a leading "*." (e.g. *.example.com)' });
      }
    });
  });
  return errors;
}

function unique(items: readonly { name: string }[], section: string, errors: ConfigError[]): Set<string> {
  const seen = new Set<string>();
  items.forEach((item, i) => {
    if (seen.has(item.name)) errors.push({ path: `${section}[${i}].name`, message: `duplicate name "${item.name}"` });
    seen.add(item.name);
  });
  return seen;
}
