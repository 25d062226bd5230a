/** Runs per property: FUZZ_RUNS when set (npm run fuzz), else the property's CI default. */
export function fuzzRuns(defaultRuns: number): number {
  const n = Number(process.env.FUZZ_RUNS);
  return Number.isInteger(n) && n > 0 ? n : defaultRuns;
}
