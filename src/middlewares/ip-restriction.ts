import type { IpRestrictionOptions } from '../config/schemas/middlewares.js';
import { GatewayError } from '../errors.js';
import { IpSet } from '../net/ip-set.js';
import type { RequestContext, Middleware } from '../snapshot/snapshot.js';

/**
 * `ip-restriction`: allow and deny lists of IPv4/IPv6 addresses and CIDRs
 * checked against the client address (ctx.clientIp, which honours the
 * listener's trustedProxies). Deny wins; with an allow list, anything not in
 * it is denied. Denied: 403.
 */
export function ipRestriction(options: IpRestrictionOptions): Middleware {
  const allow = options.allow === undefined || options.allow.length === 0 ? null : new IpSet(options.allow);
  const deny = options.deny === undefined || options.deny.length === 0 ? null : new IpSet(options.deny);
  return {
    name: 'ip-restriction',
    onRequest(ctx: RequestContext) {
      const ip = ctx.clientIp;
      if ((deny !== null && deny.has(ip)) || (allow !== null && !allow.has(ip))) {
        throw new GatewayError('FORBIDDEN', 'client address not allowed');
      }
    },
  };
}
