import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';

/** JWKS documents kept at most (one per distinct URL and timeout); the least recently compiled one goes first. */
const KEPT = 100;

/**
 * Remote JWKS key sets kept across config reloads, by URL and fetch
 * timeout: a reload that keeps a `jwksUrl` keeps its fetched keys (jose's
 * cache: up to 10 minutes, refetched at most every 30 s on an unknown
 * `kid`), so a config change does not refetch every key set, and a JWKS
 * endpoint that is down at reload time does not fail tokens signed with
 * keys already known.
 */
export class JwksCache {
  private readonly sets = new Map<string, JWTVerifyGetKey>();

  /** The key set of `url`, fetched within `timeoutMs` when jose needs it. */
  get(url: string, timeoutMs: number): JWTVerifyGetKey {
    const key = `${timeoutMs}|${url}`;
    let set = this.sets.get(key);
    if (set !== undefined) {
      // Most recently used last.
      this.sets.delete(key);
    } else {
      set = createRemoteJWKSet(new URL(url), { timeoutDuration: timeoutMs, cooldownDuration: 30_000, cacheMaxAge: 600_000 });
      if (this.sets.size >= KEPT) this.sets.delete(this.sets.keys().next().value!);
    }
    this.sets.set(key, set);
    return set;
  }
}
