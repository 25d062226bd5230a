import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigFile } from '../../src/sources/file.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const EXAMPLES = join(ROOT, 'examples');
const files = readdirSync(EXAMPLES).filter((f) => /\.(ya?ml|json)$/.test(f));

test('every example config validates as shipped: no environment variables, the files it names read from the repository root', () => {
  assert.ok(files.includes('default.yaml'), 'the default config npm start serves is there');
  const cwd = process.cwd();
  process.chdir(ROOT);
  try {
    for (const f of files) {
      const r = loadConfigFile(join(EXAMPLES, f), {});
      assert.equal(r.ok, true, `${f}: ${r.ok ? '' : r.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`);
    }
  } finally {
    process.chdir(cwd);
  }
});
