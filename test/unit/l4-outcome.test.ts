// The one mapping of L4 errors: GatewayError code → the access log's
// `outcome` (values that predate the codes, kept), refusal reasons ↔ codes,
// socket-level dial failures → retryable or not, and the sealed listener's
// wire answers.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ERROR_CODES, GatewayError, type ErrorCode } from '../../src/errors.js';
import { DialError } from '../../src/l4/dial-error.js';
import { fromDialError, outcomeOf, refusalError, refusalReasonOf } from '../../src/l4/outcome.js';
import { fromSealedError, sealedStatus, SealedError } from '../../src/l4/sealed/errors.js';

describe('L4 outcomes', () => {
  it('keeps the outcome values the access log always had', () => {
    const cases: [ErrorCode, string, string][] = [
      ['FORBIDDEN', 'tcp', 'ip-restriction'],
      ['RATE_LIMITED', 'tcp', 'rate-limit'],
      ['CONNECTION_LIMIT', 'tcp', 'max-connections'],
      ['CONNECTION_LIMIT_PER_IP', 'tls', 'max-connections-per-ip'],
      ['PROXY_PROTOCOL_ERROR', 'tcp', 'proxy-protocol'],
      ['UPSTREAM_CONNECT_REFUSED', 'tcp', 'DIAL_FAILED'],
      ['UPSTREAM_TLS_ERROR', 'tcp', 'DIAL_FAILED'],
      ['UPSTREAM_CONNECT_TIMEOUT', 'tcp', 'DIAL_TIMEOUT'],
      ['NO_TARGET', 'tcp', 'NO_TARGET'],
      ['ROUTE_NOT_FOUND', 'tls', 'NO_ROUTE'],
      ['DOWNSTREAM_TLS_ERROR', 'tls', 'TLS_HANDSHAKE_FAILED'],
      ['BAD_CLIENT_HELLO', 'tls', 'BAD_CLIENT_HELLO'],
      ['HANDSHAKE_TIMEOUT', 'tls', 'HANDSHAKE_TIMEOUT'],
      ['DOWNSTREAM_ABORTED', 'tls', 'CLIENT_CLOSED'],
      ['DOWNSTREAM_ABORTED', 'sealed', 'CLOSED'],
      ['BAD_SEALED_LINE', 'sealed', 'BAD_LINE'],
      ['SEALED_ADDRESS_INVALID', 'sealed', 'BAD_SEAL'],
      ['SEALED_ADDRESS_EXPIRED', 'sealed', 'EXPIRED'],
      ['DESTINATION_DENIED', 'sealed', 'DENIED'],
      ['DESTINATION_DENIED', 'forward-proxy', 'FORBIDDEN'],
      ['DESTINATION_UNRESOLVED', 'forward-proxy', 'DNS_FAILED'],
      ['DESTINATION_RESOLVE_TIMEOUT', 'forward-proxy', 'DNS_TIMEOUT'],
      ['UPSTREAM_RESPONSE_TIMEOUT', 'forward-proxy', 'RESPONSE_TIMEOUT'],
      ['UPSTREAM_RESET', 'forward-proxy', 'UPSTREAM_ERROR'],
      ['UPSTREAM_RESET', 'udp', 'UPSTREAM_ERROR'],
      ['NO_TARGET', 'udp', 'no-target'],
      ['SESSION_LIMIT', 'udp', 'max-sessions'],
    ];
    for (const [code, protocol, outcome] of cases) assert.equal(outcomeOf(new GatewayError(code), protocol), outcome, `${code} on ${protocol}`);
    assert.equal(outcomeOf(null, 'tcp'), 'ok');
  });

  it('every code has an outcome (its own name unless the table says otherwise)', () => {
    for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) assert.match(outcomeOf(new GatewayError(code), 'tcp'), /^[A-Za-z_-]+$/);
  });

  it('refusal reasons and codes map both ways', () => {
    for (const reason of ['ip-restriction', 'rate-limit', 'max-connections', 'max-connections-per-ip', 'proxy-protocol'] as const) {
      const err = refusalError(reason);
      assert.equal(err.source, 'downstream');
      assert.equal(refusalReasonOf(err), reason);
      assert.equal(outcomeOf(err, 'tcp'), reason);
    }
    assert.equal(refusalReasonOf(new GatewayError('DOWNSTREAM_ABORTED')), undefined, 'a client that left is not a refusal');
  });

  it('dial failures: refused and timed out are retryable, a TLS failure is not; the message is kept', () => {
    const refused = fromDialError(new DialError('DIAL_FAILED', '127.0.0.1:1: connect ECONNREFUSED'));
    assert.equal(refused.code, 'UPSTREAM_CONNECT_REFUSED');
    assert.equal(refused.retryable, true);
    assert.equal(refused.message, '127.0.0.1:1: connect ECONNREFUSED');
    const timeout = fromDialError(new DialError('DIAL_TIMEOUT', 'no connection within 5 ms'));
    assert.equal(timeout.code, 'UPSTREAM_CONNECT_TIMEOUT');
    assert.equal(timeout.retryable, true);
    const tls = fromDialError(new DialError('DIAL_FAILED', 'TLS: unable to verify the first certificate'));
    assert.equal(tls.code, 'UPSTREAM_TLS_ERROR');
    assert.equal(tls.retryable, false);
    assert.equal(fromDialError(new DialError('CANCELLED', 'cancelled')).code, 'DOWNSTREAM_ABORTED');
    assert.equal(fromDialError(new Error('bug')).code, 'INTERNAL');
    // A socket's own error, as a Connector hands it over: the same classification as HTTP.
    const reset = fromDialError(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
    assert.equal(reset.code, 'UPSTREAM_RESET');
    assert.equal(reset.retryable, true);
    const cert = fromDialError(Object.assign(new Error('self-signed'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }));
    assert.equal(cert.code, 'UPSTREAM_TLS_ERROR');
    assert.equal(cert.retryable, false);
  });

  it('sealed: the wire answers stay 400 / 401 / 502 / 504', () => {
    assert.equal(sealedStatus(new GatewayError('BAD_SEALED_LINE')), 400);
    assert.equal(sealedStatus(fromSealedError(new SealedError('BAD_SEAL'))), 401);
    assert.equal(sealedStatus(fromSealedError(new SealedError('EXPIRED'))), 401);
    assert.equal(sealedStatus(new GatewayError('DESTINATION_DENIED')), 502, 'a denied backend looks like an unreachable one');
    assert.equal(sealedStatus(new GatewayError('UPSTREAM_CONNECT_REFUSED')), 502);
    assert.equal(sealedStatus(new GatewayError('UPSTREAM_CONNECT_TIMEOUT')), 504);
    assert.equal(sealedStatus(fromSealedError(new Error('bug'))), 502);
  });
});
