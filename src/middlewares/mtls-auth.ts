import type { MtlsAuthOptions } from '../config/schemas/middlewares.js';
import { GatewayError } from '../errors.js';
import { admit, withoutHeader } from '../consumers/admit.js';
import { clientCertificate, type ClientCertificate } from '../tls/client-certificate.js';
import type { RequestContext, Middleware } from '../snapshot/snapshot.js';
import type { MiddlewareCompileContext } from '../snapshot/snapshot.js';

/** RFC 9110 §15.5.2 wants a challenge with every 401; no registered scheme asks for a client certificate, so this one only informs. */
const CHALLENGE = { 'www-authenticate': 'ClientCertificate realm="portico"' };

/**
 * The connection's TLS socket: a TLSSocket for HTTP/1.1, and for HTTP/2 the
 * session's socket proxy (one object per connection, unlike `req.socket`,
 * which is a proxy per stream), so the certificate is read once per connection.
 */
function tlsSocketOf(ctx: RequestContext): unknown {
  if (ctx.h2) return (ctx.req as unknown as { stream?: { session?: { socket?: unknown } } }).stream?.session?.socket;
  return ctx.req.socket;
}

/** The subject for a header value: the CN (else the first name), with anything outside printable ASCII percent-encoded. */
function headerSubject(cert: ClientCertificate): string {
  const subject = cert.subject !== '' ? cert.subject : (cert.names[0] ?? '');
  return subject.replace(/[^\x20-\x7e]|%/g, (c) => encodeURIComponent(c));
}

/**
 * `mtls-auth`: the client certificate of the TLS connection (mutual TLS,
 * on a listener with `tls.clientAuth: optional` or `require`).
 *
 * - no certificate presented: 401 UNAUTHORIZED;
 * - a certificate that did not verify against the listener's clientCa
 *   (expired, unknown CA, …): 403 FORBIDDEN naming OpenSSL's reason (with
 *   `clientAuth: require` such a client never gets past the handshake);
 * - `subjects` set and none of the certificate's names (CN, SAN values) in
 *   it: 403;
 * - the consumer listing one of those names in `tlsSubjects` is identified
 *   (then its routes / ipAllow apply, 403, and `X-Consumer-Id` goes
 *   upstream); with `consumer: required`, no such consumer: 403;
 * - `forwardHeader`: the subject CN goes upstream in that header; a copy
 *   sent by the client is removed first, whatever the outcome.
 */
export function mtlsAuth(options: MtlsAuthOptions, compile: MiddlewareCompileContext): Middleware {
  const registry = compile.consumers;
  const allowed = options.subjects === undefined ? null : new Set(options.subjects);
  const requireConsumer = options.consumer === 'required';
  const forward = options.forwardHeader;
  return {
    name: 'mtls-auth',
    onRequest(ctx: RequestContext) {
      if (forward !== undefined) ctx.upstreamHeaders = withoutHeader(ctx.upstreamHeaders, forward);
      const cert = clientCertificate(tlsSocketOf(ctx));
      if (cert === undefined) throw new GatewayError('UNAUTHORIZED', 'a client certificate is required', { headers: CHALLENGE });
      if (!cert.authorized) throw new GatewayError('FORBIDDEN', `client certificate not accepted: ${cert.error ?? 'not verified'}`);
      if (allowed !== null && !cert.names.some((n) => allowed.has(n))) {
        throw new GatewayError('FORBIDDEN', `client certificate "${cert.subject}" is not allowed on this route`);
      }
      const consumer = registry.byTlsSubject(cert.names);
      if (consumer !== undefined) admit(ctx, consumer);
      else if (requireConsumer) throw new GatewayError('FORBIDDEN', `no consumer for client certificate "${cert.subject}"`);
      if (forward !== undefined) ctx.upstreamHeaders.push(forward, headerSubject(cert));
    },
  };
}
