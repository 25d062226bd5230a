#!/usr/bin/env node
// The `prepare` script: npm runs it after `npm ci` / `npm install` in this
// checkout and before `npm pack` / `npm publish` (never when a packed tarball
// is installed: the tarball ships dist/).
//
// - TypeScript installed (a normal `npm ci`): builds dist/ with tsc; a
//   compile error fails the install, as it should.
// - TypeScript absent (`npm ci --omit=dev`): nothing can be built here, and
//   failing would abort the install of the runtime dependencies, so it never
//   fails: it keeps an existing dist/ (say, copied from a build stage), or
//   prints what to do when there is none.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist', 'cli', 'main.js');

let tsc;
try {
  tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
} catch {
  tsc = undefined;
}

if (tsc) {
  const run = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], { stdio: 'inherit', cwd: root });
  process.exit(run.status ?? 1);
}
if (existsSync(entry)) {
  console.error('portico prepare: TypeScript is not installed (--omit=dev); using the dist/ already built.');
} else {
  console.error(
    'portico prepare: dist/ is not built and TypeScript is not installed (--omit=dev), so `portico` cannot run from this copy yet.\n' +
      '  Build it here: npm ci (with the dev dependencies: prepare builds dist/), then npm prune --omit=dev\n' +
      '  Or install the package, which ships dist/: npm pack (in a built checkout), then npm install --omit=dev ./portico-<version>.tgz',
  );
}
