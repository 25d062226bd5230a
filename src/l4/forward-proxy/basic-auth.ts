import { authorizationCredentials, decodeBasic, headerValues } from '../../consumers/admit.js';
import type { Consumer, ConsumerRegistry } from '../../consumers/consumer.js';

/** The challenge of a 407 answer (RFC 9110 §11.7.1, RFC 7617 §2.1). */
export const PROXY_CHALLENGE = 'Basic realm="portico", charset="UTF-8"';

export type ProxyAuthResult =
  | { ok: true; consumer: Consumer }
  | { ok: false; status: 400 | 403 | 407; reason: string };

/**
 * `auth: basic` on a forward-proxy listener: `Proxy-Authorization: Basic
 * base64(id:secret)` (RFC 9110 §11.7.2, RFC 7617) checked against the
 * consumers with the same constant-time comparison as the `basic-auth`
 * middleware (ConsumerRegistry.authenticate). Missing, malformed or wrong
 * credentials: 407. More than one header: 400. A consumer with an
 * `ipAllow` list is refused (403) from other addresses, and a consumer
 * limited to `routes` is refused (403): the proxy is not one of its routes.
 */
export function checkProxyAuth(rawHeaders: readonly string[], consumers: ConsumerRegistry, clientIp: string): ProxyAuthResult {
  const values = headerValues(rawHeaders, 'proxy-authorization');
  if (values.length === 0) return { ok: false, status: 407, reason: 'credentials are required' };
  if (values.length > 1) return { ok: false, status: 400, reason: 'more than one Proxy-Authorization header' };
  const creds = authorizationCredentials(values[0]!.trim(), 'Basic');
  const basic = creds === undefined ? undefined : decodeBasic(creds);
  if (basic === undefined) return { ok: false, status: 407, reason: 'malformed Basic credentials' };
  const consumer = consumers.authenticate(basic.id, basic.secret);
  if (consumer === undefined) return { ok: false, status: 407, reason: 'invalid credentials' };
  if (consumer.routes !== null) return { ok: false, status: 403, reason: `consumer "${consumer.id}" is limited to routes` };
  if (consumer.ipAllow !== null && !consumer.ipAllow.has(clientIp)) {
    return { ok: false, status: 403, reason: `consumer "${consumer.id}" is not allowed from this address` };
  }
  return { ok: true, consumer };
}
