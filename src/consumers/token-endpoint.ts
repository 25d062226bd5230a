import type { RequestContext } from '../http/context.js';
import type { ConsumerRegistry } from './consumer.js';
import type { TokenEndpointConfig } from './schema.js';
import { GatewayError } from '../errors.js';

/** The OAuth 2.0 client-credentials token endpoint (RFC 6749 §4.4). Implemented in issue 3. */
export function createTokenEndpoint(_config: TokenEndpointConfig, _consumers: ConsumerRegistry): (ctx: RequestContext) => void {
  return () => {
    throw new GatewayError('INTERNAL', 'token endpoint not implemented yet');
  };
}
