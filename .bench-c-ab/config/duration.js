const UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;
/**
 * Parses a duration such as `500ms`, `2s`, `1.5m` or `1h` into milliseconds.
 * A bare number (or digit string, e.g. from `${ENV}`) is taken as milliseconds. Returns undefined when the text is
 * not a duration.
 */
export function parseDuration(value) {
    if (typeof value === 'number')
        return Number.isFinite(value) && value >= 0 ? Math.round(value) : undefined;
    const m = DURATION.exec(value.trim());
    if (!m)
        return undefined;
    return Math.round(Number(m[1]) * UNITS[m[2] ?? 'ms']);
}
//# sourceMappingURL=duration.js.map