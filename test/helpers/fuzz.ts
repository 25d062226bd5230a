import type { Parameters as FcParameters } from 'fast-check';

/**
 * The run budget of every property test (docs/fuzzing.md), in one place.
 *
 * `defaultRuns` is what CI runs: thousands for a pure parser, hundreds for
 * a property that goes through sockets. `FUZZ_RUNS=N` asks for a longer (or
 * shorter) run: N is the count of a standard pure property
 * (`STANDARD_RUNS`), and every property scales by the same factor, so a
 * socket-level property stays proportionally cheaper. `FUZZ_SEED` fixes
 * the seed (and `FUZZ_PATH` the shrink path) that fast-check prints with a
 * counterexample, to replay exactly that failure.
 */
export const STANDARD_RUNS = 2000;

export function fuzzRuns<T = unknown>(defaultRuns: number): FcParameters<T> {
  const env = process.env.FUZZ_RUNS;
  let numRuns = defaultRuns;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`FUZZ_RUNS must be a positive whole number, got "${env}"`);
    numRuns = Math.max(1, Math.round((defaultRuns * n) / STANDARD_RUNS));
  }
  // includeErrorInReport: the failed assertion's message is printed with the counterexample.
  const params: FcParameters<T> = { numRuns, includeErrorInReport: true };
  const seed = process.env.FUZZ_SEED;
  if (seed !== undefined && seed !== '') {
    const s = Number(seed);
    if (!Number.isSafeInteger(s)) throw new Error(`FUZZ_SEED must be a whole number, got "${seed}"`);
    params.seed = s;
    const path = process.env.FUZZ_PATH;
    if (path !== undefined && path !== '') params.path = path;
  }
  return params;
}
