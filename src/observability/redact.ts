/**
 * Credentials kept out of access logs: values of credential query
 * parameters, and the userinfo of URLs (RFC 3986 §3.2.1: `user:password@`).
 * What is not a credential is kept byte for byte; escaping for JSON is the
 * writer's job (access-log.ts).
 */

export const MASK = '***';

/** Lower-cased, percent-decoded parameter names whose values are masked. */
export type MaskedNames = ReadonlySet<string>;

export function maskedNames(names: Iterable<string>): MaskedNames {
  const set = new Set<string>();
  for (const n of names) set.add(n.toLowerCase());
  return set;
}

/**
 * A query (without its leading `?`) with the value of every parameter named
 * in `names` replaced by `***`.
 *
 * Parameters are split on `&` (the WHATWG URL form). A name is compared
 * after percent-decoding (`+` is a space) and lower-casing, so
 * `Access%5FToken` is `access_token`; a bracketed name (`user[password]`,
 * `token[]`) is masked when its base or any bracketed key is listed.
 * Servers that also split on `;` are covered too: inside a parameter that is
 * not masked as a whole, each `;`-separated `name=value` segment is checked
 * the same way. Values that are not masked have URL userinfo masked
 * (see maskUserinfo).
 */
export function maskQuery(query: string, names: MaskedNames): string {
  // Userinfo is looked for in each parameter only when the query holds a URL at all.
  const urls = hasUrl(query);
  let out = '';
  let start = 0;
  const n = query.length;
  while (start <= n) {
    let end = query.indexOf('&', start);
    if (end < 0) end = n;
    if (start > 0) out += '&';
    out += maskParam(query.slice(start, end), names, urls);
    start = end + 1;
  }
  return out;
}

function maskParam(part: string, names: MaskedNames, urls: boolean): string {
  const eq = part.indexOf('=');
  if (eq < 0) return part;
  if (isMasked(part.slice(0, eq), names)) return part.slice(0, eq + 1) + MASK;
  if (!urls && part.indexOf(';', eq) < 0) return part;
  if (part.indexOf(';', eq) >= 0) {
    // `a=1;token=x`: `;` may separate parameters for some servers.
    const segments = part.split(';');
    for (let i = 1; i < segments.length; i++) {
      const s = segments[i]!;
      const e = s.indexOf('=');
      if (e >= 0 && isMasked(s.slice(0, e), names)) segments[i] = s.slice(0, e + 1) + MASK;
    }
    return maskUserinfo(segments.join(';'));
  }
  return maskUserinfo(part);
}

function isMasked(rawName: string, names: MaskedNames): boolean {
  const name = decodeName(rawName).toLowerCase();
  if (names.has(name)) return true;
  const bracket = name.indexOf('[');
  if (bracket < 0) return false;
  if (names.has(name.slice(0, bracket))) return true;
  for (const m of name.slice(bracket).matchAll(/\[([^\]]*)\]/g)) if (names.has(m[1]!)) return true;
  return false;
}

/** `+` is a space, `%XX` its byte (as UTF-8; an invalid sequence leaves the name as sent). */
function decodeName(raw: string): string {
  if (raw.indexOf('%') < 0 && raw.indexOf('+') < 0) return raw;
  const spaced = raw.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(spaced);
  } catch {
    // Decode the valid escapes one by one.
    return spaced.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  }
}

/** `scheme://` as written, or percent-encoded (`scheme%3A%2F%2F`). */
// The lookbehind makes a scheme start only where no scheme character precedes it: each start is tried once, so a long
// run of letters costs linear time, not quadratic (found in review: 16,000 letters took 210 ms per field).
const URL_START = /(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*(:\/\/|%3a%2f%2f)/gi;
/** Where a written authority ends (RFC 3986 §3.2): a path, query or fragment, or what cannot be in a URL. */
const AUTHORITY_END = /[/?#\s"'<>\\]/;
/** Where a percent-encoded authority ends: the same, encoded or not, and a parameter separator. */
const ENCODED_AUTHORITY_END = /[/?#&\s"'<>\\]|%2f|%3f|%23|%26/i;
/** Up to the last `@` of a written authority. */
const LAST_AT = /^[^]*@/;
/** Up to the last `@` or `%40` of an encoded one. */
const LAST_ENCODED_AT = /^[^]*(?:@|%40)/i;

/** Whether `s` holds `://` or `%3A%2F%2F` (any case); the common case, neither, is one or two indexOf. */
function hasUrl(s: string): boolean {
  return s.indexOf('://') >= 0 || (s.indexOf('%') >= 0 && s.search(/%3a%2f%2f/i) >= 0);
}

/**
 * `s` with the userinfo of every URL in it replaced by `***`:
 * `https://user:pass@host/` → `https://***@host/`, also when the URL is
 * percent-encoded (`https%3A%2F%2Fuser%3Apass%40host` →
 * `https%3A%2F%2F***%40host`). Returns `s` itself when it holds no
 * `://` or `%3A%2F%2F`.
 */
export function maskUserinfo(s: string): string {
  if (!hasUrl(s)) return s;
  let out = '';
  let last = 0;
  URL_START.lastIndex = 0;
  for (let m = URL_START.exec(s); m !== null; m = URL_START.exec(s)) {
    const encoded = m[1]!.length > 3;
    const from = m.index + m[0].length;
    const rest = s.slice(from);
    const stop = rest.search(encoded ? ENCODED_AUTHORITY_END : AUTHORITY_END);
    const authority = stop < 0 ? rest : rest.slice(0, stop);
    const at = (encoded ? LAST_ENCODED_AT : LAST_AT).exec(authority);
    if (at === null) continue;
    // Keep the `@` (or `%40`) itself: `***@host`.
    const atLength = at[0].endsWith('@') ? 1 : 3;
    out += s.slice(last, from) + MASK;
    last = from + at[0].length - atLength;
    URL_START.lastIndex = last;
  }
  return last === 0 ? s : out + s.slice(last);
}
