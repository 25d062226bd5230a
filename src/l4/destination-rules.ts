import { IpSet } from '../net/ip-set.js';

/**
 * The two kinds of destination rule L4 listeners share: a host-name
 * pattern (`tls` SNI routes, `forward-proxy` allow/deny; net/host-pattern.ts)
 * and an address range with optional ports (`sealed` and `forward-proxy`
 * allow/deny, below).
 */

/** An address range (CIDR) and, optionally, the only ports allowed in it. */
export class AddressRule {
  private readonly ips: IpSet;
  /** null = every port. */
  private readonly ports: ReadonlySet<number> | null;

  constructor(cidr: string, ports?: readonly number[]) {
    this.ips = new IpSet([cidr]);
    this.ports = ports === undefined ? null : new Set(ports);
  }

  /** Whether the rule covers `port` (whatever the address). */
  coversPort(port: number): boolean {
    return this.ports === null || this.ports.has(port);
  }

  /** Whether `ip:port` is in the range (IPv4-mapped IPv6 matches IPv4 ranges: IpSet folds them). */
  matches(ip: string, port: number): boolean {
    return this.coversPort(port) && this.ips.has(ip);
  }
}
