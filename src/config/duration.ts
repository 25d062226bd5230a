const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;

/**
 * Parses a duration such as `500ms`, `2s`, `1.5m` or `1h` into milliseconds.
 * A bare number (or digit string, e.g. from `${ENV}`) is taken as milliseconds. Returns undefined when the text is
 * not a duration, or when its value is not a safe whole number of milliseconds once rounded (a string of 400
 * digits is Infinity, not a duration).
 */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return value >= 0 ? safeMs(value) : undefined;
  const m = DURATION.exec(value.trim());
  if (!m) return undefined;
  return safeMs(Number(m[1]) * UNITS[m[2] ?? 'ms']!);
}

function safeMs(ms: number): number | undefined {
  const rounded = Math.round(ms);
  return Number.isSafeInteger(rounded) ? rounded : undefined;
}
