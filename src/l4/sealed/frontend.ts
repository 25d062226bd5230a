import { createHash } from 'node:crypto';
import type net from 'node:net';
import type { Binding } from '../../listeners/frontend.js';
import type { AnyListenerRuntime } from '../../listeners/listener-runtime.js';
import type { Logger } from '../../observability/logger.js';
import { DialError } from '../dial.js';
import type { L4ListenerRuntime } from '../listener-runtime.js';
import type { SealedListenerConfig } from '../schema.js';
import { splice } from '../splice.js';
import { noteSplice } from '../stream-connection.js';
import { L4StreamFrontend, type Accepted, type ConnectionEnd } from '../stream-frontend.js';
import { SealedAllowList } from './allow.js';
import { Unsealer, type SealedAddress } from './codec.js';
import { dialSealed } from './dial.js';
import { SealedDeniedError, SealedError } from './errors.js';
import { readLine, type LineError, type ReadLine } from './line.js';

/** What a connection is checked and opened with: compiled once per listener runtime. */
interface Policy {
  unsealer: Unsealer;
  allow: SealedAllowList;
}

type Runtime = L4ListenerRuntime<SealedListenerConfig>;

/**
 * `protocol: sealed` (issue 5; docs/sealed.md "Listener"). Per connection:
 *
 * 1. read one line (`readLine`: at most `lineLimit` bytes before `\n`,
 *    within `timeouts.handshake`) — else answer `400`;
 * 2. open it with the listener's Unsealer (PBKDF2 off the event loop) —
 *    else `401`;
 * 3. resolve and dial it under `allow` (`dialSealed`: `retry` attempts of
 *    `timeout` each, the whole phase within retry × timeout of the line's
 *    arrival) — else `502` (refused, unresolvable, or not allowed) or
 *    `504` (every attempt timed out);
 * 4. answer `200`, send the bytes that followed the newline to the
 *    backend, then splice both ways.
 *
 * Every answer is exactly three ASCII digits. After a failure the
 * connection is ended (FIN, not reset): Portico drains what the client
 * still sends and closes when the client does, or after
 * `timeouts.handshake`. With `uniformErrors`, failures after the line
 * (`401`, `502`, `504`) are all answered `502`, `uniformDelay` after the
 * line arrived. The access log names the outcome and the backend, never
 * the line or the secret.
 *
 * The Unsealer (its key caches, the v2 master key) is kept across reloads
 * while the secret, kdf, formats and line limit stay the same.
 */
export class SealedFrontend extends L4StreamFrontend<SealedListenerConfig> {
  readonly kind = 'sealed' as const;
  readonly #policies = new WeakMap<Runtime, Policy>();
  #unsealer: { key: string; unsealer: Unsealer } | undefined;

  constructor(binding: Binding, runtime: Runtime, logger: Logger) {
    super(binding, runtime, logger);
    this.#policyFor(runtime);
  }

  override update(runtime: AnyListenerRuntime): void {
    super.update(runtime);
    this.#policyFor(this.runtime);
  }

  protected serve(a: Accepted<SealedListenerConfig>): void {
    this.#handshake(a, this.#policyFor(a.runtime)).catch((err: unknown) => {
      // A bug, not a client's doing: drop the connection, keep the gateway.
      a.socket.destroy();
      this.logger.error({ listener: this.binding.name, err }, 'sealed handshake failed');
    });
  }

  #policyFor(runtime: Runtime): Policy {
    const known = this.#policies.get(runtime);
    if (known) return known;
    const c = runtime.config;
    const versions = [...new Set(c.formats)].sort().map((f) => (f === 'v1' ? 1 : 2) as 1 | 2);
    // The secret only as a digest, so the key is safe to keep and compare.
    const key = createHash('sha256').update(JSON.stringify([c.secret, c.kdf, versions, c.lineLimit])).digest('base64');
    let unsealer = this.#unsealer?.key === key ? this.#unsealer.unsealer : undefined;
    if (!unsealer) {
      unsealer = new Unsealer({ secret: c.secret, kdf: c.kdf, versions, lineLimit: c.lineLimit });
      void unsealer.prepare();
      if (runtime === this.runtime) this.#unsealer = { key, unsealer };
    }
    const policy = { unsealer, allow: new SealedAllowList(c.allow) };
    this.#policies.set(runtime, policy);
    return policy;
  }

  async #handshake(a: Accepted<SealedListenerConfig>, policy: Policy): Promise<void> {
    const { socket, runtime } = a;
    const c = runtime.config;
    const log = (end: Omit<ConnectionEnd, 'client' | 'startedAt'>) => this.logConnection(runtime, { client: a.client, startedAt: a.startedAt, ...end });

    let read: ReadLine;
    try {
      read = await readLine(socket, a.head, c.lineLimit, c.timeouts.handshake);
    } catch (err) {
      const e = err as LineError;
      if (e.reason === 'CLOSED' || socket.destroyed) {
        socket.destroy();
        log({ outcome: 'CLOSED', error: e.message });
      } else {
        answer(socket, 400, 0, c.timeouts.handshake, () => log({ outcome: 'BAD_LINE', error: e.message, extra: { status: 400 } }));
      }
      return;
    }

    const arrival = Date.now();
    const abort = new AbortController();
    const onClose = () => abort.abort();
    socket.once('close', onClose);
    let opened: SealedAddress | undefined;
    try {
      opened = await policy.unsealer.unsealAsync(read.line);
      const { socket: up, target } = await dialSealed(opened.host, opened.port, {
        allow: policy.allow,
        attempts: c.retry,
        timeoutMs: c.timeout,
        deadline: arrival + c.retry * c.timeout,
        keepAliveMs: c.tcpKeepAlive,
        highWaterMark: c.buffer,
        signal: abort.signal,
      });
      socket.off('close', onClose);
      const backend = backendFields(opened);
      if (socket.destroyed) {
        up.destroy();
        log({ outcome: 'CLOSED', target, error: 'the client closed before the answer', extra: backend });
        return;
      }
      // "200" is queued before the splice starts, so it reaches the client before any backend byte.
      socket.write('200');
      noteSplice(socket, up, undefined, target);
      splice(socket, up, { idleMs: c.timeouts.idle, head: read.rest }, (r) =>
        log({
          outcome: 'ok',
          target,
          bytesUp: r.bytesUp,
          bytesDown: r.bytesDown,
          closedBy: r.closedBy,
          ...(r.error !== undefined ? { error: r.error } : {}),
          extra: { ...backend, status: 200 },
        }),
      );
      socket.resume();
    } catch (err) {
      socket.off('close', onClose);
      const backend = opened === undefined ? {} : backendFields(opened);
      if (err instanceof DialError && err.code === 'CANCELLED') {
        log({ outcome: 'CLOSED', error: 'the client closed before the answer', extra: backend });
        return;
      }
      const e = err instanceof SealedError ? err : new SealedError('DIAL_FAILED', `internal: ${(err as Error).message}`);
      const outcome = e instanceof SealedDeniedError ? 'DENIED' : e.code;
      const status = c.uniformErrors ? 502 : e.status;
      const delay = c.uniformErrors ? arrival + c.uniformDelay - Date.now() : 0;
      answer(socket, status, delay, c.timeouts.handshake, () => log({ outcome, error: e.message, extra: { ...backend, status } }));
    }
  }
}

/** Access-log fields of an opened line: the backend it names and its format (never the line). */
function backendFields(opened: SealedAddress): Record<string, string> {
  return { backend: opened.address, format: opened.version === 2 ? 'v2' : `v1-${opened.kdf}` };
}

/**
 * Sends a failure's 3-byte answer after `delayMs` and ends the connection.
 * What the client still sends is read and dropped, so the close is a FIN
 * after the answer — closing with unread data would send a reset, which
 * can destroy the answer in the client's receive buffer. The socket is
 * destroyed when the client closes its side too, or after `lingerMs`.
 * `logged` runs once, when the answer is sent or the socket closed first.
 */
function answer(socket: net.Socket, status: number, delayMs: number, lingerMs: number, logged: () => void): void {
  let timer: NodeJS.Timeout | undefined;
  let sent = false;
  const send = () => {
    if (sent) return;
    sent = true;
    clearTimeout(timer);
    logged();
    if (socket.destroyed) return;
    socket.resume();
    socket.end(String(status));
    const linger = setTimeout(() => socket.destroy(), lingerMs);
    socket.once('close', () => clearTimeout(linger));
  };
  socket.once('close', send);
  if (delayMs > 0) timer = setTimeout(send, delayMs);
  else send();
}
