import { lookup as dnsLookup } from 'node:dns/promises';
import ipaddr from 'ipaddr.js';
import { parseAddress } from '../../net/ip-set.js';
import { AddressRule } from '../destination-rules.js';
import { hostPatternMatches } from '../../net/host-pattern.js';
import type { ForwardProxyListenerConfig } from '../../config/schemas/l4.js';
import type { Destination } from './target.js';

type RuleConfig = ForwardProxyListenerConfig['allow'][number];

/** A host-pattern rule (on the requested name) or an address rule (on the resolved address). */
type Rule = { host: string; ports: ReadonlySet<number> | null } | { address: AddressRule };

/** The outcome of a destination check: the address to dial, or why not. */
export type Verdict =
  | { ok: true; address: string }
  | { ok: false; code: 'FORBIDDEN'; reason: string }
  | { ok: false; code: 'DNS_FAILED'; reason: string }
  | { ok: false; code: 'DNS_TIMEOUT'; reason: string };

/** Resolves a host name to its addresses (dns.lookup, `all: true`). */
export type Lookup = (host: string) => Promise<string[]>;

/** IPv4 first, each family in the resolver's order (getaddrinfo, so /etc/hosts counts). */
export const systemLookup: Lookup = async (host) => {
  const list = await dnsLookup(host, { all: true, verbatim: false });
  return list.map((a) => a.address);
};

function compileRule(r: RuleConfig): Rule {
  if (r.cidr !== undefined) return { address: new AddressRule(r.cidr, r.ports) };
  return { host: r.host!, ports: r.ports === undefined ? null : new Set(r.ports) };
}

/** A host rule for the requested name and port (never for an IP literal). */
function hostMatches(r: Rule, d: Destination): boolean {
  if (!('host' in r) || d.isIp) return false;
  return (r.ports === null || r.ports.has(d.port)) && hostPatternMatches(r.host, d.host);
}

/** An address rule for a resolved address and the port. */
function addressMatches(r: Rule, address: string, port: number): boolean {
  return 'address' in r && r.address.matches(address, port);
}

/**
 * True for an address a default (empty `allow`) proxy may dial: IPv4 outside
 * every special-purpose range (RFC 6890: private, loopback, link-local,
 * CGNAT, multicast, reserved, …) and global unicast IPv6 (2000::/3) outside
 * the special ranges, which include ULA, link-local and the forms that embed
 * an IPv4 address (6to4, Teredo, NAT64).
 */
export function isPublicAddress(address: string): boolean {
  const a = parseAddress(address);
  if (a === undefined) return false;
  if (a.kind() === 'ipv4') return a.range() === 'unicast';
  const v6 = a as ipaddr.IPv6;
  return v6.match(GLOBAL_UNICAST, 3) && v6.range() === 'unicast';
}

const GLOBAL_UNICAST = ipaddr.IPv6.parse('2000::');

/**
 * A forward-proxy listener's `allow` and `deny` rules, compiled.
 *
 * - `deny` wins: a destination matching a deny rule (host pattern on the
 *   requested name, or CIDR on the resolved address, and the port) is refused.
 * - With `allow` rules, a destination must match one of them: a host rule on
 *   the requested name (the operator vouches for that name, whatever it
 *   resolves to), or a CIDR rule on the resolved address; and the port.
 * - With no `allow` rules, any public address is allowed (isPublicAddress).
 *
 * Host names are resolved here and the address returned is the one to
 * dial, so nothing is looked up again between the check and the connect
 * (no DNS-rebinding gap). Of several addresses, the first allowed one
 * (IPv4 first) is used. A name that no rule could allow is refused
 * without a lookup.
 */
export class DestinationPolicy {
  private readonly allow: Rule[];
  private readonly deny: Rule[];
  private readonly lookup: Lookup;

  constructor(allow: readonly RuleConfig[], deny: readonly RuleConfig[], lookup: Lookup = systemLookup) {
    this.allow = allow.map(compileRule);
    this.deny = deny.map(compileRule);
    this.lookup = lookup;
  }

  /** Checks `d` and resolves it; a lookup slower than `timeoutMs` gives DNS_TIMEOUT. */
  async check(d: Destination, timeoutMs: number): Promise<Verdict> {
    if (this.deny.some((r) => hostMatches(r, d))) {
      return { ok: false, code: 'FORBIDDEN', reason: `${d.host}:${d.port} is denied` };
    }
    const byName = this.allow.some((r) => hostMatches(r, d));
    if (this.allow.length > 0 && !byName && !this.allow.some((r) => 'address' in r && r.address.coversPort(d.port))) {
      return { ok: false, code: 'FORBIDDEN', reason: `${d.host}:${d.port} is not allowed` };
    }
    let addresses: string[];
    if (d.isIp) addresses = [d.host];
    else {
      const resolved = await withTimeout(this.lookup(d.host), timeoutMs);
      if (resolved === TIMEOUT) return { ok: false, code: 'DNS_TIMEOUT', reason: `${d.host}: no DNS answer within ${timeoutMs} ms` };
      if (resolved instanceof Error) return { ok: false, code: 'DNS_FAILED', reason: `${d.host}: ${(resolved as Error & { code?: string }).code ?? resolved.message}` };
      addresses = resolved;
    }
    for (const address of addresses) {
      if (this.deny.some((r) => addressMatches(r, address, d.port))) continue;
      const allowed =
        this.allow.length === 0
          ? isPublicAddress(address)
          : byName || this.allow.some((r) => addressMatches(r, address, d.port));
      if (allowed) return { ok: true, address: parseAddress(address)?.toString() ?? address };
    }
    const shown = addresses.length === 1 && addresses[0] === d.host ? d.host : `${d.host} (${addresses.join(', ') || 'no address'})`;
    return { ok: false, code: 'FORBIDDEN', reason: `${shown}:${d.port} is not allowed` };
  }
}

const TIMEOUT = Symbol('timeout');

/** The promise's value, its error (as a value), or TIMEOUT; the timer never outlives the race. */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | Error | typeof TIMEOUT> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(TIMEOUT), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        resolve(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
