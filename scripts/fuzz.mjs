#!/usr/bin/env node
// `npm run fuzz`: the property tests (test/*/fuzz-*.test.ts) run longer than
// in CI. FUZZ_RUNS (default 50000) is the run count of a standard pure
// property; every property scales by the same factor (test/helpers/fuzz.ts).
// FUZZ_SEED (and FUZZ_PATH) replay a failure fast-check printed. Arguments
// narrow the files by name as with `npm test` (default: every `fuzz-`
// file), e.g. `npm run fuzz -- fuzz-sealed`. See docs/fuzzing.md.
//
// Compiles into its own folder (PORTICO_BUILD_DIR, default build-fuzz) and
// runs node:test itself: a long run needs more than `npm test`'s per-file
// timeout (FUZZ_TIMEOUT_MS, default one hour).
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const out = process.env.PORTICO_BUILD_DIR ?? 'build-fuzz';
const only = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['fuzz-'];
const env = { ...process.env, FUZZ_RUNS: process.env.FUZZ_RUNS || '50000' };
const timeout = process.env.FUZZ_TIMEOUT_MS || '3600000';

rmSync(out, { recursive: true, force: true });
const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.test.json', '--outDir', out], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);

const files = [];
for (const dir of [`${out}/test/unit`, `${out}/test/integration`]) {
  for (const f of readdirSync(dir).sort()) {
    if (f.endsWith('.test.js') && only.some((o) => f.includes(o))) files.push(join(dir, f));
  }
}
if (files.length === 0) {
  console.error(`no test files match ${only.join(', ')}`);
  process.exit(1);
}
console.error(`fuzz: FUZZ_RUNS=${env.FUZZ_RUNS}${env.FUZZ_SEED ? ` FUZZ_SEED=${env.FUZZ_SEED}` : ''} over ${files.length} file(s)`);
const run = spawnSync(process.execPath, ['--test', `--test-timeout=${timeout}`, ...files], { stdio: 'inherit', env });
process.exit(run.status ?? 1);
