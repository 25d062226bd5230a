import type tls from 'node:tls';
import { hostPatternMatches } from '../net/host-pattern.js';
import type { TunnelListenerConfig } from '../config/schemas/tunnel.js';
import { verifyProof } from './auth.js';
import { compileCodePatterns, compilePortRanges } from './code-pattern.js';
import type { ServiceAnnouncement } from './protocol.js';
import type { AgentAuthority, AgentGrant } from './session.js';

/**
 * A tunnel listener's `agents:` as an authority: an agent proves its id
 * with its token (challenge–response) or, without a token, with a client
 * certificate whose subject CN is the id; then may register the codes,
 * ports and hosts its entry and the listener allow.
 */
export class TunnelPolicy implements AgentAuthority {
  private readonly agents = new Map<string, { token: string | undefined; grant: AgentGrant }>();

  constructor(config: TunnelListenerConfig) {
    const hostPatterns = config.http?.hosts ?? [];
    for (const a of config.agents) {
      const codes = compileCodePatterns(a.codes);
      const ports = compilePortRanges(a.allowPorts);
      const check = (s: ServiceAnnouncement): string | null => {
        if (!codes(s.code)) return `code "${s.code}" is not allowed for agent ${a.id}`;
        if (s.remotePort !== undefined && !ports(s.remotePort)) return `port ${s.remotePort} is outside this agent's allowPorts`;
        for (const h of s.hosts) {
          if (config.http === undefined) return 'this tunnel listener takes no hosts (it has no http: block)';
          if (!hostPatterns.some((p) => hostPatternMatches(p, h))) return `host "${h}" is outside the tunnel's http.hosts`;
        }
        return null;
      };
      this.agents.set(a.id, { token: a.token, grant: { id: a.id, check } });
    }
  }

  authenticate(id: string, nonce: string, proof: string, socket: tls.TLSSocket): AgentGrant | null {
    const agent = this.agents.get(id);
    if (agent === undefined) {
      // Spend the same work as a known id, so timing does not tell ids apart.
      verifyProof('portico-unknown-agent-token', nonce, id, proof);
      return null;
    }
    if (agent.token !== undefined) return verifyProof(agent.token, nonce, id, proof) ? agent.grant : null;
    // mTLS: the handshake verified the chain (clientAuth); the certificate must name this agent.
    if (!socket.authorized) return null;
    const cn = socket.getPeerCertificate()?.subject?.CN as string | string[] | undefined;
    return (Array.isArray(cn) ? cn[cn.length - 1] : cn) === id ? agent.grant : null;
  }
}
