import { readFileSync } from 'node:fs';
import { formatHostPort, parseHostPort, type HostPort } from '../net/address.js';
import { createLogger } from '../observability/logger.js';
import { isValidCode } from '../tunnel/code-pattern.js';
import { isValidRelayToken } from '../tunnel/relay/handshake.js';
import { startForwarder } from '../tunnel/relay/forward.js';
import { UsageError } from './args.js';

export interface ConnectArgs {
  relay: HostPort;
  code: string;
  listen: HostPort;
  token: string;
  ca: Buffer | undefined;
  servername: string | undefined;
}

/** Checks the options of `portico connect`; throws UsageError naming the first problem. */
export function connectArgs(values: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv): ConnectArgs {
  const str = (name: string): string | undefined => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
  const address = (name: string): HostPort => {
    const v = str(name);
    if (v === undefined) throw new UsageError(`--${name} HOST:PORT is required`);
    const a = parseHostPort(v);
    if (a === undefined || (name === 'relay' && a.port === 0)) throw new UsageError(`--${name} ${JSON.stringify(v)} is not HOST:PORT`);
    return a;
  };
  const relay = address('relay');
  const code = str('code');
  if (code === undefined) throw new UsageError('--code CODE is required');
  if (!isValidCode(code)) throw new UsageError(`--code ${JSON.stringify(code)} is not a service code (1-63 of A-Z a-z 0-9 _ . -)`);
  const listen = address('listen');
  const token = str('token') ?? env.PORTICO_RELAY_TOKEN;
  if (token === undefined || token === '') throw new UsageError('a token is required: --token TOKEN or $PORTICO_RELAY_TOKEN');
  if (!isValidRelayToken(token)) throw new UsageError('the token must be 1-512 printable ASCII characters without spaces');
  return { relay, code, listen, token, ca: undefined, servername: str('servername') };
}

/** `portico connect`: runs the forwarder until SIGTERM/SIGINT. */
export async function runConnect(values: Record<string, string | boolean | undefined>, usageError: (reason: string) => number): Promise<number> {
  let args: ConnectArgs;
  try {
    args = connectArgs(values, process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    return usageError(err.message);
  }
  const caFile = typeof values.ca === 'string' ? values.ca : undefined;
  if (caFile !== undefined) {
    try {
      args.ca = readFileSync(caFile);
    } catch (err) {
      process.stderr.write(`portico connect: cannot read --ca ${caFile}: ${(err as Error).message}\n`);
      return 1;
    }
  }
  const logger = createLogger('info');
  let forwarder;
  try {
    forwarder = await startForwarder({
      listen: args.listen,
      relay: args.relay,
      code: args.code,
      token: args.token,
      ...(args.ca !== undefined ? { ca: args.ca } : {}),
      ...(args.servername !== undefined ? { servername: args.servername } : {}),
      logger,
    });
  } catch (err) {
    process.stderr.write(`portico connect: cannot listen on ${formatHostPort(args.listen)}: ${(err as Error).message}\n`);
    return 1;
  }
  logger.info({ listen: formatHostPort(forwarder.address), relay: formatHostPort(args.relay), code: args.code }, 'portico connect listening');
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'portico connect stopping');
      void forwarder.close().finally(() => resolve(0));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
