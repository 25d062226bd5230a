import type { Pool } from 'undici';
import type { UpstreamConfig } from '../config/schema.js';
import type { RequestContext } from '../http/context.js';
import { createPicker } from './balancers/index.js';
import type { Picker } from './balancers/balancer.js';
import type { PoolRegistry } from './pool-registry.js';
import { Target } from './target.js';

/**
 * A named pool of targets, compiled from one `upstreams[]` entry: the
 * targets, the balancer's picker, and a keep-alive connection pool per
 * target. Immutable once built, apart from the targets' live counters.
 */
export class Upstream {
  readonly name: string;
  readonly targets: readonly Target[];
  readonly config: UpstreamConfig;
  /** The registry keys of the pools this upstream uses (see PoolRegistry.retain). */
  readonly poolKeys: ReadonlySet<string>;
  private readonly picker: Picker;
  private readonly pools: Map<Target, Pool>;
  private readonly hashKeyOf: ((ctx: RequestContext) => string | undefined) | null;

  constructor(config: UpstreamConfig, registry: PoolRegistry) {
    this.name = config.name;
    this.config = config;
    this.targets = config.targets.map((t) => new Target(t.address, t.weight));
    // Drained targets (weight 0) are left out of the picker; with none left, pick() finds nothing (503).
    this.picker = createPicker(config.balancer, this.targets.filter((t) => t.weight > 0));
    this.pools = new Map();
    const keys = new Set<string>();
    for (const t of this.targets) {
      const { key, pool } = registry.get(t.address, {
        connectTimeout: config.timeouts.connect,
        responseTimeout: config.timeouts.response,
        idleTimeout: config.timeouts.idle,
        maxConnections: config.maxConnections,
      });
      keys.add(key);
      this.pools.set(t, pool);
    }
    this.poolKeys = keys;
    this.hashKeyOf = config.balancer === 'consistent-hash' ? hashKeyExtractor(config.hashKey) : null;
  }

  /** Picks a target for this request; undefined when none is available. */
  pick(ctx: RequestContext): Target | undefined {
    return this.picker(this.hashKeyOf === null ? undefined : this.hashKeyOf(ctx));
  }

  poolFor(target: Target): Pool {
    return this.pools.get(target)!;
  }
}

/**
 * The consistent-hash key: `ip` (trusted client IP), `uri` (path and query
 * as received), `header:NAME` or `cookie:NAME`. A missing header or cookie
 * falls back to the client IP, as APISIX does.
 */
function hashKeyExtractor(spec: string): (ctx: RequestContext) => string | undefined {
  if (spec === 'ip') return (ctx) => ctx.clientIp;
  if (spec === 'uri') return (ctx) => ctx.path + ctx.query;
  if (spec.startsWith('header:')) {
    const name = spec.slice(7).toLowerCase();
    return (ctx) => {
      const v = ctx.req.headers[name];
      return (Array.isArray(v) ? v[0] : v) || ctx.clientIp;
    };
  }
  const cookie = spec.slice(7);
  return (ctx) => readCookie(ctx.req.headers.cookie, cookie) ?? ctx.clientIp;
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}
