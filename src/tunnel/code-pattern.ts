import { SERVICE_CODE } from '../config/schemas/tunnel.js';

/** Whether `code` is a valid service code (1-63 of [A-Za-z0-9_.-]). */
export function isValidCode(code: string): boolean {
  return SERVICE_CODE.test(code);
}

/** A matcher for code patterns: exact codes, prefixes ending in `*`, or `*`. */
export function compileCodePatterns(patterns: readonly string[]): (code: string) => boolean {
  const exact = new Set(patterns.filter((p) => !p.endsWith('*')));
  const prefixes = patterns.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1));
  return (code) => exact.has(code) || prefixes.some((p) => code.startsWith(p));
}

/** A matcher for port ranges as the schema reads them ({ from, to }). */
export function compilePortRanges(ranges: readonly { from: number; to: number }[]): (port: number) => boolean {
  return (port) => ranges.some((r) => port >= r.from && port <= r.to);
}
