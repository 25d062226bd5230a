// Property tests of the sealed-address codec (docs/fuzzing.md, docs/sealed.md):
// seal → unseal round trips for random addresses and secrets with every
// v1 kdf and with v2 and its expiry; any random or mutated line is refused
// with the codec's own SealedError (never another exception); a v2 line
// with any bit flipped never opens (AES-GCM authenticates it); the sync
// and async unseal give the same answers.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseSealedAddress, SEAL_KDFS, sealV1, sealV2, Unsealer, type SealedAddress } from '../../src/l4/sealed/codec.js';
import { SealedError } from '../../src/l4/sealed/errors.js';
import { formatHostPort } from '../../src/net/address.js';
import { fuzzRuns } from '../helpers/fuzz.js';

/** v2 stretches each secret for 0.2 s (cached per process): v2 properties draw from a few secrets. */
const V2_SECRETS = ['fuzz-v2-secret', 'ünïcødé 秘密', 'x'];
const NOW = Date.UTC(2030, 0, 1);

const host = fc.oneof(
  fc.ipV4(),
  fc.ipV6().map((h) => `[${h}]`),
  fc.domain().filter((d) => d.length <= 253 && !/^\d+$/.test(d.slice(d.lastIndexOf('.') + 1))),
  fc.constantFrom('localhost', 'backend_1', 'a'),
);
const address = fc.tuple(host, fc.integer({ min: 1, max: 65535 })).map(([h, p]) => `${h}:${p}`);
const secret = fc.string({ minLength: 1, maxLength: 40 });

/** Runs `fn`; it must return a result or throw a SealedError, nothing else. */
function opened(fn: () => SealedAddress): SealedAddress | SealedError {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SealedError) return err;
    throw new Error(`not a SealedError: ${String(err)}`, { cause: err });
  }
}

function assertSame(got: SealedAddress, addressText: string): void {
  const want = parseSealedAddress(addressText)!;
  assert.equal(got.host, want.host);
  assert.equal(got.port, want.port);
  assert.equal(got.address, formatHostPort(want));
}

describe('fuzz: sealed lines round-trip', () => {
  it('v1, every kdf: unseal(sealV1(address)) is the address, with the named kdf and with auto', () => {
    fc.assert(
      fc.property(address, secret, fc.constantFrom(...SEAL_KDFS), (a, s, kdf) => {
        const line = sealV1(a, { secret: s, kdf });
        assert.match(line, /^[A-Za-z0-9+/]+={0,2}$/);
        const named = new Unsealer({ secret: s, kdf, versions: [1] }).unseal(`${line}\n`);
        assertSame(named, a);
        assert.equal(named.version, 1);
        assert.equal(named.kdf, kdf);
        assertSame(new Unsealer({ secret: s }).unseal(line), a);
      }),
      fuzzRuns(300),
    );
  });

  it('any text: sealV1 refuses it (RangeError) exactly when parseSealedAddress does, else it round-trips', () => {
    const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: fc.constantFrom(...'0123456789ab.:[]-_ \n'.split('')), maxLength: 30 }), address);
    fc.assert(
      fc.property(text, (t) => {
        const want = parseSealedAddress(t);
        let line: string;
        try {
          line = sealV1(t, { secret: 's', kdf: 'md5' });
        } catch (err) {
          assert.ok(err instanceof RangeError, String(err));
          assert.equal(want, undefined, `sealV1 refused ${JSON.stringify(t)}`);
          return;
        }
        assert.ok(want !== undefined, `sealV1 sealed ${JSON.stringify(t)}`);
        assertSame(new Unsealer({ secret: 's', kdf: 'md5' }).unseal(line), t);
      }),
      fuzzRuns(3000),
    );
  });

  it('v2: opens before its exp with that exp, is EXPIRED from exp on, and unsealAsync agrees', async () => {
    await fc.assert(
      fc.asyncProperty(address, fc.constantFrom(...V2_SECRETS), fc.integer({ min: 1, max: 10 * 365 * 86_400 }), async (a, s, ttl) => {
        const exp = Math.floor(NOW / 1000) + ttl;
        const line = sealV2(a, { secret: s, exp });
        assert.ok(line.startsWith('v2.'));
        const before = new Unsealer({ secret: s, now: () => NOW });
        const got = before.unseal(line);
        assertSame(got, a);
        assert.equal(got.version, 2);
        assert.equal(got.exp, exp);
        assert.deepEqual(await before.unsealAsync(line), got);
        const at = new Unsealer({ secret: s, now: () => exp * 1000 });
        const expired = opened(() => at.unseal(line));
        assert.ok(expired instanceof SealedError && expired.code === 'EXPIRED');
        // v1-only gateways refuse v2 lines as they refuse anything they cannot open.
        const v1only = opened(() => new Unsealer({ secret: s, versions: [1], kdf: 'md5' }).unseal(line));
        assert.ok(v1only instanceof SealedError && v1only.code === 'BAD_SEAL');
      }),
      fuzzRuns(1000),
    );
  });
});

describe('fuzz: sealed lines refused', () => {
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
  const junk = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
    fc.uint8Array({ maxLength: 120 }).map(b64),
    fc.uint8Array({ minLength: 8, maxLength: 120 }).map((b) => b64(Buffer.concat([Buffer.from('Salted__'), b]))),
    fc.uint8Array({ maxLength: 120 }).map((b) => `v2.${Buffer.from(b).toString('base64url')}`),
    fc.string({ unit: fc.constantFrom(...'AQZaz09+/=-_.\r\n v2'.split('')), maxLength: 200 }),
    fc.integer({ min: 1000, max: 3000 }).map((n) => 'A'.repeat(n)),
  );

  it('random bytes and text: a SealedError (BAD_SEAL), never another exception', () => {
    const u = new Unsealer({ secret: 'fuzz-v2-secret', kdf: 'md5' });
    fc.assert(
      fc.property(junk, (line) => {
        const r = opened(() => u.unseal(line));
        // A random v1 body may, with negligible odds, decrypt to a valid address; then it is one.
        if (!(r instanceof SealedError)) assert.ok(parseSealedAddress(r.address), r.address);
        else assert.ok(r.code === 'BAD_SEAL' || r.code === 'EXPIRED', r.code);
      }),
      fuzzRuns(5000),
    );
  });

  it('unsealAsync with every kdf answers random lines as unseal does', async () => {
    const u = new Unsealer({ secret: 'fuzz-v2-secret' });
    await fc.assert(
      fc.asyncProperty(junk, async (line) => {
        const sync = opened(() => u.unseal(line));
        let async: SealedAddress | SealedError;
        try {
          async = await u.unsealAsync(line);
        } catch (err) {
          assert.ok(err instanceof SealedError, String(err));
          async = err;
        }
        if (sync instanceof SealedError) assert.ok(async instanceof SealedError && async.code === sync.code);
        else assert.deepEqual(async, sync);
      }),
      fuzzRuns(300),
    );
  });

  it('v2: any bit flipped, any byte cut or added: never opens', () => {
    const s = V2_SECRETS[0]!;
    const u = new Unsealer({ secret: s, now: () => NOW });
    fc.assert(
      fc.property(address, fc.nat(), fc.nat({ max: 7 }), fc.constantFrom('flip', 'cut', 'add'), fc.nat({ max: 255 }), (a, at, bit, how, byte) => {
        const line = sealV2(a, { secret: s, exp: Math.floor(NOW / 1000) + 3600 });
        const raw = Buffer.from(line.slice(3), 'base64url');
        const i = at % raw.length;
        let bad: Buffer;
        if (how === 'flip') {
          bad = Buffer.from(raw);
          bad[i]! ^= 1 << bit;
        } else if (how === 'cut') {
          bad = Buffer.concat([raw.subarray(0, i), raw.subarray(i + 1)]);
        } else {
          bad = Buffer.concat([raw.subarray(0, i), Buffer.from([byte]), raw.subarray(i)]);
        }
        const r = opened(() => u.unseal(`v2.${bad.toString('base64url')}`));
        assert.ok(r instanceof SealedError && r.code === 'BAD_SEAL', `${how} at ${i}: ${r instanceof SealedError ? r.code : r.address}`);
      }),
      fuzzRuns(2000),
    );
  });

  it('v1: a mutated line is refused with a SealedError or opens to a valid address (CBC has no integrity)', () => {
    fc.assert(
      fc.property(address, fc.nat(), fc.nat({ max: 7 }), (a, at, bit) => {
        const line = sealV1(a, { secret: 's', kdf: 'sha256' });
        const raw = Buffer.from(line, 'base64');
        raw[at % raw.length]! ^= 1 << bit;
        const r = opened(() => new Unsealer({ secret: 's', kdf: 'sha256' }).unseal(raw.toString('base64')));
        if (!(r instanceof SealedError)) assert.ok(parseSealedAddress(r.address), r.address);
      }),
      fuzzRuns(2000),
    );
  });
});
