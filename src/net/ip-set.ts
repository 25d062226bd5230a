import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parses an address or CIDR; a bare address is a /32 or /128. IPv4-mapped IPv6 ranges are folded to IPv4. */
export function parseCidr(text: string): Range | undefined {
  try {
    if (text.includes('/')) {
      if (isIP(text.slice(0, text.indexOf('/'))) === 0) return undefined;
      const [addr, bits] = ipaddr.parseCIDR(text);
      if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
        return [(addr as ipaddr.IPv6).toIPv4Address(), bits - 96];
      }
      return [addr, bits];
    }
    const addr = parseAddress(text);
    return addr ? [addr, addr.kind() === 'ipv4' ? 32 : 128] : undefined;
  } catch {
    return undefined;
  }
}

/** Parses an address, turning `::ffff:a.b.c.d` into IPv4 so one rule covers both forms. */
export function parseAddress(text: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  // node:net's check: dotted-quad IPv4 only (ipaddr.js would take "10" for 0.0.0.10).
  if (isIP(text) === 0) return undefined;
  const addr = ipaddr.parse(text);
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) return (addr as ipaddr.IPv6).toIPv4Address();
  return addr;
}

/**
 * A compiled list of CIDRs. `has` answers for an address string; results for
 * recently seen addresses are cached, since the same few peers (load
 * balancers, proxies) ask again and again.
 */
export class IpSet {
  private readonly ranges: Range[];
  private readonly cache = new Map<string, boolean>();

  constructor(cidrs: readonly string[]) {
    this.ranges = cidrs.map((c) => {
      const r = parseCidr(c);
      if (!r) throw new Error(`invalid CIDR ${c}`);
      return r;
    });
  }

  get size(): number {
    return this.ranges.length;
  }

  has(address: string): boolean {
    if (this.ranges.length === 0) return false;
    const hit = this.cache.get(address);
    if (hit !== undefined) return hit;
    const addr = parseAddress(address);
    let found = false;
    if (addr) {
      for (const [net, bits] of this.ranges) {
        if (net.kind() === addr.kind() && addr.match(net as never, bits)) {
          found = true;
          break;
        }
      }
    }
    if (this.cache.size >= 4096) this.cache.clear();
    this.cache.set(address, found);
    return found;
  }
}
