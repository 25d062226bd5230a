/**
 * Host-name patterns, the one matcher behind HTTP route hosts
 * (http/router.ts), `tls` listener SNI routes (l4/tls/sni-router.ts) and
 * forward-proxy destination rules (l4/forward-proxy/destination-policy.ts).
 *
 * A pattern is a name, matched exactly, or `*.suffix`, which matches any
 * name with at least one more label (`a.example.com`, `a.b.example.com`,
 * as nginx's `*.` server names), never `example.com` itself. Names and
 * patterns are compared as given: callers lower-case them and drop a
 * trailing dot first. Certificate selection is not this: a certificate's
 * `*.` stands for exactly one label (RFC 6125 §6.4.3, tls/certificates.ts).
 */

/** The suffix (`.example.com`) a `*.example.com` pattern matches under; null for an exact name. Compile it once. */
export function wildcardSuffix(pattern: string): string | null {
  return pattern.startsWith('*.') ? pattern.slice(1) : null;
}

/** Whether `name` lies under a wildcard's `suffix` (from wildcardSuffix), with at least one label before it. */
export function matchesSuffix(suffix: string, name: string): boolean {
  return name.length > suffix.length && name.endsWith(suffix);
}

/** Whether `name` matches `pattern` (an exact name, or `*.suffix`). */
export function hostPatternMatches(pattern: string, name: string): boolean {
  const suffix = wildcardSuffix(pattern);
  return suffix === null ? name === pattern : matchesSuffix(suffix, name);
}
