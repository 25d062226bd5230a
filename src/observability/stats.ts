import type { RequestContext } from '../snapshot/snapshot.js';
import type { StateStore } from '../state/store.js';

/** The dimensions statistics are kept along. */
export type Dimension = 'route' | 'upstream' | 'target' | 'consumer';

/** Upper bounds (ms) of the latency histogram buckets; the last bucket is unbounded. */
export const LATENCY_BUCKETS_MS = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000] as const;

export interface StatsView {
  requests: number;
  /** Responses by status class: index 1 = 1xx … 5 = 5xx; index 0 = no status (aborted before a response). */
  statusClasses: number[];
  bytesReceived: number;
  bytesSent: number;
  /** Counts per LATENCY_BUCKETS_MS bucket, plus one for slower requests; and the sum, in ms. */
  latency: { buckets: readonly number[]; counts: number[]; sumMs: number };
  /** Requests in the last full second, and per second over the last minute, across every instance sharing the store. */
  qps1s: number;
  qps1m: number;
  /** Requests since the start of the day (UTC), across every instance sharing the store. */
  today: number;
}

class Series {
  requests = 0;
  readonly statusClasses = [0, 0, 0, 0, 0, 0];
  bytesReceived = 0;
  bytesSent = 0;
  readonly counts = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
  sumMs = 0;
  /** Requests not yet pushed to the shared store, by epoch second. */
  pending = new Map<number, number>();
}

/**
 * Request statistics per route, upstream, target and consumer, behind one
 * interface for the metrics endpoint and dashboard. `record` runs in the
 * log phase and only touches in-process counters; once a second the
 * per-second request counts are added to the state store (one increment per
 * active series), so instances sharing a Redis store add up for the QPS and
 * daily totals, while the hot path never waits on the store.
 */
export class Stats {
  private readonly series = new Map<string, Series>();
  private readonly store: () => StateStore | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly now: () => number;
  private flushing: Promise<void> | undefined;

  /** `store` is read at each flush: the gateway may swap stores on reload. */
  constructor(store: () => StateStore | undefined, options: { now?: () => number; flushMs?: number } = {}) {
    this.store = store;
    this.now = options.now ?? Date.now;
    this.timer = setInterval(() => void this.flush(), options.flushMs ?? 1000).unref();
  }

  record(ctx: RequestContext): void {
    const second = Math.floor(this.now() / 1000);
    const ms = Number(process.hrtime.bigint() - ctx.startedAt) / 1e6;
    const statusClass = ctx.status >= 100 && ctx.status < 600 ? Math.floor(ctx.status / 100) : 0;
    const bytesIn = ctx.contentLength > 0 ? ctx.contentLength : 0;
    if (ctx.route !== undefined) this.add('route', ctx.route.name, second, ms, statusClass, bytesIn, ctx.bytesSent);
    if (ctx.upstream !== undefined) this.add('upstream', ctx.upstream.name, second, ms, statusClass, bytesIn, ctx.bytesSent);
    if (ctx.target !== undefined) this.add('target', ctx.target.address, second, ms, statusClass, bytesIn, ctx.bytesSent);
    if (ctx.consumer !== undefined) this.add('consumer', ctx.consumer.id, second, ms, statusClass, bytesIn, ctx.bytesSent);
  }

  private add(dim: Dimension, name: string, second: number, ms: number, statusClass: number, bytesIn: number, bytesOut: number): void {
    const key = `${dim}:${name}`;
    let s = this.series.get(key);
    if (s === undefined) {
      s = new Series();
      this.series.set(key, s);
    }
    s.requests++;
    s.statusClasses[statusClass]!++;
    s.bytesReceived += bytesIn;
    s.bytesSent += bytesOut;
    s.sumMs += ms;
    let b = 0;
    while (b < LATENCY_BUCKETS_MS.length && ms > LATENCY_BUCKETS_MS[b]!) b++;
    s.counts[b]!++;
    s.pending.set(second, (s.pending.get(second) ?? 0) + 1);
  }

  /** Pushes pending per-second counts to the store (per-second keys kept 2 minutes, daily keys 2 days). */
  flush(): Promise<void> {
    this.flushing ??= this.flushNow().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async flushNow(): Promise<void> {
    const store = this.store();
    if (store === undefined) return;
    const work: (number | Promise<number>)[] = [];
    for (const [key, s] of this.series) {
      if (s.pending.size === 0) continue;
      const pending = s.pending;
      s.pending = new Map();
      for (const [second, n] of pending) {
        const day = Math.floor(second / 86_400);
        try {
          work.push(store.increment(`stats:${key}:s:${second}`, n, (second + 120) * 1000));
          work.push(store.increment(`stats:${key}:d:${day}`, n, (day + 2) * 86_400_000));
        } catch {
          // A store that throws synchronously loses this second's figures, never the request path.
        }
      }
    }
    await Promise.allSettled(work);
  }

  /** The statistics of one series, or undefined if it has seen no request. */
  async view(dim: Dimension, name: string): Promise<StatsView | undefined> {
    const s = this.series.get(`${dim}:${name}`);
    if (s === undefined) return undefined;
    await this.flush();
    const store = this.store();
    if (store === undefined) return undefined;
    const nowSecond = Math.floor(this.now() / 1000);
    const read = (k: string, exp: number) => Promise.resolve(store.increment(k, 0, exp)).catch(() => 0);
    const lastMinute = await Promise.all(
      Array.from({ length: 60 }, (_, i) => read(`stats:${dim}:${name}:s:${nowSecond - 1 - i}`, (nowSecond + 119 - i) * 1000)),
    );
    const day = Math.floor(nowSecond / 86_400);
    return {
      requests: s.requests,
      statusClasses: [...s.statusClasses],
      bytesReceived: s.bytesReceived,
      bytesSent: s.bytesSent,
      latency: { buckets: LATENCY_BUCKETS_MS, counts: [...s.counts], sumMs: s.sumMs },
      qps1s: lastMinute[0]!,
      qps1m: lastMinute.reduce((a, b) => a + b, 0) / 60,
      today: await read(`stats:${dim}:${name}:d:${day}`, (day + 2) * 86_400_000),
    };
  }

  /** Every series name seen, by dimension. */
  names(dim: Dimension): string[] {
    const prefix = `${dim}:`;
    return [...this.series.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  }

  close(): Promise<void> {
    clearInterval(this.timer);
    return this.flush();
  }
}
