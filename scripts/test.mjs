#!/usr/bin/env node
// `npm test`: compiles src/ and test/ to build/, then runs every unit and
// integration test file with node:test. Exits non-zero if anything fails or
// if no test file was found (an empty run must never look green).
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

// PORTICO_BUILD_DIR lets several test runs share a checkout (each compiles into its own folder at the repo root).
const out = process.env.PORTICO_BUILD_DIR ?? 'build';
// External servers the tests start (redis-server): installed if missing, or a one-line instruction and exit 1.
const deps = spawnSync(process.execPath, [join('scripts', 'ensure-deps.mjs')], { stdio: 'inherit' });
if (deps.status !== 0) process.exit(deps.status ?? 1);
// The CLI tests run the real binary (dist/cli/main.js): build it from the current sources first.
const dist = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
if (dist.status !== 0) process.exit(dist.status ?? 1);
rmSync(out, { recursive: true, force: true });
const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.test.json', '--outDir', out], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);

const only = process.argv.slice(2);
const files = [];
for (const dir of [`${out}/test/unit`, `${out}/test/integration`]) {
  for (const f of readdirSync(dir).sort()) {
    if (f.endsWith('.test.js') && (only.length === 0 || only.some((o) => f.includes(o)))) files.push(join(dir, f));
  }
}
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const run = spawnSync(process.execPath, ['--test', '--test-timeout=300000', ...files], { stdio: 'inherit' });
process.exit(run.status ?? 1);
