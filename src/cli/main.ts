#!/usr/bin/env -S node --max-semi-space-size=32
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../config/load.js';
import { FileSource } from '../config/file-source.js';
import { formatHostPort } from '../config/address.js';
import { Gateway } from '../gateway.js';
import { createLogger } from '../observability/logger.js';
import { runSeal, runUnseal } from './seal.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The config `portico start` serves when given none: shipped with the package. */
export const DEFAULT_CONFIG = join(root, 'examples', 'default.yaml');

const HELP = `portico — a microservice gateway

Usage:
  portico start    [--config FILE]   run the gateway (default config: examples/default.yaml)
  portico validate  --config FILE    check a config; prints "ok" or every error as "path: message"
  portico seal     [--secret S] [--kdf md5|sha256|pbkdf2 | --v2 --ttl 1h] HOST:PORT
                                     print a sealed-address line (secret: or $PORTICO_SEALED_SECRET)
  portico unseal   [--secret S] [--kdf auto|md5|sha256|pbkdf2] LINE|-
                                     print the address a sealed line names (debugging)
  portico --help | --version

Options:
  -c, --config FILE   the config document (YAML or JSON)

Signals (start): SIGTERM/SIGINT stop gracefully; SIGHUP reloads the config.
`;

function version(): string {
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
}

async function main(argv: string[]): Promise<number> {
  // Subcommands with their own options (parsed by their own module).
  switch (argv[0]) {
    case 'seal':
      return runSeal(argv.slice(1));
    case 'unseal':
      return runUnseal(argv.slice(1));
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.version) {
    process.stdout.write(`portico ${version()}\n`);
    return 0;
  }
  const command = positionals[0];
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(HELP);
    return values.help || command === 'help' ? 0 : 2;
  }
  switch (command) {
    case 'validate':
      return validate(values.config);
    case 'start':
      return start(values.config ?? DEFAULT_CONFIG);
    default:
      process.stderr.write(`unknown command "${command}"\n\n${HELP}`);
      return 2;
  }
}

function validate(file: string | undefined): number {
  if (!file) {
    process.stderr.write('validate needs --config FILE\n');
    return 2;
  }
  const result = loadConfigFile(file);
  if (result.ok) {
    process.stdout.write('ok\n');
    return 0;
  }
  for (const e of result.errors) process.stderr.write(`${e.path}: ${e.message}\n`);
  return 1;
}

async function start(file: string): Promise<number> {
  const loaded = loadConfigFile(file);
  if (!loaded.ok) {
    process.stderr.write(`${file}: invalid config\n`);
    for (const e of loaded.errors) process.stderr.write(`${e.path}: ${e.message}\n`);
    return 1;
  }
  const logger = createLogger(loaded.config.log.level);
  const gateway = new Gateway(logger);
  const result = await gateway.apply(loaded.config);
  if (!result.ok) {
    logger.error({ error: result.error }, 'cannot start');
    await gateway.stop(0);
    return 1;
  }
  const source = new FileSource(file, gateway);
  source.setWatch(loaded.config.watch);

  const listeners = loaded.config.listeners.map((l) => {
    const a = gateway.listenerAddress(l.name)!;
    return { name: l.name, url: `http://${formatHostPort(a)}` };
  });
  const admin = gateway.adminAddress();
  logger.info({ config: source.file, listeners, admin: admin && `http://${formatHostPort(admin)}` }, 'portico started');
  if (process.stderr.isTTY) {
    const lines = listeners.map((l) => `  ${l.name.padEnd(12)} ${l.url}/`);
    if (admin) lines.push(`  ${'admin'.padEnd(12)} http://${formatHostPort(admin)}/health`);
    process.stderr.write(`\nPortico is running (${source.file}). Try:\n${lines.map((l) => `  curl -i ${l.trim().split(/\s+/)[1]}`).join('\n')}\n\n`);
  }

  return new Promise<number>((resolve) => {
    process.on('SIGHUP', () => void source.reload('SIGHUP'));
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'stopping: finishing in-flight requests');
      source.close();
      void gateway.stop().then(() => {
        logger.info('stopped');
        resolve(0);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`portico: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
