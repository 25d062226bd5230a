import { isIP } from 'node:net';
import { parseHostPort } from '../../net/address.js';
import type { ProxiedAddresses } from '../../l4/proxy-protocol/encode.js';

/** Longest `portico-client` / `portico-server` value read: `[` + an IPv6 literal with a zone + `]:65535`. */
const MAX_ORIGIN_LENGTH = 80;

/** The addresses that make encodeProxyHeader write v1 `PROXY UNKNOWN` / v2 `LOCAL` (the connection's own addresses apply). */
const UNKNOWN: ProxiedAddresses = Object.freeze({ sourceAddress: '', sourcePort: 0, destinationAddress: '', destinationPort: 0 });

/**
 * The PROXY header's addresses from a data stream's `portico-client` and
 * `portico-server` headers (`ip:port`, `[ipv6]:port`). They are untrusted
 * input: unless both are present, single, and an IP literal with a port
 * 0-65535, the answer is UNKNOWN (v1 `PROXY UNKNOWN`, v2 `LOCAL`), never
 * an error. Host names are refused: a PROXY header carries addresses only.
 */
export function proxyOrigin(client: string | string[] | undefined, server: string | string[] | undefined): ProxiedAddresses {
  const c = endpoint(client);
  const s = endpoint(server);
  if (c === null || s === null) return UNKNOWN;
  return { sourceAddress: c.host, sourcePort: c.port, destinationAddress: s.host, destinationPort: s.port };
}

function endpoint(value: string | string[] | undefined): { host: string; port: number } | null {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_ORIGIN_LENGTH) return null;
  const hp = parseHostPort(value);
  if (hp === undefined || isIP(hp.host) === 0) return null;
  return hp;
}
