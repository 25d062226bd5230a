import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseDuration } from '../config/duration.js';
import { parseSealedAddress, SEAL_KDFS, sealV1, sealV2, unseal, type SealKdf, type UnsealKdf } from '../l4/sealed/codec.js';
import { SealedError } from '../l4/sealed/errors.js';

/**
 * `portico seal` and `portico unseal` (docs/sealed.md): make and
 * open sealed-address lines. Exit codes: 0 done, 1 the line does not open
 * (or has expired), 2 bad usage (the usage is printed). The secret comes
 * from `--secret` or `PORTICO_SEALED_SECRET` and is never printed.
 */

export const SECRET_ENV = 'PORTICO_SEALED_SECRET';

export const SEAL_USAGE = `Usage: portico seal [--secret S] [--kdf md5|sha256|pbkdf2] HOST:PORT
       portico seal [--secret S] --v2 [--ttl 1h] HOST:PORT

Prints a sealed-address line for HOST:PORT ([IPv6]:PORT for IPv6).
  --secret S   the shared secret (default: $${SECRET_ENV}, which keeps it out of shell history)
  --kdf K      v1 key derivation, as openssl enc: md5 (-md md5), sha256 (-md sha256), pbkdf2 (-pbkdf2, the default)
  --v2         the v2 format: AES-256-GCM, authenticated, with an expiry
  --ttl D      v2 lifetime: 30s, 15m, 1h, 720h… (default 1h)
`;

export const UNSEAL_USAGE = `Usage: portico unseal [--secret S] [--kdf auto|md5|sha256|pbkdf2] LINE|-

Prints the HOST:PORT a sealed line names (v1 or v2; "-" reads the line from stdin).
  --secret S   the shared secret (default: $${SECRET_ENV})
  --kdf K      v1 key derivation (default auto: md5, then sha256, then pbkdf2)
`;

/** Where the commands read the environment and write (the process by default). */
export interface CliIo {
  env: NodeJS.ProcessEnv;
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  /** The whole of stdin, for `unseal -`. */
  stdin(): string;
}

const processIo: CliIo = {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: () => readFileSync(0, 'latin1'),
};

class UsageError extends Error {}

interface Parsed {
  secret: string;
  kdf: string | undefined;
  positional: string;
  values: Record<string, string | boolean | undefined>;
}

function parse(argv: string[], io: CliIo, extra: Record<string, { type: 'string' | 'boolean' }>): Parsed | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { secret: { type: 'string' }, kdf: { type: 'string' }, help: { type: 'boolean', short: 'h' }, ...extra },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'missing the address argument' : 'too many arguments');
  const secret = (values.secret as string | undefined) ?? io.env[SECRET_ENV];
  if (!secret) throw new UsageError(`no secret: pass --secret or set ${SECRET_ENV}`);
  return { secret, kdf: values.kdf as string | undefined, positional: positionals[0]!, values };
}

function usage(io: CliIo, text: string, err: unknown): number {
  if (!(err instanceof UsageError)) throw err;
  io.stderr.write(`portico: ${err.message}\n\n${text}`);
  return 2;
}

/** `portico seal`: prints one sealed line (no secret, no key) and returns the exit code. */
export function runSeal(argv: string[], io: CliIo = processIo): number {
  try {
    const p = parse(argv, io, { v2: { type: 'boolean' }, ttl: { type: 'string' } });
    if (p === 'help') {
      io.stdout.write(SEAL_USAGE);
      return 0;
    }
    let line: string;
    if (p.values.v2) {
      if (p.kdf !== undefined) throw new UsageError('--kdf is for v1; v2 has its own key derivation');
      const ttlText = (p.values.ttl as string | undefined) ?? '1h';
      const ttl = /^\d+(?:\.\d+)?$/.test(ttlText) ? undefined : parseDuration(ttlText);
      if (ttl === undefined || ttl < 1000) throw new UsageError(`bad --ttl "${ttlText}": a duration of at least 1s with a unit (30s, 15m, 1h)`);
      line = sealV2(address(p.positional), { secret: p.secret, exp: Math.floor((Date.now() + ttl) / 1000) });
    } else {
      if (p.values.ttl !== undefined) throw new UsageError('--ttl needs --v2');
      const kdf = p.kdf ?? 'pbkdf2';
      if (!SEAL_KDFS.includes(kdf as SealKdf)) throw new UsageError(`bad --kdf "${kdf}": md5, sha256 or pbkdf2`);
      line = sealV1(address(p.positional), { secret: p.secret, kdf: kdf as SealKdf });
    }
    io.stdout.write(`${line}\n`);
    return 0;
  } catch (err) {
    return usage(io, SEAL_USAGE, err);
  }
}

/** `portico unseal`: prints the address a line names, for debugging; exit 1 when it does not open. */
export function runUnseal(argv: string[], io: CliIo = processIo): number {
  try {
    const p = parse(argv, io, {});
    if (p === 'help') {
      io.stdout.write(UNSEAL_USAGE);
      return 0;
    }
    const kdf = p.kdf ?? 'auto';
    if (kdf !== 'auto' && !SEAL_KDFS.includes(kdf as SealKdf)) throw new UsageError(`bad --kdf "${kdf}": auto, md5, sha256 or pbkdf2`);
    const line = p.positional === '-' ? io.stdin().trim() : p.positional;
    try {
      const opened = unseal(line, { secret: p.secret, kdf: kdf as UnsealKdf });
      io.stdout.write(`${opened.address}\n`);
      io.stderr.write(opened.version === 2 ? `v2, expires ${new Date(opened.exp! * 1000).toISOString()}\n` : `v1, kdf ${opened.kdf}\n`);
      return 0;
    } catch (err) {
      if (!(err instanceof SealedError)) throw err;
      io.stderr.write(err.code === 'EXPIRED' ? `portico: ${err.message}\n` : `portico: ${err.message} (wrong secret or kdf, or a damaged line)\n`);
      return 1;
    }
  } catch (err) {
    return usage(io, UNSEAL_USAGE, err);
  }
}

function address(text: string): string {
  if (!parseSealedAddress(text)) throw new UsageError(`bad address "${text}": HOST:PORT with a port 1-65535 ([IPv6]:PORT for IPv6)`);
  return text;
}
