import { configSchema, type RouteConfig, type UpstreamConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { TargetRegistry } from '../runtime/target-registry.js';
import { MiddlewareChain, type ClaimedHosts, type RouteRuntime } from '../snapshot/snapshot.js';
import { Upstream } from '../upstream/upstream.js';
import type { HostClaimTable, Registration } from './hub.js';

/** The upstream protocol a claimed host speaks to its agents: gRPC needs HTTP/2 (cleartext: the tunnel is the transport). */
const PROTOCOL_OF = { http: 'http1', grpc: 'h2c' } as const;

/**
 * The implicit upstream and route of one service code whose agents claim
 * hosts: `tunnel:<code>` (no config name has a colon), targets
 * `{ tunnel: <code> }` (every live registration of the code, balanced as
 * any upstream), default upstream settings; made with the first claim of
 * the code, released with its last.
 */
class CodeRoute {
  readonly holders = new Set<Registration>();
  readonly route: RouteRuntime;
  constructor(
    readonly code: string,
    readonly type: 'http' | 'grpc',
    listener: string,
    targets: TargetRegistry,
    logger: Logger,
  ) {
    const name = `tunnel:${code}`;
    // Parsed through the config schema, so every default is the one a configured upstream and route get.
    const parsed = configSchema.parse({
      upstreams: [{ name: 'claimed', protocol: PROTOCOL_OF[type], targets: [{ tunnel: code }] }],
      routes: [{ name: 'claimed', listener, upstream: 'claimed' }],
    });
    const upstreamConfig: UpstreamConfig = { ...parsed.upstreams[0]!, name };
    const routeConfig: RouteConfig = { ...parsed.routes[0]!, name, upstream: name };
    targets.pin(name);
    const upstream = new Upstream(upstreamConfig, targets, name);
    upstream.state.configure(upstream.plan, logger);
    this.route = {
      name,
      config: routeConfig,
      chain: new MiddlewareChain([]),
      // The agent's service is a virtual host of its own name: it sees the host the client asked for.
      preserveHost: true,
      upstream,
      policies: null,
      respond: undefined,
      endpoint: undefined,
    };
  }
}

/** One HTTP listener's claimed hosts (what its requests consult when no configured route matches). */
export class ListenerClaims implements ClaimedHosts {
  readonly hosts = new Map<string, CodeRoute>();
  match(host: string): RouteRuntime | undefined {
    return this.hosts.get(host)?.route;
  }
}

/**
 * The HTTP hosts tunnel agents claim, per HTTP listener, for the whole
 * gateway (kept across reloads, like the registrations themselves).
 *
 * Contract: a host belongs to one service code at a time; every
 * registration of that code claiming it shares it (the route balances over
 * all of the code's registrations). A claim is all-or-nothing for one
 * registration's hosts. Configured routes win: the HTTP listener asks here
 * only when its router found nothing (http/handler.ts, match), and once
 * the last claimant leaves the host answers as it did before.
 */
export class HostClaims implements HostClaimTable {
  private readonly listeners = new Map<string, ListenerClaims>();
  private readonly codes = new Map<string, CodeRoute>();
  /** Where each registration's hosts are claimed, and which (as they were when claimed). */
  private readonly claimed = new Map<Registration, { listener: string; hosts: readonly string[] }>();

  constructor(
    private readonly targets: TargetRegistry,
    private readonly logger: Logger,
  ) {}

  /** The claims of HTTP listener `name` (made on first use: a snapshot compiled before any claim holds it). */
  forListener(name: string): ListenerClaims {
    let l = this.listeners.get(name);
    if (l === undefined) {
      l = new ListenerClaims();
      this.listeners.set(name, l);
    }
    return l;
  }

  /** Claims every host of `r.service` on `listener`; null when done, else why not (nothing is claimed then). */
  claim(listener: string, r: Registration): string | null {
    const { type, hosts } = r.service;
    if (hosts.length === 0) return null;
    if (type !== 'http' && type !== 'grpc') return `hosts need a service of type http or grpc, not ${type}`;
    const claims = this.forListener(listener);
    for (const h of hosts) {
      const owner = claims.hosts.get(h);
      if (owner !== undefined && owner.code !== r.code) return `host "${h}" taken by code ${owner.code}`;
    }
    let code = this.codes.get(r.code);
    if (code !== undefined && code.type !== type) return `code ${r.code} is served as ${code.type} on this gateway's hosts, not ${type}`;
    if (code === undefined) {
      code = new CodeRoute(r.code, type, listener, this.targets, this.logger);
      this.codes.set(r.code, code);
    }
    code.holders.add(r);
    this.claimed.set(r, { listener, hosts: [...hosts] });
    for (const h of hosts) claims.hosts.set(h, code);
    return null;
  }

  /** Lets go of `r`'s hosts: a host no other registration of its code claims answers as before. */
  release(r: Registration): void {
    const held = this.claimed.get(r);
    if (held === undefined) return;
    this.claimed.delete(r);
    const { listener } = held;
    const code = this.codes.get(r.code);
    if (code === undefined) return;
    code.holders.delete(r);
    const claims = this.forListener(listener);
    for (const h of held.hosts) {
      if (claims.hosts.get(h) !== code) continue;
      let shared = false;
      for (const other of code.holders) {
        const o = this.claimed.get(other);
        if (o !== undefined && o.listener === listener && o.hosts.includes(h)) shared = true;
      }
      if (!shared) claims.hosts.delete(h);
    }
    if (code.holders.size === 0) {
      this.codes.delete(r.code);
      this.targets.unpin(code.route.name);
    }
  }

  /** Claimed hosts now, by listener (admin status, tests). */
  list(): Record<string, Record<string, string>> {
    const out: Record<string, Record<string, string>> = {};
    for (const [name, l] of this.listeners) if (l.hosts.size > 0) out[name] = Object.fromEntries([...l.hosts].map(([h, c]) => [h, c.code]));
    return out;
  }
}
