import type { Readable } from 'node:stream';
import type tls from 'node:tls';
import { Pool, type Dispatcher, type buildConnector } from 'undici';
import { H1Connection } from './h1-connection.js';
import { H2Pool } from './h2-pool.js';

export interface PoolOptions {
  /** How targets are spoken to: HTTP/1.1 (undici), or HTTP/2 over TLS / cleartext (node:http2, see h2-pool.ts). */
  protocol: 'http1' | 'h2' | 'h2c';
  /** TLS client options (https for http1; required for h2) and their digest; undefined for cleartext. */
  tls: { options: tls.ConnectionOptions; key: string } | undefined;
  connectTimeout: number;
  responseTimeout: number;
  idleTimeout: number;
  /** 0 = no limit. */
  maxConnections: number;
}

/** What the proxy sends through a pool: the subset of undici's dispatch options both pool kinds take. */
export interface ProxyDispatchOptions {
  path: string;
  method: Dispatcher.HttpMethod;
  headers: string[];
  body?: Buffer | Readable | null;
  headersTimeout?: number;
  /** TLS server name (SNI and certificate check) for https HTTP/1.1 targets; undici otherwise takes it from Host. */
  servername?: string;
  /** An HTTP/1.1 upgrade (`websocket`); the handler's onUpgrade gets the socket. HTTP/1.1 pools only. */
  upgrade?: string;
}

/** A keep-alive connection pool to one target: undici's Pool (HTTP/1.1) or an H2Pool. */
export interface TargetPool {
  dispatch(opts: ProxyDispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * Keep-alive connection pools to targets, shared across snapshots so that a
 * reload does not drop warm connections: a pool is keyed by its target and
 * options, and `retain` (called after a swap) closes the pools the new
 * snapshot no longer uses. Closing lets requests already in flight on
 * those pools finish first.
 */
export class PoolRegistry {
  private pools = new Map<string, TargetPool>();

  get(address: string, o: PoolOptions): { key: string; pool: TargetPool } {
    const key = `${address}|${o.protocol}|${o.tls?.key ?? '-'}|${o.connectTimeout}|${o.responseTimeout}|${o.idleTimeout}|${o.maxConnections}`;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = o.protocol === 'http1' ? http1Pool(address, o) : h2Pool(address, o);
      this.pools.set(key, pool);
    }
    return { key, pool };
  }

  /** Closes (gracefully) every pool whose key is not in `keep`. */
  async retain(keep: ReadonlySet<string>): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const [key, pool] of this.pools) {
      if (keep.has(key)) continue;
      this.pools.delete(key);
      closing.push(pool.close().catch(() => undefined));
    }
    await Promise.all(closing);
  }

  /** Closes every pool, aborting requests still in flight. */
  async destroy(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((p) => p.destroy().catch(() => undefined)));
  }
}

function http1Pool(address: string, o: PoolOptions): TargetPool {
  return new Pool(`${o.tls === undefined ? 'http' : 'https'}://${address}`, {
    connections: o.maxConnections > 0 ? o.maxConnections : null,
    pipelining: 1,
    connectTimeout: o.connectTimeout,
    // Read buffer per upstream socket: a 64 KiB read must not stop and
    // restart the socket's reading (see gateway.ts for the other side).
    connect: { ...o.tls?.options, highWaterMark: 256 * 1024 } as Partial<buildConnector.BuildOptions>,
    headersTimeout: o.responseTimeout,
    bodyTimeout: o.idleTimeout,
    keepAliveTimeout: o.idleTimeout || 60_000,
    keepAliveMaxTimeout: o.idleTimeout || 60_000,
    // Let the upstream's own Keep-Alive hint shorten our idle time, with a
    // margin so we never reuse a connection it is about to close.
    keepAliveTimeoutThreshold: 1000,
    // Each connection knows its socket, so an aborted request closes it as failed (h1-connection.ts).
    factory: (origin, opts) => new H1Connection(origin, opts as ConstructorParameters<typeof H1Connection>[1]),
  }) as unknown as TargetPool;
}

function h2Pool(address: string, o: PoolOptions): TargetPool {
  return new H2Pool({
    origin: `${o.protocol === 'h2' ? 'https' : 'http'}://${address}`,
    tls: o.protocol === 'h2' ? (o.tls?.options ?? {}) : undefined,
    connectTimeout: o.connectTimeout,
    responseTimeout: o.responseTimeout,
    idleTimeout: o.idleTimeout,
    ...(o.maxConnections > 0 ? { maxSessions: o.maxConnections } : {}),
  }) as unknown as TargetPool;
}
