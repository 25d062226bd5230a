/**
 * The one error type of the data plane. Every failure that reaches a
 * downstream client is a GatewayError with a stable `code`; `statusFor`
 * is the one place that maps codes to HTTP statuses.
 */
export type ErrorSource = 'downstream' | 'upstream' | 'internal';

export const ERROR_CODES = {
  BAD_REQUEST: { status: 400, source: 'downstream', retryable: false, message: 'bad request' },
  BAD_FRAMING: { status: 400, source: 'downstream', retryable: false, message: 'invalid request message framing' },
  HTTP_VERSION_NOT_SUPPORTED: { status: 505, source: 'downstream', retryable: false, message: 'HTTP version not supported' },
  METHOD_NOT_ALLOWED: { status: 405, source: 'downstream', retryable: false, message: 'method not allowed on this listener' },
  UNSUPPORTED_TRANSFER_CODING: { status: 501, source: 'downstream', retryable: false, message: 'transfer coding not implemented' },
  REQUEST_TIMEOUT: { status: 408, source: 'downstream', retryable: false, message: 'request head not received in time' },
  HEADERS_TOO_LARGE: { status: 431, source: 'downstream', retryable: false, message: 'request head too large' },
  UNAUTHORIZED: { status: 401, source: 'downstream', retryable: false, message: 'missing or invalid credentials' },
  FORBIDDEN: { status: 403, source: 'downstream', retryable: false, message: 'access denied' },
  RATE_LIMITED: { status: 429, source: 'downstream', retryable: false, message: 'rate limit exceeded' },
  QUOTA_EXCEEDED: { status: 429, source: 'downstream', retryable: false, message: 'quota exceeded' },
  CIRCUIT_OPEN: { status: 503, source: 'upstream', retryable: false, message: 'upstream circuit is open' },
  FAULT_INJECTED: { status: 500, source: 'internal', retryable: false, message: 'fault injected' },
  ROUTE_NOT_FOUND: { status: 404, source: 'downstream', retryable: false, message: 'no route matches this request' },
  PAYLOAD_TOO_LARGE: { status: 413, source: 'downstream', retryable: false, message: 'request body too large' },
  NO_TARGET: { status: 503, source: 'internal', retryable: false, message: 'no upstream target available' },
  UPSTREAM_CONNECT_REFUSED: { status: 502, source: 'upstream', retryable: true, message: 'upstream refused the connection' },
  UPSTREAM_RESET: { status: 502, source: 'upstream', retryable: true, message: 'upstream closed the connection' },
  UPSTREAM_PROTOCOL_ERROR: { status: 502, source: 'upstream', retryable: false, message: 'upstream sent an invalid response' },
  UPSTREAM_TLS_ERROR: { status: 502, source: 'upstream', retryable: false, message: 'upstream TLS handshake failed' },
  UPSTREAM_CONNECT_TIMEOUT: { status: 504, source: 'upstream', retryable: true, message: 'upstream connect timed out' },
  UPSTREAM_RESPONSE_TIMEOUT: { status: 504, source: 'upstream', retryable: true, message: 'upstream response timed out' },
  DEADLINE_EXCEEDED: { status: 504, source: 'downstream', retryable: false, message: 'the call\'s deadline (grpc-timeout) passed' },
  DOWNSTREAM_ABORTED: { status: 499, source: 'downstream', retryable: false, message: 'client closed the request' },
  INTERNAL: { status: 500, source: 'internal', retryable: false, message: 'internal gateway error' },
  // Connection-level (L4) outcomes; docs/l4.md lists how each is logged. `status` is what an
  // HTTP-speaking L4 listener (forward-proxy, sealed) would answer; raw TCP/UDP has nothing to answer with.
  CONNECTION_LIMIT: { status: 503, source: 'downstream', retryable: false, message: 'the listener has maxConnections open' },
  CONNECTION_LIMIT_PER_IP: { status: 503, source: 'downstream', retryable: false, message: 'the client address has maxConnectionsPerIp open' },
  SESSION_LIMIT: { status: 503, source: 'downstream', retryable: false, message: 'the listener has maxSessions open' },
  PROXY_PROTOCOL_ERROR: { status: 400, source: 'downstream', retryable: false, message: 'missing, malformed or untrusted PROXY protocol header' },
  DOWNSTREAM_TLS_ERROR: { status: 400, source: 'downstream', retryable: false, message: 'TLS handshake with the client failed' },
  BAD_CLIENT_HELLO: { status: 400, source: 'downstream', retryable: false, message: 'the first bytes are not a TLS ClientHello' },
  HANDSHAKE_TIMEOUT: { status: 408, source: 'downstream', retryable: false, message: 'the client\'s handshake did not complete in time' },
  BAD_SEALED_LINE: { status: 400, source: 'downstream', retryable: false, message: 'bad sealed line' },
  SEALED_ADDRESS_INVALID: { status: 401, source: 'downstream', retryable: false, message: 'invalid sealed address' },
  SEALED_ADDRESS_EXPIRED: { status: 401, source: 'downstream', retryable: false, message: 'sealed address expired' },
  DESTINATION_DENIED: { status: 403, source: 'downstream', retryable: false, message: 'destination not allowed' },
  UPSTREAM_NOT_FOUND: { status: 502, source: 'internal', retryable: false, message: 'the listener\'s upstream does not exist' },
  GATEWAY_CLOSING: { status: 503, source: 'internal', retryable: false, message: 'the listener is closing' },
  PROXY_AUTH_REQUIRED: { status: 407, source: 'downstream', retryable: false, message: 'proxy credentials are required' },
  DESTINATION_UNRESOLVED: { status: 502, source: 'upstream', retryable: false, message: 'the destination does not resolve' },
  DESTINATION_RESOLVE_TIMEOUT: { status: 504, source: 'upstream', retryable: false, message: 'the destination did not resolve in time' },
} as const satisfies Record<string, { status: number; source: ErrorSource; retryable: boolean; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface GatewayErrorOptions {
  cause?: unknown;
  /** Response headers that explain the error (WWW-Authenticate, Retry-After, RateLimit-*). */
  headers?: Record<string, string>;
  /** Overrides the code's status (fault injection answers with a configured status). */
  status?: number;
}

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly source: ErrorSource;
  readonly retryable: boolean;
  readonly headers: Record<string, string> | undefined;
  readonly status: number;

  constructor(code: ErrorCode, message?: string, options?: GatewayErrorOptions) {
    const def = ERROR_CODES[code];
    super(message ?? def.message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.source = def.source;
    this.retryable = def.retryable;
    this.headers = options?.headers;
    this.status = options?.status ?? def.status;
  }
}

export function statusFor(err: GatewayError): number {
  return err.status;
}

/**
 * Classifies an error thrown by the upstream client (undici, node:net) as a
 * GatewayError. `inBody`: an HTTP/1.1 response head had arrived, so a
 * connection lost now cut the response short of what its framing
 * announced (Content-Length or the last chunk, RFC 9112 §6.3, §7.1): that
 * is an invalid response (UPSTREAM_PROTOCOL_ERROR), not a reset. (An
 * HTTP/2 stream lost mid-body stays UPSTREAM_RESET: its framing is intact.)
 */
export function fromUpstreamError(err: unknown, inBody = false): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = err as { code?: string; message?: string };
  // Every llhttp parse error (bad chunk size, missing CRLF, conflicting Content-Length, invalid header bytes …).
  if (e?.code?.startsWith('HPE_') || (err as Error | undefined)?.name === 'HTTPParserError') {
    return new GatewayError('UPSTREAM_PROTOCOL_ERROR', `upstream sent an invalid response: ${e.message ?? e.code}`, { cause: err });
  }
  if (inBody) {
    switch (e?.code) {
      case 'UND_ERR_SOCKET':
      case 'ECONNRESET':
      case 'EPIPE':
        return new GatewayError('UPSTREAM_PROTOCOL_ERROR', `upstream response cut short: ${e.message ?? e.code}`, { cause: err });
    }
  }
  switch (e?.code) {
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    // A tunnel stream the agent refused (unknown code, withdrawn, local service down) or that could not open: nothing reached the service.
    case 'TUNNEL_UNAVAILABLE':
      return new GatewayError('UPSTREAM_CONNECT_REFUSED', undefined, { cause: err });
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return new GatewayError('UPSTREAM_CONNECT_TIMEOUT', undefined, { cause: err });
    // The gateway's own upstream client refused to write the request (h1/request.ts): CR, LF or NUL in a header a middleware made.
    case 'UND_ERR_INVALID_ARG':
      return new GatewayError('INTERNAL', `the upstream request cannot be written: ${e.message ?? e.code}`, { cause: err });
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return new GatewayError('UPSTREAM_RESPONSE_TIMEOUT', undefined, { cause: err });
    case 'HPE_INVALID_CONSTANT':
    case 'HPE_INVALID_HEADER_TOKEN':
    case 'HPE_INVALID_STATUS':
    case 'HPE_INVALID_VERSION':
    case 'HPE_HEADER_OVERFLOW':
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
    case 'UND_ERR_HEADERS_OVERFLOW':
    case 'HPE_INVALID_CHUNK_SIZE':
    case 'HPE_INVALID_TRANSFER_ENCODING':
    case 'UND_ERR_INFO':
    case 'UPSTREAM_ALPN_MISMATCH':
    case 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL':
    case 'ERR_HTTP2_ERROR':
      return new GatewayError('UPSTREAM_PROTOCOL_ERROR', undefined, { cause: err });
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'CERT_HAS_EXPIRED':
    case 'CERT_NOT_YET_VALID':
      // A certificate the gateway does not trust: retrying elsewhere will not fix the configuration.
      return new GatewayError('UPSTREAM_TLS_ERROR', `upstream TLS handshake failed: ${e.code}`, { cause: err });
    default:
      // OpenSSL alerts and handshake failures (e.g. the target refused our client certificate).
      if (e?.code?.startsWith('ERR_SSL_')) return new GatewayError('UPSTREAM_TLS_ERROR', `upstream TLS handshake failed: ${e.code}`, { cause: err });
      return new GatewayError('UPSTREAM_RESET', undefined, { cause: err });
  }
}

/**
 * Whether an upstream failure is a failed connect: the target refused or
 * could not be reached, or the connect timed out. Combined with "the
 * request was not written yet" (the caller knows), nothing reached the
 * upstream and the request may go to another target whatever its method.
 */
export function isConnectFailure(err: GatewayError): boolean {
  return err.code === 'UPSTREAM_CONNECT_REFUSED' || err.code === 'UPSTREAM_CONNECT_TIMEOUT';
}
