import { z } from 'zod';
import { GatewayError } from '../errors.js';
import { IpSet } from '../http/ip.js';
import type { RequestContext } from '../http/context.js';
import { cidr } from '../config/values.js';
import type { Middleware } from './middleware.js';

/** `ip-restriction:` options. */
export const ipRestrictionOptions = z
  .strictObject({
    /** Only these addresses/CIDRs may pass (when set). */
    allow: z.array(cidr).optional(),
    /** These addresses/CIDRs never pass; deny wins over allow. */
    deny: z.array(cidr).optional(),
  })
  .refine((o) => (o.allow?.length ?? 0) + (o.deny?.length ?? 0) > 0, 'needs a non-empty allow or deny list');

export type IpRestrictionOptions = z.output<typeof ipRestrictionOptions>;

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
