import { formatHostPort, parseHostPort } from '../net/address.js';

/** A target a discovery backend found: `host:port` and its weight (1 unless the entry says). */
export interface DiscoveredTarget {
  readonly address: string;
  readonly weight: number;
}

/** Longest entry data read (bytes as characters); a registry value is an address, not a document. */
const MAX_DATA = 4096;
const MAX_WEIGHT = 10_000;

/**
 * Reads one registry entry (a ZooKeeper child znode, an etcd key) as a
 * target. The address is, in order: the data as JSON
 * `{"address":"host:port","weight":N}` (also `host`+`port`), the data as
 * `host:port` or `host:port weight`, else the entry's own name
 * (`/real_server/127.0.0.1:2003`). Returns the target or why it is not one.
 */
export function parseDiscoveredEntry(name: string, data: string | undefined): DiscoveredTarget | { error: string } {
  const text = (data ?? '').trim();
  if (text.length > MAX_DATA) return { error: `its data is longer than ${MAX_DATA} bytes` };
  if (text.startsWith('{')) return fromJson(text);
  if (text !== '') {
    const [address, weight, ...more] = text.split(/\s+/);
    if (more.length > 0) return { error: 'its data must be host:port, "host:port weight" or JSON {"address","weight"}' };
    return target(address!, weight === undefined ? 1 : Number(weight), 'its data');
  }
  return target(name, 1, 'its name');
}

function fromJson(text: string): DiscoveredTarget | { error: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { error: 'its data starts with "{" but is not valid JSON' };
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return { error: 'its data is not a JSON object' };
  const o = v as Record<string, unknown>;
  const weight = o.weight === undefined ? 1 : o.weight;
  if (typeof weight !== 'number') return { error: 'its weight is not a number' };
  if (typeof o.address === 'string') return target(o.address, weight, 'its address');
  // The shape Curator's ServiceDiscovery and many registries write: { host/address, port }.
  const host = typeof o.host === 'string' ? o.host : undefined;
  if (host !== undefined && typeof o.port === 'number') return target(formatHostPort({ host, port: o.port }), weight, 'its host and port');
  return { error: 'its JSON needs "address" ("host:port") or "host" and "port"' };
}

function target(address: string, weight: number, what: string): DiscoveredTarget | { error: string } {
  const hp = parseHostPort(address);
  if (hp === undefined || hp.port === 0 || hp.host === '') return { error: `${what} "${printable(address)}" is not host:port` };
  if (!Number.isInteger(weight) || weight < 0 || weight > MAX_WEIGHT) return { error: `weight ${printable(String(weight))} is not a whole number from 0 to ${MAX_WEIGHT}` };
  return { address: formatHostPort(hp), weight };
}

/** At most 80 characters, control characters escaped: entry text goes into logs and /status. */
function printable(s: string): string {
  const cut = s.length > 80 ? `${s.slice(0, 80)}…` : s;
  return cut.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
