#!/usr/bin/env node
// A plain `node` shebang: `env -S` is missing from BusyBox (Alpine). V8 flags
// such as --max-semi-space-size=32 go in NODE_OPTIONS or on the node command
// line (npm start, the Dockerfile and deploy/portico.service pass it).
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigText, readConfigText } from '../config/load.js';
import { formatConfigErrors, type ConfigError } from '../config/errors.js';
import { loadConfigFile } from '../sources/file.js';
import { openConfigSource } from '../sources/open.js';
import { Gateway } from '../gateway.js';
import type { Config, ListenerConfig } from '../config/schema.js';
import { formatHostPort, type HostPort } from '../net/address.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { acquirePidFile } from '../process/pid-file.js';
import { reusePortAvailable, setProcessRole } from '../process/port-sharing.js';
import { supervise } from '../process/supervisor.js';
import { reloadOtherWorkers } from '../process/propagate-write.js';
import { reportReady, workerIdentity, type ListenerUrl, type WorkerIdentity } from '../process/worker.js';
import { answerForThisWorker, clusterAdminHooks, recordingReload, singleProcessHooks, type ProcessAdmin } from '../process/cluster-admin.js';
import { parseDuration } from '../config/duration.js';
import { COMMANDS, isCommand, parseCommand, PID_SIGNALS, UsageError, type CommandName, type ParsedCommand } from './args.js';
import { runAgent } from './agent.js';
import { runConnect } from './connect.js';
import { runSeal, runUnseal, SEAL_USAGE, UNSEAL_USAGE } from './seal.js';
import { stopByPidFile } from './stop.js';
import { CONFIG_USAGE, runConfig } from './config-store.js';
import { REGISTER_USAGE, runRegister } from './register.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The config `portico start` serves when given none: shipped with the package. */
export const DEFAULT_CONFIG = join(root, 'examples', 'default.yaml');

const HELP = `portico — a microservice gateway

Usage:
  portico start    [FILE]            run the gateway (default config: examples/default.yaml)
  portico validate  FILE             check a config; prints "ok" or every error as "path: message"
  portico stop     [FILE | --pid-file PATH]
                                     SIGTERM the gateway named by the pid file, wait until it exits
  portico agent     FILE             run a tunnel agent: expose local services through a gateway
  portico connect  --relay HOST:PORT --code CODE --listen HOST:PORT [--token T] [--ca FILE]
                                     forward local connections to a service code at a relay
  portico seal     [--secret S] [--kdf md5|sha256|pbkdf2 | --v2 --ttl 1h] HOST:PORT
                                     print a sealed-address line (secret: or $PORTICO_SEALED_SECRET)
  portico unseal   [--secret S] [--kdf auto|md5|sha256|pbkdf2] LINE|-
                                     print the address a sealed line names (debugging)
  portico config   push [--to STORE] FILE | pull [--from STORE] [-o OUT]
                                     move the shared config sections into or out of etcd/ZooKeeper
  portico register (--zookeeper HOSTS --path P | --etcd URL --prefix P) --address HOST:PORT
                                     keep a service registered for discovery (optionally health-checked)
  portico COMMAND --help             the usage of one command
  portico --help | --version

Options:
  -c, --config FILE   the config document (YAML or JSON), instead of the FILE argument

Signals (start): SIGTERM/SIGINT stop gracefully; SIGHUP reloads the config;
SIGUSR1 reopens access-log files (after log rotation).
${PID_SIGNALS}

Exit codes: 0 done, 1 failed (invalid config, cannot start…), 2 bad usage.
Set PORTICO_DEBUG=1 to see stack traces of unexpected errors.
`;

function version(): string {
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
}

/** A usage error: the reason on one line, then `usage`, on stderr; exit 2. */
function usageError(reason: string, usage: string): number {
  process.stderr.write(`portico: ${reason}\n\n${usage}`);
  return 2;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
      return usageError('no command given', HELP);
    case '-h':
    case '--help':
      process.stdout.write(HELP);
      return 0;
    case '-v':
    case '--version':
      process.stdout.write(`portico ${version()}\n`);
      return 0;
    case 'help':
      return help(rest);
    // Subcommands with their own options (parsed by their own module).
    case 'seal':
      return runSeal(rest);
    case 'unseal':
      return runUnseal(rest);
    case 'config':
      return runConfig(rest);
    case 'register':
      return runRegister(rest);
  }
  if (!isCommand(command)) {
    return command.startsWith('-') ? usageError(`${command} goes after a command, e.g. portico start ${command} …`, HELP) : usageError(`unknown command "${command}"`, HELP);
  }
  let parsed: ParsedCommand;
  try {
    parsed = parseCommand(command, rest);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    return usageError(err.message, COMMANDS[command].usage);
  }
  if (parsed.help) {
    process.stdout.write(COMMANDS[command].usage);
    return 0;
  }
  return run(command, parsed);
}

/** `portico help [COMMAND]`. */
function help(args: string[]): number {
  if (args.length === 0) {
    process.stdout.write(HELP);
    return 0;
  }
  const usage = args.length === 1 ? usageOf(args[0]!) : undefined;
  if (usage === undefined) return usageError(args.length === 1 ? `unknown command "${args[0]}"` : 'help takes one command name', HELP);
  process.stdout.write(usage);
  return 0;
}

function usageOf(command: string): string | undefined {
  if (command === 'seal') return SEAL_USAGE;
  if (command === 'unseal') return UNSEAL_USAGE;
  if (command === 'config') return CONFIG_USAGE;
  if (command === 'register') return REGISTER_USAGE;
  return isCommand(command) ? COMMANDS[command].usage : undefined;
}

function run(command: CommandName, p: ParsedCommand): Promise<number> | number {
  switch (command) {
    case 'validate':
      if (p.file === undefined) return usageError('validate needs a config FILE', COMMANDS.validate.usage);
      return validate(p.file);
    case 'start':
      return start(p.file ?? DEFAULT_CONFIG);
    case 'stop':
      return stop(p);
    case 'agent':
      if (p.file === undefined) return usageError('agent needs a config FILE', COMMANDS.agent.usage);
      return runAgent(p.file, (errors) => printConfigErrors(p.file!, errors));
    case 'connect':
      if (p.file !== undefined) return usageError(`connect takes no config FILE (got "${p.file}")`, COMMANDS.connect.usage);
      return runConnect(p.values, (reason) => usageError(reason, COMMANDS.connect.usage));
  }
}

/**
 * Writes config errors on stderr, one `path: message` line each (the format
 * `validate` promises and scripts parse); a problem in the text itself as
 * `file:line:column: message` and a code frame. Every command prints them through here.
 */
function printConfigErrors(file: string, errors: ConfigError[]): void {
  process.stderr.write(`${formatConfigErrors(file, errors)}\n`);
}

function validate(file: string): number {
  const result = loadConfigFile(file);
  if (result.ok) {
    process.stdout.write('ok\n');
    return 0;
  }
  printConfigErrors(file, result.errors);
  return 1;
}

/** `portico stop`: the pid file from --pid-file or from FILE's pidFile:. */
async function stop(p: ParsedCommand): Promise<number> {
  const usage = COMMANDS.stop.usage;
  const pidFileOption = p.values['pid-file'] as string | undefined;
  if (pidFileOption !== undefined && p.file !== undefined) return usageError('give either a config FILE or --pid-file, not both', usage);
  if (pidFileOption === undefined && p.file === undefined) return usageError('stop needs a config FILE (with pidFile:) or --pid-file PATH', usage);
  const timeoutText = p.values.timeout as string | undefined;
  const timeoutOption = timeoutText === undefined ? undefined : parseDuration(timeoutText);
  if (timeoutText !== undefined && (timeoutOption === undefined || /^\d+(?:\.\d+)?$/.test(timeoutText))) {
    return usageError(`bad --timeout "${timeoutText}": a duration with a unit (500ms, 30s, 2m)`, usage);
  }
  let pidFile = pidFileOption;
  let timeout = timeoutOption ?? 30_000;
  if (p.file !== undefined) {
    // Only pidFile, drain and shutdownTimeout are needed: the files the config names are not checked (nor created).
    const text = readConfigText(p.file);
    const loaded = typeof text === 'string' ? loadConfigText(text) : { ok: false as const, errors: [text] };
    if (!loaded.ok) {
      process.stderr.write(`portico: ${p.file}: invalid config\n`);
      printConfigErrors(p.file, loaded.errors);
      return 1;
    }
    if (loaded.config.pidFile === undefined) {
      process.stderr.write(`portico: ${p.file} sets no pidFile:, so the process to stop is unknown; signal it yourself or pass --pid-file\n`);
      return 1;
    }
    pidFile = loaded.config.pidFile;
    timeout = timeoutOption ?? loaded.config.drain + loaded.config.shutdownTimeout + 5000;
  }
  const result = await stopByPidFile(pidFile!, timeout);
  if (!result.ok) {
    process.stderr.write(`portico: ${result.error}\n`);
    return 1;
  }
  process.stderr.write(`portico: stopped process ${result.pid} (${result.ms} ms)\n`);
  return 0;
}

async function start(file: string): Promise<number> {
  const loaded = loadConfigFile(file);
  if (!loaded.ok) {
    process.stderr.write(`portico: ${file}: invalid config\n`);
    printConfigErrors(file, loaded.errors);
    return 1;
  }
  const config = loaded.config;
  const logger = createLogger(config.log.level);

  // A worker of `workers: N` (forked by the primary below): serves, and reports to the primary instead of announcing.
  const worker = workerIdentity();
  if (worker) {
    setProcessRole({ sharing: worker.sharing, admin: worker.admin });
    const code = await serve(
      file,
      config,
      logger,
      (listeners, admin) => {
        logger.info({ worker: worker.index, listeners, admin }, 'worker serving');
        reportReady(listeners, admin);
      },
      worker,
    );
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
    // Each worker drains (SIGTERM) before its graceful stop: both are its budget before SIGKILL.
    shutdownTimeout: config.drain + config.shutdownTimeout,
    logger,
    onStarted: (first, pids) => announce(logger, file, first.listeners, first.admin, { workers: pids.length, workerPids: pids, sharing }),
  });
}

/**
 * Runs one gateway on `config` until SIGTERM/SIGINT (graceful stop, resolves 0);
 * SIGHUP reloads the file (and a config store's document). Resolves 1 when the config cannot be served.
 */
async function serve(file: string, fileConfig: Config, logger: Logger, onReady: (listeners: ListenerUrl[], admin: string | undefined) => void, worker?: WorkerIdentity): Promise<number> {
  // The file itself, or a config store (`configSource:`) whose document is read now (the cached one while it is down).
  const opened = await openConfigSource(file, fileConfig, logger);
  if (!opened.ok) {
    process.stderr.write(`portico: ${file}: cannot start from ${fileConfig.configSource.type === 'file' ? 'this file' : 'its config store'}\n`);
    printConfigErrors(file, opened.errors);
    return 1;
  }
  const { source, config } = opened;
  if (opened.kind === 'store') logger.info({ store: source.origin, from: opened.from }, opened.note);
  const gateway = new Gateway(logger);
  // The admin API reads and writes the config through the source (recordingReload below subscribes the gateway to it).
  gateway.attachSource(source);
  const here: ProcessAdmin = { index: worker?.index ?? 0, workers: worker ? config.workers : 1, gateway, reload: recordingReload(source, gateway, loadConfigFile) };
  // The admin API (slot 0's) answers for every worker: the others answer its asks (process/cluster-admin.ts).
  gateway.adminHooks = worker ? clusterAdminHooks(here) : singleProcessHooks(here);
  // An admin API write is applied and stored by this worker; the others then load the stored document.
  if (worker) gateway.afterConfigWrite = () => reloadOtherWorkers(config.workers, worker.index, 'admin API write');
  // Reopens the access-log files (logrotate). Installed first: without a listener, SIGUSR1 would start Node's inspector.
  process.on('SIGUSR1', () => gateway.reopenLogs());
  const result = await gateway.apply(config);
  if (!result.ok) {
    logger.error({ error: result.error }, 'cannot start');
    // Also as plain text: the JSON log may go to a collector, and the operator is looking at the terminal.
    process.stderr.write(`portico: cannot start: ${result.error}\n`);
    source.close();
    await gateway.stop(0);
    return 1;
  }
  source.onInvalid = () => gateway.metrics.reloaded(false);
  if (opened.kind === 'file') {
    opened.source.adopt();
    opened.source.setWatch(config.watch);
  } else {
    opened.source.watch();
  }
  if (worker) answerForThisWorker(here);

  const listeners = config.listeners.map((l) => ({ name: l.name, protocol: l.protocol, url: listenerUrl(l.protocol, gateway.listenerAddress(l.name)!) }));
  const admin = gateway.adminAddress();
  onReady(listeners, admin && `http://${formatHostPort(admin)}`);

  return new Promise<number>((resolve) => {
    process.on('SIGHUP', () => void source.reload('SIGHUP'));
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        // A second signal cuts a drain short (the graceful stop itself still runs to its end).
        gateway.endDrain();
        return;
      }
      stopping = true;
      logger.info({ signal }, 'stopping: finishing in-flight requests');
      source.close();
      // SIGTERM (a process manager, a load-balanced deployment) drains first; SIGINT (Ctrl-C) does not.
      void gateway.shutdown(signal === 'SIGTERM').then(() => {
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

// No error path may end a running gateway: a promise rejected where nobody awaits it is logged, not fatal
// (Node's default would exit). Thrown exceptions keep Node's default: the process state is unknown then.
process.on('unhandledRejection', (reason) => {
  const err = reason instanceof Error ? reason : new Error(String(reason));
  process.stderr.write(`portico: unexpected error (the gateway keeps running): ${process.env.PORTICO_DEBUG === '1' ? (err.stack ?? err.message) : err.message}\n`);
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // An unexpected error: its message only; the stack with PORTICO_DEBUG=1.
    const debug = process.env.PORTICO_DEBUG === '1';
    const text = err instanceof Error ? (debug ? (err.stack ?? err.message) : err.message) : String(err);
    process.stderr.write(`portico: ${text}\n`);
    process.exitCode = 1;
  },
);
