/**
 * The `grpc-timeout` request header (gRPC over HTTP/2, "Requests"):
 *   Timeout → TimeoutValue TimeoutUnit
 *   TimeoutValue → {positive integer as ASCII string of at most 8 digits}
 *   TimeoutUnit → Hour "H" / Minute "M" / Second "S" / Millisecond "m" / Microsecond "u" / Nanosecond "n"
 */

/** Milliseconds per unit. */
const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/**
 * The longest timeout returned, in ms: the most a Node timer can wait
 * (2^31 - 1 ms, about 24.8 days). Longer values (up to 99999999H are
 * valid) are clamped, so a timer set from one never overflows, which Node
 * would turn into a 1 ms timer.
 */
export const MAX_GRPC_TIMEOUT_MS = 2_147_483_647;

/**
 * Parses a `grpc-timeout` value into milliseconds: rounded up to a whole
 * millisecond and at least 1 (a zero timeout is a deadline that has already
 * passed, and 0 means "no deadline" to callers), at most
 * MAX_GRPC_TIMEOUT_MS. Anything not matching the grammar (no unit, more
 * than 8 digits, a sign, spaces, another unit) is undefined: such a call
 * has no deadline, as gRPC servers treat it.
 */
export function parseGrpcTimeout(value: string): number | undefined {
  const n = value.length;
  if (n < 2 || n > 9) return undefined;
  const unit = UNIT_MS[value[n - 1]!];
  if (unit === undefined) return undefined;
  let digits = 0;
  for (let i = 0; i < n - 1; i++) {
    const c = value.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return undefined;
    digits = digits * 10 + c;
  }
  // Integer units first, so 1000u is exactly 1 ms (1000 * 1e-3 is not exact in floating point).
  const ms = unit >= 1 ? digits * unit : unit === 1e-3 ? digits / 1000 : digits / 1_000_000;
  return Math.min(MAX_GRPC_TIMEOUT_MS, Math.max(1, Math.ceil(ms)));
}

/** Units from the finest to the coarsest, with their size in ms. */
const FORMAT_UNITS: [string, number][] = [
  ['n', 1e-6],
  ['u', 1e-3],
  ['m', 1],
  ['S', 1000],
  ['M', 60_000],
  ['H', 3_600_000],
];

/**
 * A `grpc-timeout` value for `ms` milliseconds: the finest unit whose value
 * fits in 8 digits, rounded up (a deadline passed on is never shorter than
 * the time left, as grpc-go encodes it). 0 or less is `0n`, an expired deadline.
 */
export function formatGrpcTimeout(ms: number): string {
  if (!(ms > 0)) return '0n';
  for (const [unit, size] of FORMAT_UNITS) {
    // Divide by the reciprocal for the sub-ms units to keep integers exact (2 ms → 2000000n, not 1999999.9999999998n).
    const raw = size < 1 ? ms * Math.round(1 / size) : ms / size;
    // Less a hair, so floating-point noise (1.1 ms → 1100000.0000000002n) does not round up a whole unit.
    const v = Math.ceil(raw - 1e-7);
    if (v <= 99_999_999) return `${v}${unit}`;
  }
  return '99999999H';
}
