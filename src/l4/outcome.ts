import { fromUpstreamError, GatewayError, type ErrorCode } from '../errors.js';
import type { RefusalReason } from './admission.js';
import { DialError } from './dial-error.js';

/**
 * The one place where an L4 connection's GatewayError becomes the value of
 * its access-log `outcome` field. Those values predate the shared error
 * codes and are kept as they were (dashboards and alerts match on them);
 * the line also carries the code itself as `code`. A code missing from the
 * table is logged under its own name.
 */
const OUTCOMES: Partial<Record<ErrorCode, string>> = {
  FORBIDDEN: 'ip-restriction',
  RATE_LIMITED: 'rate-limit',
  CONNECTION_LIMIT: 'max-connections',
  CONNECTION_LIMIT_PER_IP: 'max-connections-per-ip',
  SESSION_LIMIT: 'max-sessions',
  PROXY_PROTOCOL_ERROR: 'proxy-protocol',
  UPSTREAM_CONNECT_REFUSED: 'DIAL_FAILED',
  UPSTREAM_RESET: 'DIAL_FAILED',
  UPSTREAM_TLS_ERROR: 'DIAL_FAILED',
  UPSTREAM_PROTOCOL_ERROR: 'DIAL_FAILED',
  UPSTREAM_CONNECT_TIMEOUT: 'DIAL_TIMEOUT',
  DOWNSTREAM_ABORTED: 'CLIENT_CLOSED',
  ROUTE_NOT_FOUND: 'NO_ROUTE',
  DOWNSTREAM_TLS_ERROR: 'TLS_HANDSHAKE_FAILED',
  BAD_SEALED_LINE: 'BAD_LINE',
  SEALED_ADDRESS_INVALID: 'BAD_SEAL',
  SEALED_ADDRESS_EXPIRED: 'EXPIRED',
  DESTINATION_DENIED: 'DENIED',
};

/**
 * Where a protocol's older vocabulary differs: a sealed client gone before
 * the answer was `CLOSED`; a UDP session whose target socket failed was
 * `UPSTREAM_ERROR`; a refused UDP client was logged by its drop reason;
 * the forward proxy's codes are also the `code` of its answers' bodies.
 */
const BY_PROTOCOL: Record<string, Partial<Record<ErrorCode, string>>> = {
  sealed: { DOWNSTREAM_ABORTED: 'CLOSED' },
  udp: { UPSTREAM_RESET: 'UPSTREAM_ERROR', NO_TARGET: 'no-target', UPSTREAM_NOT_FOUND: 'no-target' },
  // The forward proxy's outcome is also the `code` of its JSON answer (respond.ts).
  'forward-proxy': {
    FORBIDDEN: 'FORBIDDEN',
    DESTINATION_DENIED: 'FORBIDDEN',
    DESTINATION_UNRESOLVED: 'DNS_FAILED',
    DESTINATION_RESOLVE_TIMEOUT: 'DNS_TIMEOUT',
    UPSTREAM_RESET: 'UPSTREAM_ERROR',
    UPSTREAM_PROTOCOL_ERROR: 'UPSTREAM_ERROR',
    UPSTREAM_TLS_ERROR: 'UPSTREAM_ERROR',
    UPSTREAM_RESPONSE_TIMEOUT: 'RESPONSE_TIMEOUT',
    INTERNAL: 'UPSTREAM_ERROR',
  },
};

/** The access-log `outcome` of a connection that ended with `err` (`ok` without one). */
export function outcomeOf(err: GatewayError | null, protocol: string): string {
  if (err === null) return 'ok';
  return BY_PROTOCOL[protocol]?.[err.code] ?? OUTCOMES[err.code] ?? err.code;
}

const REFUSALS: Record<RefusalReason, ErrorCode> = {
  'ip-restriction': 'FORBIDDEN',
  'rate-limit': 'RATE_LIMITED',
  'max-connections': 'CONNECTION_LIMIT',
  'max-connections-per-ip': 'CONNECTION_LIMIT_PER_IP',
  'proxy-protocol': 'PROXY_PROTOCOL_ERROR',
};

const REASONS = new Map<ErrorCode, RefusalReason>(Object.entries(REFUSALS).map(([reason, code]) => [code, reason as RefusalReason]));

/** The refusal reason an error counts under in a listener's `refused` (admin status), if it is a refusal. */
export function refusalReasonOf(err: GatewayError): RefusalReason | undefined {
  return REASONS.get(err.code);
}

/** A connection middleware's or limit's refusal as a GatewayError. */
export function refusalError(reason: RefusalReason, detail?: string): GatewayError {
  return new GatewayError(REFUSALS[reason], detail);
}

/**
 * A dial failure as a GatewayError. A DialError (openTcp, startTls) by its
 * code, its message kept (it names the target): refused or unreachable
 * and timeouts are retryable on another target; a TLS handshake failure
 * (startTls reports every one as `TLS: …`) is not — a certificate that
 * does not verify will not verify elsewhere either. A socket's own error
 * (with an errno or OpenSSL `code`) is classified like any upstream
 * error (fromUpstreamError), as HTTP does.
 */
export function fromDialError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof DialError) {
    switch (err.code) {
      case 'DIAL_TIMEOUT':
        return new GatewayError('UPSTREAM_CONNECT_TIMEOUT', err.message, { cause: err });
      case 'CANCELLED':
        return new GatewayError('DOWNSTREAM_ABORTED', err.message, { cause: err });
      case 'NO_TARGET':
        return new GatewayError('NO_TARGET', err.message, { cause: err });
      default:
        // startTls reports every handshake failure as `TLS: …` (a certificate refused, a protocol mismatch).
        return new GatewayError(err.message.startsWith('TLS: ') ? 'UPSTREAM_TLS_ERROR' : 'UPSTREAM_CONNECT_REFUSED', err.message, { cause: err });
    }
  }
  // A socket's own error (node:net, node:tls, a Connector's callback): classified as for HTTP.
  if (typeof (err as { code?: unknown })?.code === 'string') return fromUpstreamError(err);
  return new GatewayError('INTERNAL', `internal: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}
