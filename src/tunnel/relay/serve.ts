import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { agentConfigSchema } from '../../config/schemas/agent.js';
import { formatHostPort, type HostPort } from '../../net/address.js';
import { createLogger, type Logger } from '../../observability/logger.js';
import { Agent, type AgentConnectionStatus } from '../agent/agent.js';
import { isValidCode } from '../code-pattern.js';
import { HEADER, STREAM_STATUS } from '../protocol.js';
import { TunnelSocket } from '../socket.js';
import { pemOf, relayAddress, type RelayTlsOptions } from './connect.js';

export interface ServeByCodeOptions extends RelayTlsOptions {
  /** A `services[]` token of the relay whose code pattern matches the code (at least 16 characters). */
  token: string;
  /** PING interval and answer timeout of the connection (default 10 s / 5 s). */
  heartbeat?: { interval?: number; timeout?: number };
  /** Reconnect backoff in ms (default 200 ms first, 30 s cap); `maxAttempts` 0 = never give up (default). */
  reconnect?: { initial?: number; max?: number; maxAttempts?: number };
  /** Where the connection's events are logged (default: warnings and errors as JSON lines on stdout). */
  logger?: Logger;
}

/** The relay client a stream carries: its `ip:port` as the relay saw it. */
export interface StreamInfo {
  client?: string;
}

export interface ServedByCode {
  /** Resolves once the relay accepted this service (again after every reconnect, at once while connected). */
  connected(): Promise<void>;
  /** The connection's state: connecting, connected, waiting (backoff), the last error (`refused: …` when the relay refused the token). */
  status(): AgentConnectionStatus;
  /** Stops: the registration leaves the relay, streams in flight are reset, no reconnect. */
  close(): Promise<void>;
}

/**
 * Serves `code` at `relay` without listening on any port (docs/relay.md): an
 * agent (the tunnel transport, ALPN `portico-tunnel/1`) whose id is the code
 * and whose one service is that code. Every connection a relay client makes
 * to the code arrives as a stream handed to `onStream`: a Duplex (half-close
 * honoured: `end()` sends END_STREAM, the client's FIN ends the readable
 * side; a reset destroys it with an error, which is not thrown when the
 * handler does not listen for 'error'). It reconnects as agents do (3
 * quick retries, then exponential backoff with jitter), forever unless
 * `reconnect.maxAttempts` is set.
 *
 * Throws a RangeError for an invalid code, token or relay address, and the
 * file error when `ca` names a file that cannot be read; nothing is dialled then.
 */
export function serveByCode(relay: string | HostPort, code: string, options: ServeByCodeOptions, onStream: (stream: Duplex, info: StreamInfo) => void): ServedByCode {
  if (!isValidCode(code)) throw new RangeError(`invalid service code ${JSON.stringify(code)}: expected 1-63 of A-Z a-z 0-9 _ . -`);
  const address = relayAddress(relay);
  const parsed = agentConfigSchema.safeParse({
    servers: [formatHostPort(address)],
    // The agent schema's id is stricter than a code (it must start with a letter or digit): the code replaces it below.
    id: 'relay-service',
    token: options.token,
    tls: { ...(options.servername !== undefined ? { serverName: options.servername } : {}), insecureSkipVerify: options.insecureSkipVerify === true },
    heartbeat: options.heartbeat ?? {},
    reconnect: options.reconnect ?? {},
    // Never dialled: streams go to onStream.
    services: [{ code, local: '127.0.0.1:9', type: 'tcp' }],
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new RangeError(`serveByCode: ${issue.path.join('.')} ${issue.message}`);
  }
  const config = { ...parsed.data, id: code };
  const logger = options.logger ?? createLogger('warn');
  const tlsHook: tls.ConnectionOptions = options.ca === undefined ? {} : { ca: pemOf(options.ca) };
  const agent = new Agent(config, logger, undefined, {
    tls: tlsHook,
    streamHandler: (stream, headers) => {
      const raw = headers[HEADER.client];
      const client = typeof raw === 'string' ? raw : undefined;
      stream.respond({ ':status': STREAM_STATUS.ok });
      const socket = new TunnelSocket(stream, splitPeer(client), { allowHalfOpen: true });
      // A client that resets, or a lost relay connection, destroys the stream with an error: that must not crash a
      // service whose handler did not listen for it ('close' follows in every case).
      socket.on('error', ignore);
      try {
        onStream(socket, client === undefined ? {} : { client });
      } catch (err) {
        logger.error({ code, error: (err as Error).message }, 'serveByCode: the stream handler threw; stream reset');
        socket.destroy();
      }
    },
  });
  agent.start();
  return {
    connected: () => agent.connected(),
    status: () => ({ ...agent.conn }),
    close: () => agent.stop(),
  };
}

function ignore(): void {}

function splitPeer(addr: string | undefined): { address?: string; port?: number } {
  if (addr === undefined) return {};
  const i = addr.lastIndexOf(':');
  return i < 0 ? { address: addr } : { address: addr.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(addr.slice(i + 1)) };
}
