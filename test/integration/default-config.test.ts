// The config `npm start` serves with no file (examples/default.yaml) cannot
// put the admin API on a public address without a key. (What it answers on
// its listener is tested with the README quick start, in cli.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ROOT, runCli } from '../helpers/cli.js';

test('the default config refuses to put the admin API on a public address without a key', async () => {
  const r = await runCli(['validate', join(ROOT, 'examples', 'default.yaml')], { env: { PORTICO_ADMIN: '0.0.0.0:9180' } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /admin\.token/);
});
