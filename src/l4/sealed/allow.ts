import { IpSet } from '../../http/ip.js';

/** One `allow:` entry of a sealed listener. */
export interface SealedAllowEntry {
  cidr: string;
  /** Absent: every port. */
  ports?: readonly number[];
}

/**
 * The backends a sealed listener may dial (issue 5: close the original's
 * open relay). Checked on IP addresses only — a name in a line is
 * resolved first and each resolved address is checked, and the dial goes
 * to a checked address, so a name cannot be re-resolved elsewhere between
 * the check and the dial (no DNS-rebinding gap). Empty: nothing is allowed.
 * IPv4-mapped IPv6 addresses match IPv4 ranges (IpSet folds them).
 */
export class SealedAllowList {
  private readonly entries: readonly { ips: IpSet; ports: ReadonlySet<number> | null }[];

  constructor(entries: readonly SealedAllowEntry[]) {
    this.entries = entries.map((e) => ({ ips: new IpSet([e.cidr]), ports: e.ports === undefined ? null : new Set(e.ports) }));
  }

  /** True when no backend at all may be dialled (the default). */
  get empty(): boolean {
    return this.entries.length === 0;
  }

  allows(ip: string, port: number): boolean {
    for (const e of this.entries) if ((e.ports === null || e.ports.has(port)) && e.ips.has(ip)) return true;
    return false;
  }
}
