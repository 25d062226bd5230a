import type { KeyAuthOptions } from '../config/schemas/middlewares.js';
import { GatewayError } from '../errors.js';
import { admit, headerValues, withoutHeader } from '../consumers/admit.js';
import type { RequestContext, Middleware } from '../snapshot/snapshot.js';
import type { MiddlewareCompileContext } from '../snapshot/snapshot.js';

const CHALLENGE = 'ApiKey realm="portico"';

/**
 * Removes every `name=…` parameter from a query (`?a=1&key=x` → `?a=1`),
 * leaving the others exactly as sent. Returns the first value (decoded) and
 * the new query.
 */
export function takeQueryParam(query: string, name: string): { value: string | undefined; query: string } {
  if (query.length <= 1) return { value: undefined, query };
  let value: string | undefined;
  const kept: string[] = [];
  for (const part of query.slice(1).split('&')) {
    const eq = part.indexOf('=');
    const rawName = eq < 0 ? part : part.slice(0, eq);
    let decoded: string | undefined;
    try {
      decoded = decodeURIComponent(rawName.replace(/\+/g, ' '));
    } catch {
      decoded = undefined;
    }
    if (decoded === name) {
      if (value === undefined && eq >= 0) {
        try {
          value = decodeURIComponent(part.slice(eq + 1).replace(/\+/g, ' '));
        } catch {
          value = '';
        }
      }
      continue;
    }
    if (part !== '') kept.push(part);
  }
  return { value, query: kept.length === 0 ? '' : `?${kept.join('&')}` };
}

/**
 * `key-auth`: an API key from a header (default `X-API-Key`) or, when
 * `query` is set, a query parameter, mapped to the consumer whose `keys`
 * list it. The key is removed from what goes upstream (the header from the
 * upstream headers, the parameter from the query). Missing or unknown key:
 * 401 with `WWW-Authenticate: ApiKey realm="portico"`; then the consumer's
 * routes / ipAllow (403).
 */
export function keyAuth(options: KeyAuthOptions, compile: MiddlewareCompileContext): Middleware {
  const registry = compile.consumers;
  const header = options.header;
  const param = options.query;
  return {
    name: 'key-auth',
    onRequest(ctx: RequestContext) {
      const values = headerValues(ctx.req.rawHeaders, header);
      if (values.length > 1) throw new GatewayError('BAD_REQUEST', `more than one ${header} header`);
      let key = values.length === 1 ? values[0]!.trim() : undefined;
      if (param !== undefined) {
        const taken = takeQueryParam(ctx.query, param);
        ctx.query = taken.query;
        key ??= taken.value;
      }
      ctx.upstreamHeaders = withoutHeader(ctx.upstreamHeaders, header);
      if (key === undefined || key === '') {
        throw new GatewayError('UNAUTHORIZED', 'an API key is required', { headers: { 'www-authenticate': CHALLENGE } });
      }
      const consumer = key.length > 512 ? undefined : registry.byApiKey(key);
      if (consumer === undefined) {
        throw new GatewayError('UNAUTHORIZED', 'invalid API key', { headers: { 'www-authenticate': CHALLENGE } });
      }
      admit(ctx, consumer);
    },
  };
}
