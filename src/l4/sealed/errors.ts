import { GatewayError } from '../../errors.js';

/**
 * The one error type of the sealed-address gateway. The listener
 * answers every failure with one short status line; `status` is the number
 * it sends, `code` is what it logs.
 *
 * Every decryption failure (bad base64, bad length, wrong secret, bad
 * padding, bad plaintext, failed GCM tag) is the same `BAD_SEAL` with the
 * same message, so neither the wire nor the error object tells a peer
 * which step failed (a padding oracle needs exactly that distinction).
 * `EXPIRED` is only raised after a v2 seal authenticated, so it tells a
 * forger nothing.
 */
export const SEALED_ERRORS = {
  /** Read error, or no `\n` within the line limit (the listener's check). */
  BAD_LINE: { status: 400, message: 'bad sealed line' },
  /** Not a sealed address this gateway can open: any decode or decryption failure. */
  BAD_SEAL: { status: 401, message: 'invalid sealed address' },
  /** A v2 seal that authenticated but whose `exp` has passed. */
  EXPIRED: { status: 401, message: 'sealed address expired' },
  /** The backend refused, reset or could not be resolved. */
  DIAL_FAILED: { status: 502, message: 'cannot reach the sealed address' },
  /** Every dial attempt timed out. */
  DIAL_TIMEOUT: { status: 504, message: 'dialing the sealed address timed out' },
} as const satisfies Record<string, { status: 400 | 401 | 502 | 504; message: string }>;

export type SealedErrorCode = keyof typeof SEALED_ERRORS;
export type SealedErrorStatus = (typeof SEALED_ERRORS)[SealedErrorCode]['status'];

export class SealedError extends Error {
  readonly code: SealedErrorCode;
  readonly status: SealedErrorStatus;

  /**
   * `message` defaults to the code's fixed text. Callers must never put
   * the secret, a derived key or a decrypted plaintext in it.
   */
  constructor(code: SealedErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? SEALED_ERRORS[code].message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SealedError';
    this.code = code;
    this.status = SEALED_ERRORS[code].status;
  }
}

/**
 * A failure of a sealed connection as the gateway's GatewayError: the
 * codec's BAD_SEAL and EXPIRED become SEALED_ADDRESS_INVALID and
 * SEALED_ADDRESS_EXPIRED; anything else not already a GatewayError is a
 * bug (INTERNAL).
 */
export function fromSealedError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof SealedError) {
    switch (err.code) {
      case 'BAD_LINE':
        return new GatewayError('BAD_SEALED_LINE', err.message, { cause: err });
      case 'BAD_SEAL':
        return new GatewayError('SEALED_ADDRESS_INVALID', err.message, { cause: err });
      case 'EXPIRED':
        return new GatewayError('SEALED_ADDRESS_EXPIRED', err.message, { cause: err });
      case 'DIAL_TIMEOUT':
        return new GatewayError('UPSTREAM_CONNECT_TIMEOUT', err.message, { cause: err });
      case 'DIAL_FAILED':
        return new GatewayError('UPSTREAM_CONNECT_REFUSED', err.message, { cause: err });
    }
  }
  return new GatewayError('INTERNAL', `internal: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

/**
 * The one mapping from a GatewayError to the sealed listener's answer on
 * the wire (docs/sealed.md): 400 for a bad line, 401 for a seal that does
 * not open or has expired, 504 when every dial attempt timed out, and 502
 * for everything else — a refused or unresolvable backend, one the allow
 * list denies (the protocol has no other code for it, and a distinct one
 * would tell a client which backends exist), and an internal failure.
 */
export function sealedStatus(err: GatewayError): SealedErrorStatus {
  switch (err.code) {
    case 'BAD_SEALED_LINE':
      return 400;
    case 'SEALED_ADDRESS_INVALID':
    case 'SEALED_ADDRESS_EXPIRED':
      return 401;
    case 'UPSTREAM_CONNECT_TIMEOUT':
      return 504;
    default:
      return 502;
  }
}
