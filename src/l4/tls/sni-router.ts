import { matchesSuffix, wildcardSuffix } from '../../net/host-pattern.js';

/**
 * Picks a `tls` listener's upstream by the client's SNI host name:
 *
 * 1. a route whose `sni` is exactly the name;
 * 2. else the `*.suffix` route with the longest suffix that the name ends
 *    with: `*.example.com` matches `a.example.com` and `a.b.example.com`
 *    (any number of labels, as nginx's `*.` server names), never
 *    `example.com` itself;
 * 3. else the listener's `upstream` (also for a client that sent no SNI);
 * 4. else none: the connection is closed.
 *
 * Names are compared lower-case without a trailing dot (RFC 4343); the
 * schema lower-cases patterns. Among equal patterns the first in config
 * order wins. Wildcards here span several labels, unlike certificate names
 * (RFC 6125 §6.4.3, one label): routing only chooses a backend, which
 * still proves its own name in the handshake.
 */
export class SniRouter<T> {
  private readonly exact = new Map<string, T>();
  /** Wildcard suffixes (`.example.com` for `*.example.com`) → value, longest first. */
  private readonly wildcards: [string, T][] = [];
  private readonly fallback: T | undefined;

  constructor(routes: readonly { sni: string; value: T }[], fallback?: T) {
    const wild = new Map<string, T>();
    for (const r of routes) {
      const sni = normalize(r.sni);
      const suffix = wildcardSuffix(sni);
      if (suffix !== null) {
        if (!wild.has(suffix)) wild.set(suffix, r.value);
      } else if (!this.exact.has(sni)) this.exact.set(sni, r.value);
    }
    this.wildcards = [...wild].sort((a, b) => b[0].length - a[0].length);
    this.fallback = fallback;
  }

  /** The value for `sni` (null: the client sent none); undefined when nothing matches and there is no fallback. */
  pick(sni: string | null): T | undefined {
    if (sni === null || sni === '') return this.fallback;
    const name = normalize(sni);
    const hit = this.exact.get(name);
    if (hit !== undefined) return hit;
    for (const [suffix, value] of this.wildcards) if (matchesSuffix(suffix, name)) return value;
    return this.fallback;
  }
}

function normalize(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}
