/**
 * Splits a request target into path and query, resolving `.` and `..`
 * segments (RFC 3986 §5.2.4) so that `/public/../admin` cannot reach a route
 * meant for `/admin` while matching `/public`. Percent-encoding is left as
 * sent. Returns undefined for a target that is not origin-form or
 * absolute-form (RFC 9112 §3.2), except `*`, which is kept as the path.
 */
export function splitTarget(target: string): { path: string; query: string } | undefined {
  // A request target carries no fragment (RFC 9112 §3.2; RFC 9110 §7.1): `#` is a client error, not a path character.
  if (target.includes('#')) return undefined;
  let start = 0;
  if (target.charCodeAt(0) !== 47 /* / */) {
    if (target === '*') return { path: '*', query: '' };
    const scheme = schemeLength(target);
    if (scheme < 0) return undefined;
    const slash = target.indexOf('/', scheme);
    const q = target.indexOf('?', scheme);
    if (slash < 0 || (q >= 0 && q < slash)) return { path: '/', query: q >= 0 ? target.slice(q) : '' };
    start = slash;
  }
  const q = target.indexOf('?', start);
  let path = q < 0 ? (start === 0 ? target : target.slice(start)) : target.slice(start, q);
  const query = q < 0 ? '' : target.slice(q);
  if (path.includes('/.') || path.includes('%2e') || path.includes('%2E')) path = removeDotSegments(path);
  return { path, query };
}

function removeDotSegments(path: string): string {
  const out: string[] = [];
  const segments = path.split('/');
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    const lower = s.toLowerCase();
    if (lower === '.' || lower === '%2e') {
      if (i === segments.length - 1) out.push('');
    } else if (lower === '..' || lower === '%2e%2e' || lower === '.%2e' || lower === '%2e.') {
      out.pop();
      if (i === segments.length - 1) out.push('');
    } else {
      out.push(s);
    }
  }
  return '/' + out.join('/');
}

/**
 * The authority of an absolute-form request target (`http://host:port/…`,
 * RFC 9112 §3.2.2), as written ('' when empty); undefined for any other
 * form. It ends at the first `/` or `?` (absolute-URI has no fragment, so
 * a `#` stays in it and makes it invalid); it is not validated here (host.ts
 * `parseAuthority`).
 */
export function absoluteAuthority(target: string): string | undefined {
  if (target.charCodeAt(0) === 47 /* / */) return undefined;
  const start = schemeLength(target);
  if (start < 0) return undefined;
  let end = start;
  while (end < target.length) {
    const c = target.charCodeAt(end);
    if (c === 47 || c === 63 /* ? */) break;
    end++;
  }
  return target.slice(start, end);
}

/** The length of a leading `http://` or `https://` (schemes are case-insensitive, RFC 3986 §3.1), or -1. */
function schemeLength(target: string): number {
  const head = target.slice(0, 8).toLowerCase();
  return head.startsWith('http://') ? 7 : head === 'https://' ? 8 : -1;
}
