// `portico seal` / `portico unseal` (issue 5) through the real binary
// (dist/cli/main.js): output that the openssl CLI opens, openssl output that
// unseal opens, v2 lines and expiry, the secret from the environment, exit
// codes (0 done, 1 does not open, 2 usage) and that the secret is never printed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { runCli, type CliResult } from '../helpers/cli.js';
import { sealV2 } from '../../src/l4/sealed/codec.js';

const SECRET = 's3cret-for-cli-tests';
const NO_ENV_SECRET = { PORTICO_SEALED_SECRET: '' };

/** Runs `portico ARGS` (killed after 20 s), with `input` on stdin and no secret in the environment unless given. */
function portico(args: string[], env: NodeJS.ProcessEnv = NO_ENV_SECRET, input = ''): Promise<CliResult> {
  return runCli(args, { env, input, timeoutMs: 20_000 });
}

function opensslOpen(line: string, flags: string[], secret = SECRET): string {
  const r = spawnSync('openssl', ['enc', '-d', '-aes-256-cbc', '-a', '-A', '-k', secret, ...flags], { input: line, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

function opensslSeal(plain: string, flags: string[], secret = SECRET): string {
  const r = spawnSync('openssl', ['enc', '-aes-256-cbc', '-a', '-salt', '-k', secret, ...flags], { input: plain, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

function assertNoSecret(r: CliResult, secret = SECRET): void {
  assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), 'the secret was printed');
}

test('seal prints one line that openssl enc -d opens, for each kdf (pbkdf2 by default)', async () => {
  const cases: [string[], string[]][] = [
    [[], ['-pbkdf2']],
    [['--kdf', 'pbkdf2'], ['-pbkdf2']],
    [['--kdf', 'sha256'], ['-md', 'sha256']],
    [['--kdf', 'md5'], ['-md', 'md5']],
  ];
  for (const [args, flags] of cases) {
    const r = await portico(['seal', '--secret', SECRET, ...args, '10.0.0.7:5432']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, /^U2FsdGVkX1[A-Za-z0-9+/=]+\n$/);
    assert.equal(opensslOpen(r.stdout, flags), '10.0.0.7:5432');
    assertNoSecret(r);
  }
});

test('unseal opens what openssl enc made (argument or stdin, wrapped or joined) and names the kdf', async () => {
  for (const [flags, kdf] of [[['-md', 'md5'], 'md5'], [['-md', 'sha256'], 'sha256'], [['-pbkdf2'], 'pbkdf2']] as const) {
    const wrapped = opensslSeal('backend.example:8443\n', [...flags]);
    const byArg = await portico(['unseal', '--secret', SECRET, wrapped.replace(/\n/g, '')]);
    assert.equal(byArg.code, 0, byArg.stderr);
    assert.equal(byArg.stdout, 'backend.example:8443\n');
    assert.equal(byArg.stderr, `v1, kdf ${kdf}\n`);
    const byStdin = await portico(['unseal', '--secret', SECRET, '--kdf', kdf, '-'], NO_ENV_SECRET, wrapped);
    assert.equal(byStdin.code, 0, byStdin.stderr);
    assert.equal(byStdin.stdout, 'backend.example:8443\n');
    assertNoSecret(byArg);
  }
});

test('the secret from PORTICO_SEALED_SECRET; --secret wins over it', async () => {
  const env = { PORTICO_SEALED_SECRET: SECRET };
  const sealed = await portico(['seal', '[::1]:8080'], env);
  assert.equal(sealed.code, 0, sealed.stderr);
  assert.equal(opensslOpen(sealed.stdout, ['-pbkdf2']), '[::1]:8080');
  const opened = await portico(['unseal', sealed.stdout.trim()], env);
  assert.equal(opened.code, 0, opened.stderr);
  assert.equal(opened.stdout, '[::1]:8080\n');
  const other = await portico(['seal', '--secret', 'other-secret', 'h:1'], env);
  assert.equal(opensslOpen(other.stdout, ['-pbkdf2'], 'other-secret'), 'h:1');
  assertNoSecret(sealed);
  assertNoSecret(opened);
});

test('v2: seal --v2 --ttl, unseal prints the address and the expiry', async () => {
  const before = Date.now();
  const sealed = await portico(['seal', '--secret', SECRET, '--v2', '--ttl', '2h', 'db.internal:5432']);
  assert.equal(sealed.code, 0, sealed.stderr);
  assert.match(sealed.stdout, /^v2\.[A-Za-z0-9_-]+\n$/);
  const opened = await portico(['unseal', sealed.stdout.trim()], { PORTICO_SEALED_SECRET: SECRET });
  assert.equal(opened.code, 0, opened.stderr);
  assert.equal(opened.stdout, 'db.internal:5432\n');
  const expires = Date.parse(/expires (\S+)/.exec(opened.stderr)![1]!);
  assert.ok(Math.abs(expires - (before + 7_200_000)) < 60_000, opened.stderr);
  const defaultTtl = await portico(['seal', '--secret', SECRET, '--v2', 'h:1']);
  assert.equal(defaultTtl.code, 0, defaultTtl.stderr);
  assertNoSecret(sealed);
});

test('unseal: an expired v2 line or the wrong secret exits 1 without printing either secret', async () => {
  const expired = sealV2('h:1', { secret: SECRET, exp: Math.floor(Date.now() / 1000) - 10 });
  const r1 = await portico(['unseal', '--secret', SECRET, expired]);
  assert.equal(r1.code, 1);
  assert.equal(r1.stdout, '');
  assert.match(r1.stderr, /expired/);
  const line = opensslSeal('h:1', ['-pbkdf2']).replace(/\n/g, '');
  const r2 = await portico(['unseal', '--secret', 'not-the-secret', line]);
  assert.equal(r2.code, 1);
  assert.equal(r2.stdout, '');
  assert.match(r2.stderr, /invalid sealed address/);
  assertNoSecret(r2, 'not-the-secret');
  const r3 = await portico(['unseal', '--secret', SECRET, '--kdf', 'md5', line]);
  assert.equal(r3.code, 1);
  const r4 = await portico(['unseal', '--secret', SECRET, 'garbage!']);
  assert.equal(r4.code, 1);
});

test('bad usage exits 2 with the usage on stderr', async () => {
  const cases: [string[], RegExp][] = [
    [['seal', 'h:1'], /no secret/],
    [['seal', '--secret', SECRET], /missing the address/],
    [['seal', '--secret', SECRET, 'h:1', 'h:2'], /too many/],
    [['seal', '--secret', SECRET, 'h:0'], /bad address/],
    [['seal', '--secret', SECRET, 'no-port'], /bad address/],
    [['seal', '--secret', SECRET, '--kdf', 'sha1', 'h:1'], /bad --kdf/],
    [['seal', '--secret', SECRET, '--kdf', 'auto', 'h:1'], /bad --kdf/],
    [['seal', '--secret', SECRET, '--v2', '--kdf', 'md5', 'h:1'], /--kdf is for v1/],
    [['seal', '--secret', SECRET, '--ttl', '1h', 'h:1'], /--ttl needs --v2/],
    [['seal', '--secret', SECRET, '--v2', '--ttl', '3600', 'h:1'], /bad --ttl/],
    [['seal', '--secret', SECRET, '--v2', '--ttl', 'soon', 'h:1'], /bad --ttl/],
    [['seal', '--secret', SECRET, '--v2', '--ttl', '10ms', 'h:1'], /bad --ttl/],
    [['seal', '--secret', SECRET, '--bogus', 'h:1'], /bogus/],
    [['seal', '--secret'], /secret/],
    [['unseal', 'U2FsdGVkX1'], /no secret/],
    [['unseal', '--secret', SECRET], /missing/],
    [['unseal', '--secret', SECRET, '--kdf', 'sha1', 'x'], /bad --kdf/],
  ];
  for (const [args, message] of cases) {
    const r = await portico(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, message, args.join(' '));
    assert.match(r.stderr, new RegExp(`Usage: portico ${args[0]}`), args.join(' '));
    assertNoSecret(r);
  }
});

test('help: seal --help, unseal --help and portico --help', async () => {
  for (const cmd of ['seal', 'unseal']) {
    const r = await portico([cmd, '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`^Usage: portico ${cmd}`));
    assert.match(r.stdout, /PORTICO_SEALED_SECRET/);
  }
  const top = await portico(['--help']);
  assert.equal(top.code, 0);
  assert.match(top.stdout, /portico seal /);
  assert.match(top.stdout, /portico unseal /);
});
