import { AddressRule } from '../destination-rules.js';

/** One `allow:` entry of a sealed listener. */
export interface SealedAllowEntry {
  cidr: string;
  /** Absent: every port. */
  ports?: readonly number[];
}

/**
 * The backends a sealed listener may dial (close the original's
 * open relay). Checked on IP addresses only — a name in a line is
 * resolved first and each resolved address is checked, and the dial goes
 * to a checked address, so a name cannot be re-resolved elsewhere between
 * the check and the dial (no DNS-rebinding gap). Empty: nothing is allowed.
 */
export class SealedAllowList {
  private readonly entries: readonly AddressRule[];

  constructor(entries: readonly SealedAllowEntry[]) {
    this.entries = entries.map((e) => new AddressRule(e.cidr, e.ports));
  }

  /** True when no backend at all may be dialled (the default). */
  get empty(): boolean {
    return this.entries.length === 0;
  }

  allows(ip: string, port: number): boolean {
    return this.entries.some((e) => e.matches(ip, port));
  }
}
