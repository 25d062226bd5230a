import { IpSet } from '../net/ip-set.js';
import type { StateStore } from '../state/store.js';
import type { ConnectionMiddlewareConfig } from '../config/schemas/l4.js';

/** Why a connection was refused before anything was dialled (counted, and logged at debug). */
export type RefusalReason = 'ip-restriction' | 'rate-limit' | 'max-connections' | 'max-connections-per-ip' | 'proxy-protocol';

/**
 * A listener's connection middlewares, compiled: `check(ip)` answers
 * `null` (admitted) or why not. Synchronous with the memory store; a
 * promise with a shared one (Redis), whose buckets HTTP rate limits share.
 */
export interface Admission {
  check(ip: string): RefusalReason | null | Promise<RefusalReason | null>;
}

/** No middlewares: every connection passes. */
export const ADMIT_ALL: Admission = { check: () => null };

/**
 * Compiles `middlewares:` of an L4 listener. Order matters as written:
 * an ip-restriction before a rate limit keeps refused addresses from
 * spending tokens. Bucket keys are `cl:<listener>.<n>:<ip or *>`.
 */
export function compileAdmission(listener: string, middlewares: readonly ConnectionMiddlewareConfig[], state: StateStore): Admission {
  if (middlewares.length === 0) return ADMIT_ALL;
  const steps = middlewares.map((m, n): ((ip: string) => RefusalReason | null | Promise<RefusalReason | null>) => {
    if ('ip-restriction' in m) {
      const o = m['ip-restriction'];
      const allow = o.allow === undefined || o.allow.length === 0 ? null : new IpSet(o.allow);
      const deny = o.deny === undefined || o.deny.length === 0 ? null : new IpSet(o.deny);
      return (ip) => ((deny !== null && deny.has(ip)) || (allow !== null && !allow.has(ip)) ? 'ip-restriction' : null);
    }
    const { rate, burst, key } = m['rate-limit'];
    const prefix = connectionLimitPrefix(listener, n);
    return (ip) => {
      const r = state.takeToken(prefix + (key === 'ip' ? ip : '*'), rate, burst);
      if (r instanceof Promise) return r.then((res) => (res.allowed ? null : 'rate-limit'));
      return r.allowed ? null : 'rate-limit';
    };
  });
  return {
    check(ip) {
      for (let i = 0; i < steps.length; i++) {
        const r = steps[i]!(ip);
        if (r instanceof Promise) return r.then((res) => (res !== null ? res : runFrom(steps, i + 1, ip)));
        if (r !== null) return r;
      }
      return null;
    },
  };
}

/** Where the rate limit at `middlewares[n]` of L4 listener `listener` keeps its buckets, followed by the client IP or `*`. */
export function connectionLimitPrefix(listener: string, n: number): string {
  return `cl:${listener}.${n}:`;
}

async function runFrom(steps: readonly ((ip: string) => RefusalReason | null | Promise<RefusalReason | null>)[], from: number, ip: string): Promise<RefusalReason | null> {
  for (let i = from; i < steps.length; i++) {
    const r = await steps[i]!(ip);
    if (r !== null) return r;
  }
  return null;
}
