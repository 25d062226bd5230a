import { z } from 'zod';
import { parseDuration } from './duration.js';
import { parseCidr } from '../net/ip-set.js';
import { parseHostPort } from '../net/address.js';

/**
 * Small value schemas shared by the config schema and the schemas of
 * consumers, the token endpoint, the middlewares and the upstream policies.
 * They live apart from config/schema.ts because that module imports those
 * schemas (importing it back would be a cycle).
 */

/** Numbers may be written as numbers or, after `${ENV}` interpolation, as numeric strings. */
const numeric = (v: unknown) => (typeof v === 'string' && /^\s*-?\d+(\.\d+)?\s*$/.test(v) ? Number(v) : v);

export const int = (min: number, max: number) =>
  z.preprocess(numeric, z.number('must be a number').int('must be a whole number').min(min, `must be >= ${min}`).max(max, `must be <= ${max}`));

export const bool = z.preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.boolean('must be true or false'));

/** A number in [min, max]; `exclusiveMin` makes the lower bound strict (`> 0`). */
export const number = (min: number, max: number, exclusiveMin = false) =>
  z.preprocess(
    numeric,
    exclusiveMin
      ? z.number('must be a number').gt(min, `must be > ${min}`).max(max, `must be <= ${max}`)
      : z.number('must be a number').min(min, `must be >= ${min}`).max(max, `must be <= ${max}`),
  );

/** A duration (`500ms`, `2s`, `1m`, `1h`; a bare number is ms) as milliseconds, within [minMs, maxMs]. */
export const duration = (minMs: number, maxMs: number, text: string) =>
  z.union([z.string(), z.number()], `must be a duration such as ${text}`).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined || ms < minMs || ms > maxMs) {
      ctx.issues.push({ code: 'custom', input: v, message: `must be a duration from ${text}` });
      return z.NEVER;
    }
    return ms;
  });

/** An IPv4/IPv6 address or CIDR, checked with the same parser the data plane uses. */
export const cidr = z
  .string('must be an IP address or CIDR such as 10.0.0.0/8 or 2001:db8::/32')
  .refine((v) => parseCidr(v) !== undefined, 'is not a valid IP address or CIDR (e.g. 10.0.0.0/8 or 2001:db8::/32)');

export const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be a valid header name (RFC 9110 token)');
export const headerValue = z.string().regex(/^[^\r\n\0]*$/, 'must not contain CR, LF or NUL');

export const ROUTE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** A listener, upstream, route or consumer name. */
export const resourceName = z.string().regex(ROUTE_NAME, 'must be 1-63 letters, digits, "_", "." or "-", starting with a letter or digit');

/** `host:port`, `[v6]:port`; port 0 asks the OS for a free port. */
export const listenAddress = z.string().transform((v, ctx) => {
  const hp = parseHostPort(v);
  if (!hp) {
    ctx.issues.push({ code: 'custom', input: v, message: 'must be host:port, e.g. 127.0.0.1:8080 or [::1]:8080' });
    return z.NEVER;
  }
  return hp;
});

/** A TCP/UDP port number (1-65535). */
export const port = int(1, 65_535);
