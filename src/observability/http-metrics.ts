import type { ListenerRuntime, RequestContext, RequestRecorder, RouteRuntime } from '../snapshot/snapshot.js';
import { bucketOf, pushHistogram, type Sample } from './scraped-metric.js';

/** Upper bounds (seconds) of the request and upstream latency histograms; the last bucket (+Inf) is unbounded. */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;
const BUCKETS_NS = DURATION_BUCKETS.map((s) => s * 1e9);

/** `status_class` values: index = status / 100; index 0 (`none`) is an exchange logged with no status (a client that left is a 499). */
export const STATUS_CLASSES = ['none', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/** `middleware` values of limit rejections, by the GatewayError code each answers with (both 429): RATE_LIMITED, QUOTA_EXCEEDED. */
export const LIMIT_MIDDLEWARES = ['rate-limit', 'consumer-quota'] as const;

/** The counters of one (listener, route, upstream): plain numbers, read at scrape time. */
class HttpSeries {
  readonly statusClasses = [0, 0, 0, 0, 0, 0];
  received = 0;
  sent = 0;
  readonly duration = new Array<number>(DURATION_BUCKETS.length + 1).fill(0);
  durationSum = 0;
  readonly upstreamDuration = new Array<number>(DURATION_BUCKETS.length + 1).fill(0);
  upstreamDurationSum = 0;
  readonly limited = [0, 0];
  constructor(
    readonly listener: string,
    readonly route: string,
    readonly upstream: string,
  ) {}
}

/**
 * HTTP request metrics, recorded in the log phase (exactly once per request
 * or WebSocket session). Labels are config names only: listener, route
 * (`tunnel:<code>` for a host a tunnel agent claimed; "" when no route
 * matched) and upstream ("" when the route answers itself). Nothing the
 * client sends (path, host, address, credentials) becomes a label.
 *
 * Cost per request: one WeakMap lookup by the route runtime (the listener
 * runtime when no route matched) finds the series; the rest is array and
 * number increments. A series is created once per name triple, then cached
 * per snapshot object, so a reload costs one Map lookup per route.
 */
export class HttpMetrics implements RequestRecorder {
  private readonly byName = new Map<string, HttpSeries>();
  /** Kept across reloads: an old snapshot's runtime keeps its series, which is no longer exported once dropped. */
  private readonly byRuntime = new WeakMap<RouteRuntime | ListenerRuntime, HttpSeries>();

  record(ctx: RequestContext): void {
    const route = ctx.route;
    const key = route ?? ctx.listener;
    const s = this.byRuntime.get(key) ?? this.seriesFor(ctx.listener, route);
    const status = ctx.status;
    s.statusClasses[status >= 100 && status < 600 ? (status / 100) | 0 : 0]!++;
    if (ctx.contentLength > 0) s.received += ctx.contentLength;
    s.sent += ctx.bytesSent;
    const now = process.hrtime.bigint();
    const ns = Number(now - ctx.startedAt);
    s.duration[bucketOf(BUCKETS_NS, ns)]!++;
    s.durationSum += ns / 1e9;
    if (ctx.upstreamHeadersAt !== 0n && ctx.upstreamStartedAt !== 0n) {
      const up = Number(ctx.upstreamHeadersAt - ctx.upstreamStartedAt);
      s.upstreamDuration[bucketOf(BUCKETS_NS, up)]!++;
      s.upstreamDurationSum += up / 1e9;
    }
    const err = ctx.error;
    if (err !== undefined) {
      if (err.code === 'RATE_LIMITED') s.limited[0]!++;
      else if (err.code === 'QUOTA_EXCEEDED') s.limited[1]!++;
    }
  }

  private seriesFor(listener: ListenerRuntime, route: RouteRuntime | undefined): HttpSeries {
    const routeName = route?.name ?? '';
    const upstreamName = route?.upstream?.name ?? '';
    const name = `${listener.name}\0${routeName}\0${upstreamName}`;
    let s = this.byName.get(name);
    if (s === undefined) {
      s = new HttpSeries(listener.name, routeName, upstreamName);
      this.byName.set(name, s);
    }
    this.byRuntime.set(route ?? listener, s);
    return s;
  }

  /**
   * After a reload: drops the series of listeners, routes and route →
   * upstream pairs the new config no longer has (their samples disappear
   * from the next scrape). `routes` holds `listener\0route\0upstream` of
   * every configured route. Claimed-host series (`tunnel:`) and the
   * no-route series stay while their listener exists. Requests still in
   * flight on the old snapshot finish uncounted, in the dropped series.
   */
  retain(listeners: ReadonlySet<string>, routes: ReadonlySet<string>): void {
    for (const [name, s] of this.byName) {
      const keep = listeners.has(s.listener) && (s.route === '' || s.route.startsWith('tunnel:') || routes.has(name));
      if (!keep) this.byName.delete(name);
    }
  }

  requests(out: Sample[]): void {
    for (const s of this.byName.values()) {
      for (let c = 0; c < STATUS_CLASSES.length; c++) {
        const n = s.statusClasses[c]!;
        if (n > 0) out.push({ labels: { listener: s.listener, route: s.route, upstream: s.upstream, status_class: STATUS_CLASSES[c]! }, value: n });
      }
    }
  }

  received(out: Sample[]): void {
    for (const s of this.byName.values()) out.push({ labels: labelsOf(s), value: s.received });
  }

  sent(out: Sample[]): void {
    for (const s of this.byName.values()) out.push({ labels: labelsOf(s), value: s.sent });
  }

  duration(name: string, out: Sample[]): void {
    for (const s of this.byName.values()) pushHistogram(out, name, labelsOf(s), DURATION_BUCKETS, s.duration, s.durationSum);
  }

  upstreamDuration(name: string, out: Sample[]): void {
    for (const s of this.byName.values()) {
      if (s.upstream !== '') pushHistogram(out, name, labelsOf(s), DURATION_BUCKETS, s.upstreamDuration, s.upstreamDurationSum);
    }
  }

  limitRejections(out: Sample[]): void {
    for (const s of this.byName.values()) {
      for (let m = 0; m < LIMIT_MIDDLEWARES.length; m++) {
        const n = s.limited[m]!;
        if (n > 0) out.push({ labels: { listener: s.listener, route: s.route, middleware: LIMIT_MIDDLEWARES[m]! }, value: n });
      }
    }
  }
}

function labelsOf(s: HttpSeries): { listener: string; route: string; upstream: string } {
  return { listener: s.listener, route: s.route, upstream: s.upstream };
}
