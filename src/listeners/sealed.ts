import { createHash } from 'node:crypto';
import type net from 'node:net';
import type { Binding } from './listener.js';
import type { Logger } from '../observability/logger.js';
import { GatewayError } from '../errors.js';
import type { L4Context } from '../l4/context.js';
import type { AnyListenerRuntime, L4ListenerRuntime } from '../snapshot/snapshot.js';
import type { SealedListenerConfig } from '../config/schemas/l4.js';
import { splice } from '../l4/splice.js';
import { L4StreamListener } from './stream.js';
import { SealedAllowList } from '../l4/sealed/allow.js';
import { Unsealer, type SealedAddress } from '../l4/sealed/codec.js';
import { dialSealed } from '../l4/sealed/dial.js';
import { fromSealedError, sealedStatus } from '../l4/sealed/errors.js';
import { readLine, type LineError, type ReadLine } from '../l4/sealed/line.js';
import { noteSplice } from '../l4/stream-connection.js';

/** What a connection is checked and opened with: compiled once per listener runtime. */
interface Policy {
  unsealer: Unsealer;
  allow: SealedAllowList;
}

type Runtime = L4ListenerRuntime<SealedListenerConfig>;

/**
 * `protocol: sealed` (docs/sealed.md "Listener"). Per connection:
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
export class SealedListener extends L4StreamListener<SealedListenerConfig> {
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

  protected serve(ctx: L4Context<SealedListenerConfig>): void {
    this.#handshake(ctx, this.#policyFor(ctx.runtime)).catch((err: unknown) => {
      // A bug, not a client's doing: drop the connection, keep the gateway.
      ctx.socket.destroy();
      this.logger.error({ listener: this.binding.name, err }, 'sealed handshake failed');
      this.finish(ctx, new GatewayError('INTERNAL', `internal: ${(err as Error)?.message ?? String(err)}`, { cause: err }));
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

  /**
   * The sealed protocol on one connection. Every path ends in `finish`
   * exactly once: `ok` after the splice, or the GatewayError that stopped
   * it, answered on the wire as `sealedStatus` says (unless the client
   * has gone: DOWNSTREAM_ABORTED, logged `CLOSED`).
   */
  async #handshake(ctx: L4Context<SealedListenerConfig>, policy: Policy): Promise<void> {
    const { socket, runtime } = ctx;
    const c = runtime.config;

    let read: ReadLine;
    try {
      read = await readLine(socket, ctx.head, c.lineLimit, c.timeouts.handshake);
    } catch (err) {
      const e = err as LineError;
      if (e.reason === 'CLOSED' || socket.destroyed) {
        socket.destroy();
        this.finish(ctx, new GatewayError('DOWNSTREAM_ABORTED', e.message));
      } else {
        this.#fail(ctx, new GatewayError('BAD_SEALED_LINE', e.message), 0);
      }
      return;
    }

    const arrival = Date.now();
    const abort = new AbortController();
    const onClose = () => abort.abort();
    socket.once('close', onClose);
    try {
      const opened = await policy.unsealer.unsealAsync(read.line);
      Object.assign(ctx.extra, backendFields(opened));
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
      // The `ip:port` dialled: sealed has no upstream, so no Target.
      ctx.extra.target = target;
      if (socket.destroyed) {
        up.destroy();
        this.finish(ctx, new GatewayError('DOWNSTREAM_ABORTED', 'the client closed before the answer'));
        return;
      }
      // "200" is queued before the splice starts, so it reaches the client before any backend byte.
      socket.write('200');
      noteSplice(socket, up, undefined, target);
      ctx.extra.status = 200;
      splice(socket, up, { idleMs: c.timeouts.idle, head: read.rest }, (r) => {
        ctx.spliced(r);
        this.finish(ctx, null);
      });
      socket.resume();
    } catch (err) {
      socket.off('close', onClose);
      const e = fromSealedError(err);
      if (e.code === 'DOWNSTREAM_ABORTED') {
        this.finish(ctx, new GatewayError('DOWNSTREAM_ABORTED', 'the client closed before the answer'));
        return;
      }
      this.#fail(ctx, e, c.uniformErrors ? arrival + c.uniformDelay - Date.now() : 0);
    }
  }

  /** Answers a failure (`sealedStatus`, or 502 for all with `uniformErrors`) after `delayMs`, ends the connection and logs it. */
  #fail(ctx: L4Context<SealedListenerConfig>, err: GatewayError, delayMs: number): void {
    const c = ctx.runtime.config;
    // The line itself is always answered 400: uniformErrors covers what follows the line.
    const status = c.uniformErrors && err.code !== 'BAD_SEALED_LINE' ? 502 : sealedStatus(err);
    ctx.extra.status = status;
    answer(ctx.socket, status, delayMs, c.timeouts.handshake, () => this.finish(ctx, err));
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
