#!/usr/bin/env -S node --max-semi-space-size=32
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../config/load.js';
import { FileSource } from '../config/file-source.js';
import { formatHostPort } from '../config/address.js';
import { Gateway } from '../gateway.js';
import type { Config, ListenerConfig } from '../config/schema.js';
import type { HostPort } from '../config/address.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { acquirePidFile } from '../process/pid-file.js';
import { reusePortAvailable, setProcessRole } from '../process/port-sharing.js';
import { supervise } from '../process/supervisor.js';
import { reportReady, workerIdentity, type ListenerUrl } from '../process/worker.js';
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
  With workers: N, signal the primary (the pid in pidFile:); it forwards to every worker.
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
  const config = loaded.config;
  const logger = createLogger(config.log.level);

  // A worker of `workers: N` (forked by the primary below): serves, and reports to the primary instead of announcing.
  const worker = workerIdentity();
  if (worker) {
    setProcessRole({ sharing: worker.sharing, admin: worker.admin });
    const code = await serve(file, config, logger, (listeners, admin) => {
      logger.info({ worker: worker.index, listeners, admin }, 'worker serving');
      reportReady(listeners, admin);
    });
    // Stopped or failed: close the IPC channel (it would keep this process alive) and exit with `code`.
    cluster.worker?.disconnect();
    return code;
  }

  // `workers` and `pidFile` are read here, at start only.
  const pidFile = config.pidFile === undefined ? undefined : acquirePidFile(config.pidFile);
  if (pidFile && !pidFile.ok) {
    process.stderr.write(`portico: ${pidFile.error}\n`);
    return 1;
  }
  try {
    if (config.workers > 1) return await startWorkers(file, config, logger);
    return await serve(file, config, logger, (listeners, admin) => announce(logger, file, listeners, admin));
  } finally {
    pidFile?.release();
  }
}

/** The primary of `workers: N` (see process/supervisor.ts and docs/workers.md). */
async function startWorkers(file: string, config: Config, logger: Logger): Promise<number> {
  // Under SO_REUSEPORT each worker binds its own socket, so port 0 would give each its own port: use the shared handle then.
  const portZero = config.listeners.some((l) => l.listen.port === 0);
  const sharing = !portZero && (await reusePortAvailable()) ? 'reuse-port' : 'cluster';
  return supervise({
    workers: config.workers,
    sharing,
    shutdownTimeout: config.shutdownTimeout,
    logger,
    onStarted: (first, pids) => announce(logger, file, first.listeners, first.admin, { workers: pids.length, workerPids: pids, sharing }),
  });
}

/**
 * Runs one gateway on `config` until SIGTERM/SIGINT (graceful stop, resolves 0);
 * SIGHUP reloads the file. Resolves 1 when the config cannot be served.
 */
async function serve(file: string, config: Config, logger: Logger, onReady: (listeners: ListenerUrl[], admin: string | undefined) => void): Promise<number> {
  const gateway = new Gateway(logger);
  // Reopens the access-log files (logrotate). Installed first: without a listener, SIGUSR1 would start Node's inspector.
  process.on('SIGUSR1', () => gateway.reopenLogs());
  const result = await gateway.apply(config);
  if (!result.ok) {
    logger.error({ error: result.error }, 'cannot start');
    await gateway.stop(0);
    return 1;
  }
  const source = new FileSource(file, gateway);
  source.setWatch(config.watch);

  const listeners = config.listeners.map((l) => ({ name: l.name, protocol: l.protocol, url: listenerUrl(l.protocol, gateway.listenerAddress(l.name)!) }));
  const admin = gateway.adminAddress();
  onReady(listeners, admin && `http://${formatHostPort(admin)}`);

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

/**
 * A listener's URL for the start line: http/https as such, a forward proxy as
 * the http:// URL clients are given as their proxy, other L4 listeners with
 * their protocol as the scheme (tcp://, tls://, udp://, sealed://).
 */
function listenerUrl(protocol: ListenerConfig['protocol'], address: HostPort): string {
  const scheme = protocol === 'forward-proxy' ? 'http' : protocol;
  return `${scheme}://${formatHostPort(address)}`;
}

/** The "portico started" log line, and on a terminal the URLs to try (curl hints only for HTTP listeners). */
function announce(logger: Logger, file: string, listeners: ListenerUrl[], admin: string | undefined, extra: Record<string, unknown> = {}): void {
  logger.info({ config: resolve(file), listeners: listeners.map((l) => ({ name: l.name, url: l.url })), admin, ...extra }, 'portico started');
  if (!process.stderr.isTTY) return;
  const rows = listeners.map((l) => `  ${l.name.padEnd(12)} ${l.url}${l.protocol === 'http' || l.protocol === 'https' ? '/' : ''}`);
  if (admin) rows.push(`  ${'admin'.padEnd(12)} ${admin}/health`);
  const tries = listeners.filter((l) => l.protocol === 'http' || l.protocol === 'https').map((l) => `  curl -i ${l.url}/`);
  if (admin) tries.push(`  curl -i ${admin}/health`);
  const workers = typeof extra.workers === 'number' ? `, ${extra.workers} workers` : '';
  process.stderr.write(`\nPortico is running (${resolve(file)}${workers}):\n${rows.join('\n')}\n${tries.length ? `Try:\n${tries.join('\n')}\n` : ''}\n`);
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
