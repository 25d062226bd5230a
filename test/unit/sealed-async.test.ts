// Unsealer.unsealAsync and the lineLimit option (the sealed listener's
// codec path): the same answers as the synchronous unseal for lines from the
// real openssl CLI and for v2, with PBKDF2 run off the event loop.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { sealV1, sealV2, Unsealer, type SealKdf } from '../../src/l4/sealed/codec.js';
import { SealedError } from '../../src/l4/sealed/errors.js';
import { opensslSeal } from '../helpers/sealed.js';

const SECRET = 'async-unseal-secret';

/** Event-loop turns (setImmediate callbacks) that ran while `work` was pending. */
async function turnsDuring<T>(work: () => Promise<T>): Promise<{ value: T; turns: number }> {
  let turns = 0;
  let pending = true;
  const spin = () => {
    if (!pending) return;
    turns++;
    setImmediate(spin);
  };
  setImmediate(spin);
  const value = await work();
  pending = false;
  return { value, turns };
}

function code(err: unknown): string {
  return err instanceof SealedError ? err.code : `not a SealedError: ${String(err)}`;
}

describe('unsealAsync', () => {
  test('opens what unseal opens, and fails the same way, for every kdf, auto and v2', async () => {
    const exp = Math.floor(Date.now() / 1000) + 60;
    for (const kdf of ['md5', 'sha256', 'pbkdf2'] as const) {
      const line = opensslSeal('10.1.2.3:5432', kdf, SECRET);
      for (const u of [new Unsealer({ secret: SECRET }), new Unsealer({ secret: SECRET, kdf }), new Unsealer({ secret: SECRET, kdf, cacheSize: 0 })]) {
        assert.deepEqual(await u.unsealAsync(line), u.unseal(line));
        assert.equal((await u.unsealAsync(`${line}\n`)).kdf, kdf);
      }
      const other: SealKdf = kdf === 'md5' ? 'pbkdf2' : 'md5';
      await assert.rejects(new Unsealer({ secret: SECRET, kdf: other }).unsealAsync(line), (e: unknown) => code(e) === 'BAD_SEAL');
      await assert.rejects(new Unsealer({ secret: 'wrong' }).unsealAsync(line), (e: unknown) => code(e) === 'BAD_SEAL');
    }
    const v2 = sealV2('[::1]:443', { secret: SECRET, exp });
    const u = new Unsealer({ secret: SECRET });
    assert.deepEqual(await u.unsealAsync(v2), u.unseal(v2));
    await assert.rejects(u.unsealAsync(sealV2('h:1', { secret: SECRET, exp: 1 })), (e: unknown) => code(e) === 'EXPIRED');
    for (const bad of ['', 'garbage', 'v2.AAAA', `v2.${randomBytes(60).toString('base64url')}`, randomBytes(100).toString('base64')]) {
      await assert.rejects(u.unsealAsync(bad), (e: unknown) => code(e) === 'BAD_SEAL', bad);
    }
    await assert.rejects(new Unsealer({ secret: SECRET, versions: [1] }).unsealAsync(v2), (e: unknown) => code(e) === 'BAD_SEAL');
  });

  test('PBKDF2 runs off the event loop: the loop keeps turning while lines with fresh salts open', async () => {
    const u = new Unsealer({ secret: SECRET, kdf: 'pbkdf2' });
    const lines = Array.from({ length: 8 }, (_, i) => sealV1(`h:${i + 1}`, { secret: SECRET, kdf: 'pbkdf2' }));
    const r = await turnsDuring(() => Promise.all(lines.map((l) => u.unsealAsync(l))));
    assert.deepEqual(r.value.map((o) => o.port), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.ok(r.turns > 0, 'the event loop turned during the derivations');
  });

  test('prepare derives the v2 master off the event loop, once; a v1-only Unsealer has nothing to prepare', async () => {
    const secret = `fresh-${randomBytes(8).toString('hex')}`;
    const u = new Unsealer({ secret });
    const r = await turnsDuring(() => Promise.all([u.prepare(), u.prepare()]));
    assert.ok(r.turns > 0, 'the event loop turned during the 600,000 iterations');
    const line = sealV2('h:9', { secret, exp: Math.floor(Date.now() / 1000) + 60 });
    assert.equal((await u.unsealAsync(line)).port, 9);
    await new Unsealer({ secret, versions: [1] }).prepare();
  });
});

describe('lineLimit', () => {
  test('an Unsealer refuses input longer than its lineLimit (default SEALED_LINE_LIMIT)', async () => {
    const line = sealV1('h:1', { secret: SECRET, kdf: 'md5' });
    assert.equal(new Unsealer({ secret: SECRET, lineLimit: line.length }).unseal(line).port, 1);
    assert.throws(() => new Unsealer({ secret: SECRET, lineLimit: line.length - 1 }).unseal(line), (e: unknown) => code(e) === 'BAD_SEAL');
    await assert.rejects(new Unsealer({ secret: SECRET, lineLimit: line.length - 1 }).unsealAsync(line), (e: unknown) => code(e) === 'BAD_SEAL');
    assert.throws(() => new Unsealer({ secret: SECRET }).unseal('A'.repeat(1025)), (e: unknown) => code(e) === 'BAD_SEAL');
  });
});
