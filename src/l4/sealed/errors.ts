/**
 * The one error type of the sealed-address gateway (issue 5). The listener
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
 * The address opened but `allow` does not list it (or any address its name
 * resolves to). On the wire it is a `DIAL_FAILED` (502): the original
 * protocol has no other code for it, and a distinct one would tell a
 * client which backends exist behind the allow list. Logged as `DENIED`.
 */
export class SealedDeniedError extends SealedError {
  constructor() {
    super('DIAL_FAILED', 'sealed address not allowed');
    this.name = 'SealedDeniedError';
  }
}
