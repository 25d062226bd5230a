/**
 * Service codes, code patterns and port ranges of the tunnel and relay
 * config (docs: tunnel spec, "Code patterns").
 *
 * A service code is 1-63 characters of `[A-Za-z0-9_.-]`, compared
 * case-sensitively. A code pattern is one of:
 *   - an exact code (`crm`),
 *   - a prefix ending in `*` (`device-*`: every code that starts with
 *     `device-`; as in a glob, `*` matches zero or more characters, so
 *     `device-*` also matches the code `device-`),
 *   - `*` (every valid code).
 * Patterns are compiled once (at config compile time) into a predicate;
 * the predicate never throws and answers false for anything that is not a
 * valid code.
 */

/** Longest service code (a DNS label's length, so a code can be a host label). */
export const MAX_CODE_LENGTH = 63;

const CODE = /^[A-Za-z0-9_.-]{1,63}$/;
const PREFIX = /^[A-Za-z0-9_.-]{0,62}\*$/;

/** True iff `code` is a string of 1-63 characters of `[A-Za-z0-9_.-]`. */
export function isValidCode(code: unknown): code is string {
  return typeof code === 'string' && CODE.test(code);
}

/** True iff `pattern` is an exact code, `prefix*` (prefix 0-62 code characters) or `*`. */
export function isValidCodePattern(pattern: unknown): pattern is string {
  return typeof pattern === 'string' && (CODE.test(pattern) || PREFIX.test(pattern));
}

/**
 * A predicate matching the codes any of `patterns` allows. An empty list
 * matches nothing. Throws a RangeError naming the first invalid pattern
 * (config validation reports it; a compiled predicate never throws).
 */
export function compileCodePatterns(patterns: readonly string[]): (code: string) => boolean {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const p of patterns) {
    if (!isValidCodePattern(p)) {
      throw new RangeError(`invalid code pattern ${JSON.stringify(p)}: expected a code (1-63 of A-Z a-z 0-9 _ . -), a prefix ending in "*", or "*"`);
    }
    if (p.endsWith('*')) prefixes.push(p.slice(0, -1));
    else exact.add(p);
  }
  if (prefixes.includes('')) return (code) => isValidCode(code);
  // A prefix that extends another adds nothing: keep the shortest ones.
  prefixes.sort((a, b) => a.length - b.length);
  const kept: string[] = [];
  for (const p of prefixes) if (!kept.some((k) => p.startsWith(k))) kept.push(p);
  if (kept.length === 0) return (code) => exact.has(code);
  return (code) => {
    if (!isValidCode(code)) return false;
    if (exact.has(code)) return true;
    for (const p of kept) if (code.startsWith(p)) return true;
    return false;
  };
}

/** An inclusive range of ports. */
export interface PortRange {
  from: number;
  to: number;
}

const RANGE = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/;

/**
 * One `allowPorts` entry as an inclusive range: a number (a port), or a
 * string "N" or "N-M" with 1 ≤ N ≤ M ≤ 65535. Throws a RangeError
 * otherwise.
 */
export function parsePortRange(entry: string | number): PortRange {
  if (typeof entry === 'number') {
    if (!Number.isInteger(entry) || entry < 1 || entry > 65535) throw new RangeError(`invalid port ${entry}: expected a whole number 1-65535`);
    return { from: entry, to: entry };
  }
  const m = typeof entry === 'string' ? RANGE.exec(entry) : null;
  if (m === null) throw new RangeError(`invalid port range ${JSON.stringify(entry)}: expected "N" or "N-M" (ports 1-65535)`);
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  if (from < 1 || to > 65535 || from > to) throw new RangeError(`invalid port range ${JSON.stringify(entry)}: expected 1 ≤ N ≤ M ≤ 65535`);
  return { from, to };
}

/**
 * Sorted, disjoint, non-adjacent ranges covering exactly the union of the
 * entries (each parsed by parsePortRange).
 */
export function mergePortRanges(entries: readonly (string | number)[]): PortRange[] {
  const ranges = entries.map(parsePortRange).sort((a, b) => a.from - b.from);
  const out: PortRange[] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last !== undefined && r.from <= last.to + 1) last.to = Math.max(last.to, r.to);
    else out.push({ ...r });
  }
  return out;
}

/**
 * A predicate matching the ports any of `entries` allows (an empty list:
 * none). Throws a RangeError naming the first invalid entry; the predicate
 * never throws and answers false for anything that is not a port.
 */
export function compilePortRanges(entries: readonly (string | number)[]): (port: number) => boolean {
  const ranges = mergePortRanges(entries);
  const from = Int32Array.from(ranges, (r) => r.from);
  const to = Int32Array.from(ranges, (r) => r.to);
  return (port) => {
    if (!Number.isInteger(port)) return false;
    // The last range starting at or below `port`.
    let lo = 0;
    let hi = from.length - 1;
    let at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (from[mid]! <= port) {
        at = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return at >= 0 && port <= to[at]!;
  };
}
