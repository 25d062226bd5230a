/** An entity tag for a config revision (RFC 9110 §8.8.3): a strong, quoted tag. */
export function etagOf(revision: string): string {
  return `"${revision}"`;
}

/**
 * What `If-Match` (RFC 9110 §13.1.1) asks of a write: `any` (absent, or
 * `*`: the document always exists), or the revision it names when that is
 * `current`, or `stale`. Comparison is strong: a weak tag (`W/"…"`) never
 * matches.
 */
export function ifMatch(header: string | undefined, current: string): { kind: 'any' } | { kind: 'match'; revision: string } | { kind: 'stale' } {
  if (header === undefined || header.trim() === '') return { kind: 'any' };
  if (header.trim() === '*') return { kind: 'any' };
  for (const raw of header.split(',')) {
    const tag = raw.trim();
    if (tag.startsWith('W/')) continue;
    if (tag.length >= 2 && tag.startsWith('"') && tag.endsWith('"') && tag.slice(1, -1) === current) return { kind: 'match', revision: current };
  }
  return { kind: 'stale' };
}
