import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

/**
 * The command line of `portico start | validate | stop | agent | connect` (seal and unseal parse
 * their own, see seal.ts). Contract:
 * - the config file is given as the one positional argument or as
 *   `-c/--config FILE`; both at once must name the same file;
 * - anything else (an unknown option, an extra argument, two different
 *   files) is a usage error: exit 2, one line naming the reason, then the
 *   command's usage, on stderr;
 * - `--help` (anywhere on the line) prints the command's usage on stdout, exit 0.
 */

export class UsageError extends Error {}

export interface CommandSpec {
  usage: string;
  /** Options besides -c/--config and -h/--help. */
  options: Record<string, { type: 'string' | 'boolean' }>;
}

export const PID_SIGNALS = `Which process to signal: the pid in pidFile: (\`portico stop\` reads it), or the
one your supervisor started (\`npm start\` and the \`portico\` binary run the gateway
as that process; with workers: N it is the primary, which forwards to every worker).`;

export const COMMANDS = {
  start: {
    usage: `Usage: portico start [FILE | -c FILE]

Runs the gateway on the config FILE (YAML or JSON); without one, on the shipped
examples/default.yaml. Prints "portico started" (JSON, stdout) once every
listener is bound; exits 1 with one "portico: cannot start: …" line on stderr
when a listener cannot be bound or the config cannot be served.

Signals: SIGTERM/SIGINT stop gracefully (in-flight requests finish within
shutdownTimeout), SIGHUP reloads FILE, SIGUSR1 reopens access-log files.
${PID_SIGNALS}
`,
    options: {},
  },
  validate: {
    usage: `Usage: portico validate FILE | -c FILE

Checks a config: prints "ok" (exit 0) or every error as "path: message" (exit 1).
`,
    options: {},
  },
  stop: {
    usage: `Usage: portico stop [FILE | -c FILE | --pid-file PATH] [--timeout 30s]

Sends SIGTERM to the gateway named by the pid file (pidFile: in FILE, or PATH)
and waits until that process has exited. Exit 0 once it has; 1 when there is no
pid file, it names no running process, the signal is not permitted, or the
process is still running after --timeout (default: shutdownTimeout + 5s with
FILE, 30s with --pid-file). A relative pidFile: is relative to the working
directory, for stop as for start.
`,
    options: { 'pid-file': { type: 'string' }, timeout: { type: 'string' } },
  },
  agent: {
    usage: `Usage: portico agent FILE | -c FILE

Runs a tunnel agent: dials the gateways listed in FILE (servers:), proves its
id, and exposes the local services of FILE through the gateway. It retries
unreachable gateways forever (unless reconnect.maxAttempts is set) and exits 1
only on a bad FILE. SIGHUP reloads the services of FILE without dropping the
connection; SIGTERM/SIGINT stop it. See docs/tunnel.md.
`,
    options: {},
  },
  connect: {
    usage: `Usage: portico connect --relay HOST:PORT --code CODE --listen HOST:PORT
                      [--token TOKEN] [--ca FILE] [--servername NAME]

Forwards every TCP connection accepted on --listen to the service registered
under CODE at the relay (TLS, then the relay handshake; see docs/relay.md).
The token is --token or $PORTICO_RELAY_TOKEN (a clients: token of the relay).
--ca is the PEM file the relay's certificate must chain to (default: the
system's CAs); --servername the name it is checked against (default: HOST).

A refused code (401, 404, 503) or an unreachable relay closes that local
connection and is logged; the forwarder keeps running. Exit 0 on
SIGTERM/SIGINT, 1 when --listen cannot be bound or --ca cannot be read,
2 on bad usage.
`,
    options: { relay: { type: 'string' }, code: { type: 'string' }, listen: { type: 'string' }, token: { type: 'string' }, ca: { type: 'string' }, servername: { type: 'string' } },
  },
} satisfies Record<string, CommandSpec>;

export type CommandName = keyof typeof COMMANDS;

export function isCommand(name: string): name is CommandName {
  return Object.hasOwn(COMMANDS, name);
}

export interface ParsedCommand {
  help: boolean;
  /** The config file, from the positional argument or -c/--config. */
  file: string | undefined;
  values: Record<string, string | boolean | undefined>;
}

/** Parses the arguments after the command name; throws UsageError. */
export function parseCommand(name: CommandName, argv: string[]): ParsedCommand {
  const spec: CommandSpec = COMMANDS[name];
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' }, ...spec.options },
    });
  } catch (err) {
    // parseArgs's messages are one line; drop its hint about `--` where present.
    throw new UsageError((err as Error).message.split('. To specify')[0]!);
  }
  const { values, positionals } = parsed;
  if (values.help) return { help: true, file: undefined, values };
  if (positionals.length > 1) throw new UsageError(`too many arguments: ${positionals.slice(1).map((p) => JSON.stringify(p)).join(' ')} (one config FILE at most)`);
  const positional = positionals[0];
  const option = values.config as string | undefined;
  if (positional !== undefined && option !== undefined && resolve(positional) !== resolve(option)) {
    throw new UsageError(`two config files given: "${positional}" and --config "${option}"`);
  }
  const file = positional ?? option;
  if (file === '') throw new UsageError('the config file name is empty');
  return { help: false, file, values };
}
