/**
 * What the socket-level dial helpers (openTcp, startTls) report. It never
 * leaves the dial layer: the dial loop turns it into a GatewayError
 * (outcome.ts `fromDialError`), the one error type of the data plane.
 */
export type DialErrorCode = 'DIAL_FAILED' | 'DIAL_TIMEOUT' | 'NO_TARGET' | 'CANCELLED';

export class DialError extends Error {
  readonly code: DialErrorCode;
  constructor(code: DialErrorCode, message: string) {
    super(message);
    this.name = 'DialError';
    this.code = code;
  }
}
