import { createHash, timingSafeEqual } from 'node:crypto';
import type { RelayListenerConfig } from '../../config/schemas/tunnel.js';
import { verifyProof } from '../auth.js';
import { compileCodePatterns, isValidCode } from '../code-pattern.js';
import type { ServiceAnnouncement } from '../protocol.js';
import type { AgentAuthority, AgentGrant } from '../session.js';

/**
 * Who may do what at a relay listener (docs/relay.md).
 *
 * Services (`services:`): a service connection's id IS the code it
 * registers. Its proof is checked against the token of EVERY entry whose
 * code pattern matches that code (no early exit, so timing does not tell
 * which entry, if any, matched); one good proof admits it. Its grant
 * allows exactly that one code, with no public port and no HTTP host.
 *
 * Clients (`clients:`): a token is compared, in constant time, with EVERY
 * entry's token; the code must be allowed by the `codes` of an entry whose
 * token matched. Whatever is wrong (unknown token, code not allowed), the
 * answer is the same: not allowed.
 */
export class RelayServicePolicy implements AgentAuthority {
  private readonly entries: { matches: (code: string) => boolean; token: string }[];

  constructor(config: RelayListenerConfig) {
    this.entries = config.services.map((s) => ({ matches: compileCodePatterns([s.code]), token: s.token }));
  }

  authenticate(id: string, nonce: string, proof: string): AgentGrant | null {
    let ok = false;
    let tried = 0;
    if (isValidCode(id)) {
      for (const e of this.entries) {
        if (!e.matches(id)) continue;
        tried++;
        // `|` not `||`: every matching entry's proof is computed.
        ok = verifyProof(e.token, nonce, id, proof) || ok;
      }
    }
    // Spend the work of one check when nothing matched, so an unknown code looks like a wrong token.
    if (tried === 0) verifyProof('portico-unknown-relay-service-token', nonce, id, proof);
    return ok ? serviceGrant(id) : null;
  }
}

/** A relay service may register its own code, as a plain stream service. */
function serviceGrant(code: string): AgentGrant {
  return {
    id: code,
    check(s: ServiceAnnouncement): string | null {
      if (s.code !== code) return `a relay service registers its own code only ("${code}")`;
      if (s.remotePort !== undefined) return 'a relay opens no remote ports';
      if (s.hosts.length > 0) return 'a relay takes no hosts';
      if (s.type === 'udp') return 'a relay carries streams, not udp';
      return null;
    },
  };
}

export class RelayClientPolicy {
  /** SHA-256 of each entry's token (equal lengths, so every comparison is a timingSafeEqual), and its codes. */
  private readonly entries: { digest: Buffer; codes: (code: string) => boolean }[];

  constructor(config: RelayListenerConfig) {
    this.entries = config.clients.map((c) => ({ digest: digest(c.token), codes: compileCodePatterns(c.codes) }));
  }

  /** Whether `token` may reach `code`: one boolean for every way of being refused. */
  allows(token: string, code: string): boolean {
    const given = digest(token);
    let allowed = false;
    for (const e of this.entries) {
      const same = timingSafeEqual(given, e.digest);
      allowed = (same && e.codes(code)) || allowed;
    }
    return allowed;
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
