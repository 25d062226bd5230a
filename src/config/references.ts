import { LISTENER_PROTOCOLS, type Config } from './schema.js';
import type { ConfigError } from './errors.js';
import { parseCidr } from '../net/ip-set.js';
import { isLoopbackHost } from '../net/loopback.js';
import { checkConsumers } from './check-consumers.js';

const L4_PROTOCOLS: ReadonlySet<string> = new Set(LISTENER_PROTOCOLS.filter((p) => p !== 'http' && p !== 'https'));

type Named = { name?: unknown; listener?: unknown; upstream?: unknown };

/**
 * Unique names and references between sections. It reads the document
 * loosely (anything may be missing or mistyped), so it can run even when the
 * schema check failed, and `validate` reports every error in one go.
 */
export function checkNames(doc: unknown): ConfigError[] {
  const errors: ConfigError[] = [];
  const section = (key: string): Named[] => {
    const v = (doc as Record<string, unknown> | null)?.[key];
    return Array.isArray(v) ? v.map((x) => (x !== null && typeof x === 'object' ? (x as Named) : {})) : [];
  };
  const listenerNames = unique(section('listeners'), 'listeners', errors);
  const upstreamNames = unique(section('upstreams'), 'upstreams', errors);
  unique(section('routes'), 'routes', errors);
  unique(section('certificates'), 'certificates', errors);
  section('routes').forEach((r, i) => {
    if (typeof r.listener === 'string' && !listenerNames.has(r.listener)) {
      errors.push({ path: `routes[${i}].listener`, message: `no listener named "${r.listener}"` });
    }
    if (typeof r.upstream === 'string' && !upstreamNames.has(r.upstream)) {
      errors.push({ path: `routes[${i}].upstream`, message: `no upstream named "${r.upstream}"` });
    }
  });
  // Connection-level listeners name their upstreams themselves (and `tls` ones per SNI route).
  const l4 = new Map<string, string>();
  section('listeners').forEach((l, i) => {
    const protocol = (l as { protocol?: unknown }).protocol;
    if (typeof protocol === 'string' && L4_PROTOCOLS.has(protocol) && typeof l.name === 'string') l4.set(l.name, protocol);
    if (typeof l.upstream === 'string' && !upstreamNames.has(l.upstream)) {
      errors.push({ path: `listeners[${i}].upstream`, message: `no upstream named "${l.upstream}"` });
    }
    const routes = (l as { routes?: unknown }).routes;
    if (Array.isArray(routes)) {
      routes.forEach((r: unknown, j) => {
        const u = (r as { upstream?: unknown } | null)?.upstream;
        if (typeof u === 'string' && !upstreamNames.has(u)) errors.push({ path: `listeners[${i}].routes[${j}].upstream`, message: `no upstream named "${u}"` });
      });
    }
  });
  section('routes').forEach((r, i) => {
    const protocol = typeof r.listener === 'string' ? l4.get(r.listener) : undefined;
    if (protocol !== undefined) {
      errors.push({ path: `routes[${i}].listener`, message: `"${String(r.listener)}" is a ${protocol} listener: routes are for http and https listeners (a ${protocol} listener names its upstream itself)` });
    }
  });
  return errors;
}

/** Checks what a schema cannot, on a schema-valid config: address clashes, admin exposure, CIDRs, host patterns. */
export function checkReferences(config: Config): ConfigError[] {
  const errors: ConfigError[] = [];

  const bound = new Map<string, string>();
  const claim = (key: string, path: string) => {
    if (key.endsWith(':0')) return;
    const other = bound.get(key);
    if (other) errors.push({ path, message: `address ${key} is already used by ${other}` });
    else bound.set(key, path);
  };
  if (config.admin) {
    claim(`${config.admin.listen.host}:${config.admin.listen.port}`, 'admin.listen');
    if (!isLoopbackHost(config.admin.listen.host) && !config.admin.token) {
      errors.push({ path: 'admin.token', message: 'is required when admin.listen is not a loopback address' });
    }
  }

  config.listeners.forEach((l, i) => {
    // TCP and UDP ports are separate spaces.
    claim(`${l.protocol === 'udp' ? 'udp:' : ''}${l.listen.host}:${l.listen.port}`, `listeners[${i}].listen`);
    if (!('trustedProxies' in l)) return;
    l.trustedProxies.forEach((c, j) => {
      if (!parseCidr(c)) errors.push({ path: `listeners[${i}].trustedProxies[${j}]`, message: 'is not a valid IP address or CIDR' });
    });
  });

  config.routes.forEach((r, i) => {
    const hosts = r.match.host === undefined ? [] : Array.isArray(r.match.host) ? r.match.host : [r.match.host];
    hosts.forEach((h, j) => {
      if (h !== '*' && (h.slice(1).includes('*') || (h.startsWith('*') && !h.startsWith('*.')))) {
        const path = Array.isArray(r.match.host) ? `routes[${i}].match.host[${j}]` : `routes[${i}].match.host`;
        errors.push({ path, message: 'a wildcard is allowed only as a leading "*." (e.g. *.example.com)' });
      }
    });
  });
  errors.push(...checkTunnels(config));
  // Consumers: unique ids/keys/issuers, `routes` naming existing routes; jwt-auth key sources.
  errors.push(...checkConsumers(config));
  return errors;
}

/**
 * Tunnels: `{ tunnel }` targets need a tunnel or relay listener to register
 * at; a tunnel's `http.listener` must be an http/https listener; and with
 * several workers an agent would reach one worker only, so tunnel and relay
 * listeners run with `workers: 1`.
 */
function checkTunnels(config: Config): ConfigError[] {
  const errors: ConfigError[] = [];
  const hasTunnels = config.listeners.some((l) => l.protocol === 'tunnel' || l.protocol === 'relay');
  config.upstreams.forEach((u, i) => {
    u.targets.forEach((t, j) => {
      if ('tunnel' in t && !hasTunnels) errors.push({ path: `upstreams[${i}].targets[${j}].tunnel`, message: 'needs a listener with protocol: tunnel or relay (where services register their codes)' });
    });
  });
  config.listeners.forEach((l, i) => {
    if (l.protocol !== 'tunnel' && l.protocol !== 'relay') return;
    if (config.workers > 1) errors.push({ path: `listeners[${i}].protocol`, message: `${l.protocol} listeners need workers: 1 (an agent's connection reaches one worker, whose registrations the others would not see)` });
    if (l.protocol !== 'tunnel' || l.http === undefined) return;
    const target = config.listeners.find((x) => x.name === l.http!.listener);
    if (target === undefined) errors.push({ path: `listeners[${i}].http.listener`, message: `no listener named "${l.http.listener}"` });
    else if (target.protocol !== 'http' && target.protocol !== 'https') errors.push({ path: `listeners[${i}].http.listener`, message: `"${target.name}" is a ${target.protocol} listener: claimed hosts need an http or https listener` });
  });
  return errors;
}

function unique(items: readonly Named[], section: string, errors: ConfigError[]): Set<string> {
  const seen = new Set<string>();
  items.forEach((item, i) => {
    if (typeof item.name !== 'string') return;
    if (seen.has(item.name)) errors.push({ path: `${section}[${i}].name`, message: `duplicate name "${item.name}"` });
    seen.add(item.name);
  });
  return seen;
}
