import type { BasicAuthOptions } from '../config/schemas/middlewares.js';
import { GatewayError } from '../errors.js';
import { admit, authorizationCredentials, decodeBasic, headerValues, withoutHeader } from '../consumers/admit.js';
import type { RequestContext, Middleware } from '../snapshot/snapshot.js';
import type { MiddlewareCompileContext } from '../snapshot/snapshot.js';

/**
 * `basic-auth` (RFC 7617): `Authorization: Basic base64(id:secret)` checked
 * against the consumers' ids and secrets (constant-time). Missing or wrong:
 * 401 with `WWW-Authenticate: Basic realm="…", charset="UTF-8"`; then the
 * consumer's routes / ipAllow (403). The header is not sent upstream unless
 * `hideCredentials: false`.
 */
export function basicAuth(options: BasicAuthOptions, compile: MiddlewareCompileContext): Middleware {
  const registry = compile.consumers;
  const challenge = { 'www-authenticate': `Basic realm="${options.realm}", charset="UTF-8"` };
  return {
    name: 'basic-auth',
    onRequest(ctx: RequestContext) {
      const values = headerValues(ctx.req.rawHeaders, 'authorization');
      if (values.length === 0) throw new GatewayError('UNAUTHORIZED', 'credentials are required', { headers: challenge });
      if (values.length > 1) throw new GatewayError('BAD_REQUEST', 'more than one Authorization header');
      const creds = authorizationCredentials(values[0]!.trim(), 'Basic');
      const basic = creds === undefined ? undefined : decodeBasic(creds);
      if (basic === undefined) throw new GatewayError('UNAUTHORIZED', 'malformed Basic credentials', { headers: challenge });
      const consumer = registry.authenticate(basic.id, basic.secret);
      if (consumer === undefined) throw new GatewayError('UNAUTHORIZED', 'invalid credentials', { headers: challenge });
      admit(ctx, consumer);
      if (options.hideCredentials) ctx.upstreamHeaders = withoutHeader(ctx.upstreamHeaders, 'authorization');
    },
  };
}
