import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigFile } from '../../src/config/load.js';

const EXAMPLES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'examples');

test('every example config validates as written', () => {
  const files = readdirSync(EXAMPLES).filter((f) => /\.(ya?ml|json)$/.test(f));
  assert.ok(files.includes('default.yaml'), 'the default config npm start serves is there');
  for (const f of files) {
    // Secrets come from the environment in the examples.
    const r = loadConfigFile(join(EXAMPLES, f), { SEALED_SECRET: 'example-secret' });
    assert.equal(r.ok, true, `${f}: ${r.ok ? '' : r.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`);
  }
});
