import type { Socket } from 'node:net';
import { errors, type Dispatcher, type buildConnector } from 'undici';
import { Connection, type ConnectionOwner } from './connection.js';
import { requestHead, type H1Request, type RequestHead } from './request.js';
import type { ReadInto } from '../../runtime/connector.js';

/** A pool of the shape pool.ts `TargetPool` names (the fallback is one). */
export interface Dispatching {
  dispatch(opts: H1Request, handler: Dispatcher.DispatchHandler): boolean;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

export interface H1PoolOptions {
  /** Opens a connection: the target's connector, TLS over it for https (pool.ts undiciConnect). */
  connect: buildConnector.connector;
  /** https: connections are kept per TLS server name. */
  tls: boolean;
  /** Until a response head arrives; 0 = no limit. A request's `headersTimeout` overrides it. */
  responseTimeout: number;
  /** Longest silence inside a response body, and longest a connection idles (0: no body limit, 60 s idle). */
  idleTimeout: number;
  /** 0 = no limit. */
  maxConnections: number;
  /** Builds the pool that takes what this one does not speak: upgrades (WebSocket) and CONNECT. */
  fallback: () => Dispatching;
}

interface Waiting {
  opts: H1Request;
  handler: Dispatcher.DispatchHandler;
  head: RequestHead;
  servername: string | undefined;
}

/**
 * The HTTP/1.1 keep-alive pool to one target (pool.ts `TargetPool`): connections
 * (connection.ts) carrying one request at a time, at most
 * `maxConnections` of them; requests beyond that wait in a FIFO queue.
 * An idle connection is reused most recently used first, so the others
 * reach their idle timeout and close when traffic drops.
 *
 * A request's head is built and checked (request.ts) when it is
 * dispatched: one that cannot be written fails at once with onError. An
 * upgrade request (the WebSocket dial) or a CONNECT goes to an undici Pool
 * over the same connector, created on first use (`fallback`).
 *
 * `close()` lets requests in flight and queued finish, then closes every
 * connection; `destroy()` fails them (UND_ERR_DESTROYED) at once.
 */
export class H1Pool implements Dispatching, ConnectionOwner {
  readonly responseTimeout: number;
  readonly idleTimeout: number;
  private readonly max: number;
  private readonly tls: boolean;
  private readonly connector: buildConnector.connector;
  private readonly makeFallback: () => Dispatching;
  private fallback: Dispatching | null = null;
  /** Every open or opening connection. */
  private readonly all = new Set<Connection>();
  /** Idle connections, the most recently used last. */
  private readonly idle: Connection[] = [];
  private queue: Waiting[] = [];
  private queueAt = 0;
  private drainScheduled = false;
  private closing = false;
  private destroyed = false;
  private closed: (() => void) | null = null;

  constructor(o: H1PoolOptions) {
    this.connector = o.connect;
    this.tls = o.tls;
    this.responseTimeout = o.responseTimeout;
    this.idleTimeout = o.idleTimeout;
    this.max = o.maxConnections;
    this.makeFallback = o.fallback;
  }

  dispatch(opts: H1Request, handler: Dispatcher.DispatchHandler): boolean {
    if (opts.upgrade !== undefined || opts.method === 'CONNECT') return (this.fallback ??= this.makeFallback()).dispatch(opts, handler);
    if (this.destroyed || this.closing) {
      handler.onError!(this.destroyed ? new errors.ClientDestroyedError() : new errors.ClientClosedError());
      return false;
    }
    const head = requestHead(opts);
    if (head instanceof Error) {
      handler.onError!(head);
      return false;
    }
    const servername = this.tls ? opts.servername : undefined;
    if (this.queueAt < this.queue.length) {
      this.queue.push({ opts, handler, head, servername });
      return true;
    }
    this.start(opts, handler, head, servername);
    return true;
  }

  /** Sends on an idle connection, or opens one, or queues the request (at the limit). */
  private start(opts: H1Request, handler: Dispatcher.DispatchHandler, head: RequestHead, servername: string | undefined): boolean {
    const idle = this.idle;
    for (let i = idle.length - 1; i >= 0; i--) {
      const c = idle[i]!;
      if (c.servername !== servername) continue;
      if (i === idle.length - 1) idle.pop();
      else idle.splice(i, 1);
      c.send(opts, handler, head);
      return true;
    }
    if (this.max > 0 && this.all.size >= this.max) {
      // At the limit with idle connections for other server names only: one makes room.
      if (idle.length === 0) {
        this.queue.push({ opts, handler, head, servername });
        return false;
      }
      idle.shift()!.destroy(new errors.InformationalError('closed for another server name'));
    }
    const c = new Connection(this, servername);
    this.all.add(c);
    c.open(opts, handler, head);
    return true;
  }

  connect(servername: string | undefined, readInto: ReadInto, callback: (err: Error | null, socket: Socket | null) => void): void {
    this.connector({ servername, readInto } as unknown as buildConnector.Options, callback as buildConnector.Callback);
  }

  release(c: Connection): void {
    if (this.destroyed || (this.closing && this.queueAt >= this.queue.length)) {
      c.destroy(new errors.ClientClosedError());
      return;
    }
    this.idle.push(c);
    if (this.queueAt < this.queue.length) this.scheduleDrain();
  }

  removed(c: Connection): void {
    if (!this.all.delete(c)) return;
    const idle = this.idle;
    const i = idle.lastIndexOf(c);
    if (i >= 0) idle.splice(i, 1);
    if (this.queueAt < this.queue.length) this.scheduleDrain();
    else if (this.all.size === 0 && this.closed !== null) this.closed();
  }

  /**
   * Serves queued requests on a later turn: a connection that just
   * finished a response is not written to again in the same turn, so an
   * upstream that closes it anyway (without saying so) is seen first.
   */
  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    setImmediate(drain, this);
  }

  drainQueue(): void {
    this.drainScheduled = false;
    const q = this.queue;
    while (this.queueAt < q.length && !this.destroyed) {
      const w = q[this.queueAt]!;
      q[this.queueAt++] = undefined as unknown as Waiting;
      if (!this.start(w.opts, w.handler, w.head, w.servername)) {
        // Queued again at the end: put it back first in line.
        q.pop();
        q[--this.queueAt] = w;
        break;
      }
    }
    if (this.queueAt >= q.length) {
      this.queue = [];
      this.queueAt = 0;
      if (this.closing) {
        for (const c of [...this.idle]) c.destroy(new errors.ClientClosedError());
        if (this.all.size === 0 && this.closed !== null) this.closed();
      }
    }
  }

  close(): Promise<void> {
    this.closing = true;
    const fallback = this.fallback?.close() ?? Promise.resolve();
    const own = new Promise<void>((resolve) => {
      if (this.queueAt >= this.queue.length) for (const c of [...this.idle]) c.destroy(new errors.ClientClosedError());
      if (this.all.size === 0 && this.queueAt >= this.queue.length) return resolve();
      const prior = this.closed;
      this.closed = () => {
        this.closed = null;
        prior?.();
        resolve();
      };
    });
    return Promise.all([own, fallback]).then(() => undefined);
  }

  destroy(): Promise<void> {
    this.destroyed = true;
    this.closing = true;
    const err = new errors.ClientDestroyedError();
    const q = this.queue;
    const waiting = q.slice(this.queueAt);
    this.queue = [];
    this.queueAt = 0;
    for (const w of waiting) w.handler.onError!(err);
    for (const c of [...this.all]) c.destroy(err);
    const fallback = this.fallback?.destroy() ?? Promise.resolve();
    if (this.closed !== null) this.closed();
    return fallback;
  }
}

function drain(pool: H1Pool): void {
  pool.drainQueue();
}
