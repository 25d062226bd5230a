// The sealed-address codec (issue 5): interop with the real `openssl enc`
// CLI in both directions for the three v1 kdfs, `auto`, the plaintext rule,
// the v2 format (round trip, tamper, expiry), and that any input either
// opens or fails as a SealedError BAD_SEAL — never another kind of throw.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import {
  AUTO_ORDER,
  deriveV1,
  parseSealedAddress,
  SEALED_LINE_LIMIT,
  sealV1,
  sealV2,
  unseal,
  Unsealer,
  type SealKdf,
} from '../../src/l4/sealed/codec.js';
import { SEALED_ERRORS, SealedError } from '../../src/l4/sealed/errors.js';

const SECRET = 'correct horse battery staple';
const KDF_FLAGS: Record<SealKdf, string[]> = { md5: ['-md', 'md5'], sha256: ['-md', 'sha256'], pbkdf2: ['-pbkdf2'] };

/** Runs `openssl enc -aes-256-cbc …` with `input` on stdin; returns stdout (fails the test on a non-zero exit). */
function openssl(args: string[], input: string): string {
  const r = spawnSync('openssl', ['enc', '-aes-256-cbc', ...args], { input, encoding: 'latin1' });
  assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** What `echo -n PLAIN | openssl enc -aes-256-cbc -a -salt -k SECRET [kdf flags]` prints: base64 wrapped at 64 columns. */
function opensslSeal(plain: string, kdf: SealKdf, secret = SECRET): string {
  return openssl(['-a', '-salt', '-k', secret, ...KDF_FLAGS[kdf]], plain);
}

/** `openssl enc -d`; `-A` for one unwrapped line. */
function opensslOpen(line: string, kdf: SealKdf, secret = SECRET): string {
  return openssl(['-d', '-a', '-A', '-k', secret, ...KDF_FLAGS[kdf]], `${line}\n`);
}

function assertBadSeal(fn: () => unknown, label = ''): void {
  assert.throws(fn, (err: unknown) => err instanceof SealedError && err.code === 'BAD_SEAL' && err.status === 401, label);
}

describe('v1 key derivation', () => {
  test('matches `openssl enc -P` for md5, sha256 and pbkdf2', () => {
    const salt = Buffer.from('0102030405060708', 'hex');
    for (const kdf of ['md5', 'sha256', 'pbkdf2'] as const) {
      const out = openssl(['-k', SECRET, '-S', '0102030405060708', '-P', ...KDF_FLAGS[kdf]], '');
      const key = /key=([0-9A-F]+)/.exec(out)![1]!;
      const iv = /iv\s*=([0-9A-F]+)/.exec(out)![1]!;
      const material = deriveV1(kdf, Buffer.from(SECRET), salt);
      assert.equal(material.subarray(0, 32).toString('hex').toUpperCase(), key, kdf);
      assert.equal(material.subarray(32).toString('hex').toUpperCase(), iv, kdf);
    }
  });
});

describe('v1 interop with openssl enc', () => {
  for (const kdf of ['md5', 'sha256', 'pbkdf2'] as const) {
    test(`${kdf}: openssl-made lines open, with the kdf named and with auto`, () => {
      for (const plain of ['127.0.0.1:8080', 'backend.internal:443', '[::1]:5432', 'db_1.example.com:3306']) {
        const wrapped = opensslSeal(plain, kdf);
        const joined = wrapped.replace(/\n/g, '');
        for (const line of [joined, `${joined}\n`, wrapped]) {
          const named = unseal(line, { secret: SECRET, kdf });
          assert.equal(named.address, plain);
          assert.equal(named.version, 1);
          const auto = unseal(line, { secret: SECRET });
          assert.equal(auto.address, plain);
          assert.equal(auto.kdf, kdf);
        }
      }
    });

    test(`${kdf}: \`echo ADDR | openssl enc\` (a trailing newline in the plaintext) opens`, () => {
      const opened = unseal(opensslSeal('10.1.2.3:22\n', kdf).replace(/\n/g, ''), { secret: SECRET });
      assert.deepEqual([opened.host, opened.port, opened.kdf], ['10.1.2.3', 22, kdf]);
    });

    test(`${kdf}: our lines open with openssl enc -d`, () => {
      for (const addr of ['127.0.0.1:1', 'a.b.c:65535', '[2001:db8::7]:80']) {
        const line = sealV1(addr, { secret: SECRET, kdf });
        assert.match(line, /^U2FsdGVkX1[A-Za-z0-9+/]+=*$/);
        assert.equal(opensslOpen(line, kdf), addr);
      }
    });

    test(`${kdf}: a long address wraps past 64 columns both ways`, () => {
      const addr = `${'x'.repeat(60)}.${'y'.repeat(60)}.example.org:8443`;
      const ours = sealV1(addr, { secret: SECRET, kdf });
      assert.ok(ours.length > 64);
      assert.equal(opensslOpen(ours, kdf), addr);
      const rewrapped = ours.match(/.{1,64}/g)!.join('\n') + '\n';
      assert.equal(openssl(['-d', '-a', '-k', SECRET, ...KDF_FLAGS[kdf]], rewrapped), addr);
      assert.equal(unseal(opensslSeal(addr, kdf), { secret: SECRET }).address, addr);
    });
  }

  test('a non-ASCII secret is taken as UTF-8, as openssl -k takes it', () => {
    const secret = 'sécrèt-🔑';
    assert.equal(unseal(opensslSeal('h:1', 'pbkdf2', secret).replace(/\n/g, ''), { secret }).address, 'h:1');
    assert.equal(opensslOpen(sealV1('h:1', { secret, kdf: 'sha256' }), 'sha256', secret), 'h:1');
  });

  test('auto tries md5, then sha256, then pbkdf2', () => {
    assert.deepEqual(AUTO_ORDER, ['md5', 'sha256', 'pbkdf2']);
  });
});

describe('v1 failures are BAD_SEAL', () => {
  const line = sealV1('127.0.0.1:8080', { secret: SECRET, kdf: 'sha256' });

  test('wrong secret, with auto and with each kdf', () => {
    assertBadSeal(() => unseal(line, { secret: 'wrong' }));
    for (const kdf of ['md5', 'sha256', 'pbkdf2'] as const) assertBadSeal(() => unseal(line, { secret: 'wrong', kdf }), kdf);
  });

  test('the right secret with the wrong kdf', () => {
    assertBadSeal(() => unseal(line, { secret: SECRET, kdf: 'md5' }));
    assertBadSeal(() => unseal(line, { secret: SECRET, kdf: 'pbkdf2' }));
  });

  test('truncated, padded, garbage and non-canonical lines', () => {
    const raw = Buffer.from(line, 'base64');
    const cases = [
      '',
      '\n',
      'garbage',
      'U2FsdGVkX1',
      line.slice(0, -4),
      line.slice(4),
      `${line}A`,
      `${line}====`,
      ` ${line}`,
      `${line} `,
      line.replace(/=$/, ''),
      raw.subarray(0, 16).toString('base64'), // magic + salt, no block
      raw.subarray(0, raw.length - 1).toString('base64'), // not whole blocks
      Buffer.concat([Buffer.from('Salted_!'), raw.subarray(8)]).toString('base64'),
      Buffer.from('not a sealed address at all, but valid base64').toString('base64'),
      line.replace(/.$/, 'B'), // a non-canonical final character
      'A'.repeat(SEALED_LINE_LIMIT + 1),
    ];
    for (const c of cases) assertBadSeal(() => unseal(c, { secret: SECRET }), JSON.stringify(c));
  });

  test('authentic ciphertexts of bad plaintexts', () => {
    for (const plain of ['', 'host', 'host:', ':80', 'host:0', 'host:65536', 'host:080', 'a b:80', '1.2.3.999:80', '::1:80', '[::1:80', 'h:80\n\n', 'h\u00e9:80']) {
      for (const kdf of ['md5', 'pbkdf2'] as const) {
        assertBadSeal(() => unseal(opensslSeal(plain, kdf).replace(/\n/g, ''), { secret: SECRET }), `${kdf} ${JSON.stringify(plain)}`);
      }
    }
  });

  test('property: thousands of random inputs open or fail as BAD_SEAL, nothing else', () => {
    const md5 = new Unsealer({ secret: SECRET, kdf: 'md5' });
    const auto = new Unsealer({ secret: SECRET });
    const valid = Buffer.from(sealV1('10.0.0.1:443', { secret: SECRET, kdf: 'md5' }), 'base64');
    const inputs: { text: string | Buffer; u: Unsealer }[] = [];
    for (let i = 0; i < 1000; i++) inputs.push({ text: randomBytes(randomInt(0, 200)).toString('latin1'), u: md5 });
    for (let i = 0; i < 1000; i++) inputs.push({ text: randomBytes(randomInt(0, 200)).toString('base64'), u: md5 });
    for (let i = 0; i < 1000; i++) {
      const body = randomBytes(16 * randomInt(0, 12) + (i % 10 === 0 ? randomInt(1, 16) : 0));
      inputs.push({ text: Buffer.concat([Buffer.from('Salted__'), randomBytes(8), body]).toString('base64'), u: i < 100 ? auto : md5 });
    }
    for (let i = 0; i < 1000; i++) {
      const mutated = Buffer.from(valid);
      mutated[randomInt(0, mutated.length)]! ^= 1 << randomInt(0, 8);
      inputs.push({ text: i % 2 ? mutated.toString('base64') : Buffer.from(mutated.toString('base64')), u: md5 });
    }
    let opened = 0;
    for (const { text, u } of inputs) {
      try {
        const r = u.unseal(text);
        // A flipped bit in the block before the last can leave a valid address: CBC has no integrity (v2 does).
        assert.ok(parseSealedAddress(r.address), r.address);
        opened++;
      } catch (err) {
        assert.ok(err instanceof SealedError && err.code === 'BAD_SEAL', `${String(err)} for ${JSON.stringify(text)}`);
      }
    }
    assert.ok(opened < inputs.length / 10, `${opened} random inputs opened`);
  });
});

describe('parseSealedAddress', () => {
  test('accepts host:port, IPv4, bracketed IPv6 and one trailing newline', () => {
    const ok: [string, string, number][] = [
      ['localhost:1', 'localhost', 1],
      ['127.0.0.1:65535', '127.0.0.1', 65535],
      ['[::1]:443', '::1', 443],
      ['[fe80::1%eth0]:22', 'fe80::1%eth0', 22],
      ['svc-1.ns_2.cluster.local:8080', 'svc-1.ns_2.cluster.local', 8080],
      ['h:80\n', 'h', 80],
      ['h:80\r\n', 'h', 80],
    ];
    for (const [text, host, port] of ok) assert.deepEqual(parseSealedAddress(text), { host, port }, text);
  });

  test('refuses everything else', () => {
    const bad = ['', ':80', 'h', 'h:', 'h:0', 'h:00080', 'h:65536', 'h:-1', 'h:8o', '::1:80', '[::1]', '[1.2.3.4]:80', '[::1:80',
      '-h:80', 'h-:80', 'a..b:80', '.h:80', 'h.:80', '1.2.3.4.5:80', '999.1.1.1:80', 'a/b:80', 'a b:80', 'h:80 ', ' h:80',
      `${'a'.repeat(64)}:80`, `${'a.'.repeat(127)}a:80`, 'h:80\n\n', 'h\0:80'];
    for (const text of bad) assert.equal(parseSealedAddress(text), undefined, JSON.stringify(text));
  });

  test('seal refuses what unseal would refuse', () => {
    assert.throws(() => sealV1('nope', { secret: SECRET }), RangeError);
    assert.throws(() => sealV2('h:0', { secret: SECRET, exp: 1 }), RangeError);
    assert.equal(unseal(sealV1({ host: '::1', port: 9 }, { secret: SECRET }), { secret: SECRET }).address, '[::1]:9');
  });
});

describe('v2', () => {
  const exp = Math.floor(Date.now() / 1000) + 3600;

  test('round trip: address, expiry, a fresh salt per line', () => {
    const a = sealV2('backend.internal:9000', { secret: SECRET, exp });
    const b = sealV2('backend.internal:9000', { secret: SECRET, exp });
    assert.notEqual(a, b);
    assert.match(a, /^v2\.[A-Za-z0-9_-]+$/);
    for (const line of [a, `${b}\n`, Buffer.from(`${a}\r\n`)]) {
      assert.deepEqual(unseal(line, { secret: SECRET }), { host: 'backend.internal', port: 9000, address: 'backend.internal:9000', version: 2, exp });
    }
    assert.equal(unseal(sealV2('[::1]:1', { secret: SECRET, exp }), { secret: SECRET, kdf: 'md5' }).address, '[::1]:1');
  });

  test('expired → EXPIRED (401); the expiry instant itself is expired', () => {
    const line = sealV2('h:1', { secret: SECRET, exp: 1_000 });
    assert.equal(unseal(line, { secret: SECRET, now: () => 999_999 }).exp, 1_000);
    for (const now of [1_000_000, Date.now()]) {
      assert.throws(() => unseal(line, { secret: SECRET, now: () => now }), (err: unknown) =>
        err instanceof SealedError && err.code === 'EXPIRED' && err.status === 401);
    }
  });

  test('an expired line under the wrong secret is BAD_SEAL, not EXPIRED', () => {
    assertBadSeal(() => unseal(sealV2('h:1', { secret: SECRET, exp: 1 }), { secret: 'other' }));
  });

  test('every single-character change, truncation or extension is BAD_SEAL', () => {
    const line = sealV2('10.0.0.1:443', { secret: SECRET, exp });
    const u = new Unsealer({ secret: SECRET });
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    for (let i = 3; i < line.length; i++) {
      for (let k = 0; k < 4; k++) {
        const c = alphabet[(alphabet.indexOf(line[i]!) + 1 + randomInt(0, 63)) % 64]!;
        assertBadSeal(() => u.unseal(line.slice(0, i) + c + line.slice(i + 1)), `char ${i}`);
      }
      assertBadSeal(() => u.unseal(line.slice(0, i)), `cut ${i}`);
    }
    for (const bad of [`${line}A`, `${line}=`, line.replace('v2.', 'v3.'), line.replace('v2.', 'V2.'), 'v2.', 'v2.AAAA', `v2.${randomBytes(60).toString('base64url')}`]) {
      assertBadSeal(() => u.unseal(bad), bad);
    }
  });

  test('property: random v2 bodies are BAD_SEAL', () => {
    const u = new Unsealer({ secret: SECRET });
    for (let i = 0; i < 2000; i++) {
      const text = `v2.${randomBytes(randomInt(0, 120)).toString(i % 2 ? 'base64url' : 'base64')}`;
      assertBadSeal(() => u.unseal(text), text);
    }
  });

  test('versions: a v2-only gateway refuses v1 lines, a v1-only one refuses v2', () => {
    const v1 = sealV1('h:1', { secret: SECRET, kdf: 'md5' });
    const v2 = sealV2('h:1', { secret: SECRET, exp });
    assertBadSeal(() => unseal(v1, { secret: SECRET, versions: [2] }));
    assertBadSeal(() => unseal(v2, { secret: SECRET, versions: [1] }));
    assert.equal(unseal(v2, { secret: SECRET, versions: [2] }).version, 2);
  });
});

describe('Unsealer', () => {
  test('reuses derived keys for a repeated line (cache on) and still refuses the wrong secret', () => {
    const line = sealV1('h:1', { secret: SECRET, kdf: 'pbkdf2' });
    const u = new Unsealer({ secret: SECRET, kdf: 'pbkdf2', cacheSize: 2 });
    const first = process.hrtime.bigint();
    u.unseal(line);
    const cold = process.hrtime.bigint() - first;
    let warm = 0n;
    for (let i = 0; i < 5; i++) {
      const t = process.hrtime.bigint();
      assert.equal(u.unseal(line).address, 'h:1');
      warm += process.hrtime.bigint() - t;
    }
    assert.ok(warm / 5n < cold, `warm ${warm / 5n} ns, cold ${cold} ns`);
    for (let i = 0; i < 4; i++) u.unseal(sealV1(`h:${i + 2}`, { secret: SECRET, kdf: 'pbkdf2' })); // evicts
    assert.equal(u.unseal(line).address, 'h:1');
    assertBadSeal(() => new Unsealer({ secret: 'wrong', kdf: 'pbkdf2' }).unseal(line));
  });

  test('refuses an empty secret or an unknown kdf up front', () => {
    assert.throws(() => new Unsealer({ secret: '' }), RangeError);
    assert.throws(() => new Unsealer({ secret: 'x', kdf: 'sha1' as never }), RangeError);
  });
});

describe('SealedError', () => {
  test('codes map to the wire statuses, with fixed messages', () => {
    assert.deepEqual(
      Object.fromEntries(Object.entries(SEALED_ERRORS).map(([k, v]) => [k, v.status])),
      { BAD_LINE: 400, BAD_SEAL: 401, EXPIRED: 401, DIAL_FAILED: 502, DIAL_TIMEOUT: 504 },
    );
    const e = new SealedError('DIAL_TIMEOUT');
    assert.equal(e.name, 'SealedError');
    assert.equal(e.status, 504);
    assert.equal(e.message, SEALED_ERRORS.DIAL_TIMEOUT.message);
    assert.ok(e instanceof Error);
  });

  test('a failed unseal says nothing about the step, the secret or the plaintext', () => {
    const messages = new Set<string>();
    const line = sealV1('secret-host.internal:1', { secret: SECRET, kdf: 'md5' });
    for (const input of ['x', line.slice(0, -4), line]) {
      try {
        unseal(input, { secret: 'wrong-secret' });
        assert.fail('opened');
      } catch (err) {
        const e = err as SealedError;
        messages.add(`${e.code} ${e.message} ${String(e.cause)} ${e.stack}`.replace(/\n[\s\S]*/, ''));
        assert.ok(!e.message.includes('wrong-secret') && !e.message.includes('secret-host'));
        assert.equal(e.cause, undefined);
      }
    }
    assert.equal(messages.size, 1);
  });
});
