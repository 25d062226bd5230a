import type { ErrorCode, GatewayError } from '../../errors.js';

/**
 * gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html)
 * and how the gateway's own errors reach a gRPC client: as a `grpc-status`
 * and `grpc-message`, never as an HTTP error status with a JSON body, which
 * a gRPC client could only report as UNKNOWN/INTERNAL.
 */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

/** The status names by code (`GRPC_STATUS_NAMES[14] === 'UNAVAILABLE'`), for logs and docs. */
export const GRPC_STATUS_NAMES: readonly string[] = Object.keys(GrpcStatus);

/**
 * The gRPC status of each gateway error. Choices where the spec leaves room:
 * - BAD_REQUEST → INTERNAL: the gateway raises it for a malformed request
 *   (a protocol error, not an argument the application rejected), and
 *   INTERNAL is what gRPC's HTTP→gRPC mapping gives HTTP 400
 *   (https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md).
 * - UPSTREAM_CONNECT_TIMEOUT → UNAVAILABLE: the call never reached a server,
 *   so it is safe to retry, which is what UNAVAILABLE tells a client (gRPC
 *   clients report their own connect failures this way). A response timeout
 *   or an expired deadline is DEADLINE_EXCEEDED: the server may have acted.
 * - UPSTREAM_TLS_ERROR → UNAVAILABLE: no server was reached (gRPC clients
 *   report their own failed handshakes this way).
 * - HEADERS_TOO_LARGE → RESOURCE_EXHAUSTED, as gRPC reports metadata over
 *   its size limit.
 * - FAULT_INJECTED follows the injected HTTP status (see `fromHttpStatus`).
 *
 * Every ErrorCode must be listed (the type checks it), so a new code gets a
 * deliberate gRPC status.
 */
const BY_CODE: { readonly [K in ErrorCode]: GrpcStatusCode } = {
  BAD_REQUEST: GrpcStatus.INTERNAL,
  BAD_FRAMING: GrpcStatus.INTERNAL,
  HTTP_VERSION_NOT_SUPPORTED: GrpcStatus.INTERNAL,
  METHOD_NOT_ALLOWED: GrpcStatus.INTERNAL,
  UNSUPPORTED_TRANSFER_CODING: GrpcStatus.INTERNAL,
  REQUEST_TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
  HEADERS_TOO_LARGE: GrpcStatus.RESOURCE_EXHAUSTED,
  UNAUTHORIZED: GrpcStatus.UNAUTHENTICATED,
  FORBIDDEN: GrpcStatus.PERMISSION_DENIED,
  RATE_LIMITED: GrpcStatus.RESOURCE_EXHAUSTED,
  QUOTA_EXCEEDED: GrpcStatus.RESOURCE_EXHAUSTED,
  CIRCUIT_OPEN: GrpcStatus.UNAVAILABLE,
  FAULT_INJECTED: GrpcStatus.UNKNOWN,
  ROUTE_NOT_FOUND: GrpcStatus.UNIMPLEMENTED,
  PAYLOAD_TOO_LARGE: GrpcStatus.RESOURCE_EXHAUSTED,
  NO_TARGET: GrpcStatus.UNAVAILABLE,
  UPSTREAM_CONNECT_REFUSED: GrpcStatus.UNAVAILABLE,
  UPSTREAM_RESET: GrpcStatus.UNAVAILABLE,
  UPSTREAM_PROTOCOL_ERROR: GrpcStatus.INTERNAL,
  UPSTREAM_TLS_ERROR: GrpcStatus.UNAVAILABLE,
  UPSTREAM_CONNECT_TIMEOUT: GrpcStatus.UNAVAILABLE,
  UPSTREAM_RESPONSE_TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
  DEADLINE_EXCEEDED: GrpcStatus.DEADLINE_EXCEEDED,
  DOWNSTREAM_ABORTED: GrpcStatus.CANCELLED,
  INTERNAL: GrpcStatus.INTERNAL,
  // Connection-level (L4) codes: never answered to a gRPC call; listed with their nearest meaning.
  CONNECTION_LIMIT: GrpcStatus.RESOURCE_EXHAUSTED,
  CONNECTION_LIMIT_PER_IP: GrpcStatus.RESOURCE_EXHAUSTED,
  SESSION_LIMIT: GrpcStatus.RESOURCE_EXHAUSTED,
  PROXY_PROTOCOL_ERROR: GrpcStatus.INTERNAL,
  DOWNSTREAM_TLS_ERROR: GrpcStatus.UNAUTHENTICATED,
  BAD_CLIENT_HELLO: GrpcStatus.INTERNAL,
  HANDSHAKE_TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
  BAD_SEALED_LINE: GrpcStatus.INTERNAL,
  SEALED_ADDRESS_INVALID: GrpcStatus.UNAUTHENTICATED,
  SEALED_ADDRESS_EXPIRED: GrpcStatus.UNAUTHENTICATED,
  DESTINATION_DENIED: GrpcStatus.PERMISSION_DENIED,
  UPSTREAM_NOT_FOUND: GrpcStatus.UNAVAILABLE,
  GATEWAY_CLOSING: GrpcStatus.UNAVAILABLE,
  PROXY_AUTH_REQUIRED: GrpcStatus.UNAUTHENTICATED,
  DESTINATION_UNRESOLVED: GrpcStatus.UNAVAILABLE,
  DESTINATION_RESOLVE_TIMEOUT: GrpcStatus.UNAVAILABLE,
};

/** The gRPC status a gateway error is reported with. */
export function grpcStatusFor(err: GatewayError): GrpcStatusCode {
  if (err.code === 'FAULT_INJECTED') return fromHttpStatus(err.status);
  return BY_CODE[err.code];
}

/**
 * gRPC's mapping of an HTTP status received instead of a gRPC response
 * (http-grpc-status-mapping.md): 400 INTERNAL, 401 UNAUTHENTICATED,
 * 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE,
 * anything else UNKNOWN.
 */
export function fromHttpStatus(status: number): GrpcStatusCode {
  switch (status) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

/**
 * `grpc-message` is percent-encoded UTF-8 (gRPC over HTTP/2, "Responses"):
 * bytes 0x20-0x7E other than `%` are sent as they are, every other byte as
 * `%XX` (upper-case hex).
 */
export function encodeGrpcMessage(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = '';
  for (const b of Buffer.from(message, 'utf8')) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b < 16 ? '0' : ''}${b.toString(16).toUpperCase()}`;
  }
  return out;
}

/**
 * Decodes a `grpc-message`. Per the spec a malformed escape is kept as it
 * is rather than failing the call; invalid UTF-8 becomes U+FFFD.
 */
export function decodeGrpcMessage(value: string): string {
  if (!value.includes('%')) return value;
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x25 && i + 2 < value.length && /^[0-9A-Fa-f]{2}$/.test(value.slice(i + 1, i + 3))) {
      bytes.push(parseInt(value.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(c & 0xff);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}
