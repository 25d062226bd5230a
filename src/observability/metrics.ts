import type { DiscoveryHealth } from '../discovery/discovered-targets.js';
import { collectDefaultMetrics, Registry, type Metric } from 'prom-client';
import type { ConnectionRegistry } from '../runtime/connection-registry.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import type { Upstream } from '../upstream/upstream.js';
import { HttpMetrics } from './http-metrics.js';
import { L4Metrics } from './l4-metrics.js';
import { ScrapedMetric, type Sample } from './scraped-metric.js';

/** Where the gauges are read from at scrape time (the gateway's live state). */
export interface MetricsSources {
  /** The upstreams of the running snapshot (none before the first apply). */
  upstreams(): Iterable<Upstream>;
  /** The process's connection registry: open connections are counted, never listed. */
  connections(): ConnectionRegistry;
  /** How many service codes tunnel agents and relay services have registered. */
  tunnelCodes(): number;
  /** The config source's state (`ok`, `error`, `degraded`: a store that cannot be reached), or undefined without one. */
  configSource(): { readonly origin: string; readonly state: string } | undefined;
}

export const METRIC_PREFIX = 'portico_';

/**
 * Portico's Prometheus metrics (GET /metrics on the admin API): one
 * prom-client registry per process, kept across reloads. With `workers: N`
 * the admin API aggregates every worker's `registry.getMetricsAsJSON()`
 * (AggregatorRegistry.aggregate, by each metric's `aggregator`).
 *
 * Counters are kept by their recorders as plain numbers (http-metrics.ts,
 * l4-metrics.ts) and gauges are read from the live state, both when the
 * registry is read (scraped-metric.ts): the request path never touches
 * prom-client. No label takes a value the client chose: listeners, routes
 * and upstreams are config names, targets configured addresses or tunnel
 * codes, kinds and codes fixed sets.
 */
export class Metrics {
  readonly registry = new Registry();
  /** The log phase's recorder of HTTP requests and WebSocket sessions. */
  readonly http = new HttpMetrics();
  /** The log phase's recorder of L4 connections and UDP sessions. */
  readonly l4 = new L4Metrics();
  private readonly reloads = { ok: 0, error: 0 };
  private lastReloadOk = 0;
  private lastReloadAt = 0;

  constructor(sources?: MetricsSources) {
    for (const m of processMetrics()) this.registry.registerMetric(m);
    const r = this.registry;
    const p = METRIC_PREFIX;
    const http = this.http;
    const l4 = this.l4;

    new ScrapedMetric(`${p}http_requests_total`, 'HTTP requests (and WebSocket sessions) by listener, route, upstream and response status class ("none": logged with no status; a client that left is a 499).', 'counter', 'sum', (o) => http.requests(o)).register(r);
    new ScrapedMetric(`${p}http_received_bytes_total`, 'HTTP request body bytes received from clients (as declared by Content-Length).', 'counter', 'sum', (o) => http.received(o)).register(r);
    new ScrapedMetric(`${p}http_sent_bytes_total`, 'HTTP response body bytes sent to clients.', 'counter', 'sum', (o) => http.sent(o)).register(r);
    const duration = `${p}http_request_duration_seconds`;
    new ScrapedMetric(duration, 'Time from the request head to the end of the exchange (response sent, or failed).', 'histogram', 'sum', (o) => http.duration(duration, o)).register(r);
    const upstream = `${p}http_upstream_response_duration_seconds`;
    new ScrapedMetric(upstream, 'Time from sending the request upstream (the first try) to the upstream response head that went to the client.', 'histogram', 'sum', (o) => http.upstreamDuration(upstream, o)).register(r);
    new ScrapedMetric(`${p}http_limit_rejections_total`, 'Requests rejected with 429 by a route\'s rate-limit or a consumer quota (consumer-quota), by listener, route and middleware.', 'counter', 'sum', (o) => http.limitRejections(o)).register(r);

    new ScrapedMetric(`${p}l4_connections_total`, 'Ended L4 connections (UDP: sessions and refused clients) by listener, upstream and code ("ok" or the error code).', 'counter', 'sum', (o) => l4.connections(o)).register(r);
    new ScrapedMetric(`${p}l4_received_bytes_total`, 'Bytes received from L4 clients (relayed upstream), counted when the connection ends.', 'counter', 'sum', (o) => l4.received(o)).register(r);
    new ScrapedMetric(`${p}l4_sent_bytes_total`, 'Bytes sent to L4 clients (relayed from upstream), counted when the connection ends.', 'counter', 'sum', (o) => l4.sent(o)).register(r);

    // Every worker applies the same documents: the largest count is the process group's.
    new ScrapedMetric(`${p}config_reloads_total`, 'Config documents applied ("ok", the first one included) or refused ("error"); the running config keeps serving after an error.', 'counter', 'max', (o) => {
      o.push({ labels: { result: 'ok' }, value: this.reloads.ok }, { labels: { result: 'error' }, value: this.reloads.error });
    }).register(r);
    new ScrapedMetric(`${p}config_last_reload_successful`, 'Whether the last config document was applied (1) or refused (0).', 'gauge', 'min', (o) => {
      if (this.lastReloadAt !== 0) o.push({ labels: {}, value: this.lastReloadOk });
    }).register(r);
    new ScrapedMetric(`${p}config_last_reload_timestamp_seconds`, 'When the last config document was applied or refused (Unix time).', 'gauge', 'max', (o) => {
      if (this.lastReloadAt !== 0) o.push({ labels: {}, value: this.lastReloadAt });
    }).register(r);

    if (sources === undefined) return;
    new ScrapedMetric(`${p}open_connections`, 'Open connections, streams and sessions by listener and kind (http1, h2-session, h2-stream, websocket, tcp, tls, udp, tunnel-agent…).', 'gauge', 'sum', (o) => openConnections(sources.connections(), o)).register(r);
    new ScrapedMetric(`${p}upstream_target_healthy`, 'Whether the balancer may pick the target (1) or not (0: failed health checks, ejected, weight 0); min across workers.', 'gauge', 'min', (o) => targetHealth(sources.upstreams(), o)).register(r);
    new ScrapedMetric(`${p}upstream_circuit_breaker_state`, 'The upstream circuit breaker\'s state: 1 on the current one of closed, open, half-open (summed across workers: how many are in it).', 'gauge', 'sum', (o) => breakerStates(sources.upstreams(), o)).register(r);
    new ScrapedMetric(`${p}config_source_up`, 'Whether the config source (a file, etcd, ZooKeeper) can be read (1) or not (0: the last good config keeps serving); min across workers.', 'gauge', 'min', (o) => {
      const h = sources.configSource();
      if (h !== undefined) o.push({ labels: { origin: h.origin }, value: h.state === 'degraded' ? 0 : 1 });
    }).register(r);
    new ScrapedMetric(`${p}discovery_targets`, 'Targets an upstream\'s discovery offers now (the last known ones while it fails or holds an empty answer).', 'gauge', 'max', (o) => discovery(sources.upstreams(), o, (d) => d.targets)).register(r);
    new ScrapedMetric(`${p}discovery_up`, 'Whether an upstream\'s discovery answers (1) or has lost sight of its targets and keeps the last known ones (0); min across workers.', 'gauge', 'min', (o) => discovery(sources.upstreams(), o, (d) => (d.state === 'error' ? 0 : 1))).register(r);
    new ScrapedMetric(`${p}discovery_holding_empty`, 'Whether an upstream\'s discovery answered no target and the last targets are kept until that lasts emptyGrace (1).', 'gauge', 'max', (o) => discovery(sources.upstreams(), o, (d) => (d.state === 'holding-empty' ? 1 : 0))).register(r);
    new ScrapedMetric(`${p}discovery_failures_total`, 'Answers an upstream\'s discovery could not give (store or DNS unreachable, name not found).', 'counter', 'sum', (o) => discovery(sources.upstreams(), o, (d) => d.failures)).register(r);
    new ScrapedMetric(`${p}tunnel_agents`, 'Connected, authenticated tunnel agents and relay services, by listener.', 'gauge', 'sum', (o) => countKinds(sources.connections(), AGENT_KINDS, o)).register(r);
    new ScrapedMetric(`${p}tunnel_streams`, 'Open streams over tunnel agents\' connections, by listener.', 'gauge', 'sum', (o) => countKinds(sources.connections(), STREAM_KINDS, o)).register(r);
    new ScrapedMetric(`${p}tunnel_service_codes`, 'Service codes registered by tunnel agents and relay services.', 'gauge', 'sum', (o) => {
      o.push({ labels: {}, value: sources.tunnelCodes() });
    }).register(r);
  }

  /** A config document was applied (`ok`) or refused, at validation or at apply (`error`). */
  reloaded(ok: boolean, now = Date.now()): void {
    if (ok) this.reloads.ok++;
    else this.reloads.error++;
    this.lastReloadOk = ok ? 1 : 0;
    this.lastReloadAt = now / 1000;
  }

  /** After a successful apply: series of listeners, routes and upstreams the new snapshot lacks are dropped. */
  retain(snapshot: Snapshot): void {
    const listeners = new Set(snapshot.listeners.keys());
    const routes = new Set<string>();
    for (const r of snapshot.config.routes) routes.add(`${r.listener}\0${r.name}\0${r.upstream ?? ''}`);
    this.http.retain(listeners, routes);
    this.l4.retain(listeners, new Set(snapshot.upstreams.keys()));
  }

  /** The text exposition GET /metrics answers with. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

// A relay service's connection is a 'tunnel-agent' entry too; 'tunnel-service' entries are the codes an agent registered.
const AGENT_KINDS: ReadonlySet<string> = new Set(['tunnel-agent']);
const STREAM_KINDS: ReadonlySet<string> = new Set(['tunnel-stream']);

function openConnections(registry: ConnectionRegistry, out: Sample[]): void {
  const counts = new Map<string, { listener: string; kind: string; n: number }>();
  for (const c of registry.entries()) {
    const listener = c.owner.name;
    const key = `${listener}\0${c.kind}`;
    const e = counts.get(key);
    if (e === undefined) counts.set(key, { listener, kind: c.kind, n: 1 });
    else e.n++;
  }
  for (const e of counts.values()) out.push({ labels: { listener: e.listener, kind: e.kind }, value: e.n });
}

function countKinds(registry: ConnectionRegistry, kinds: ReadonlySet<string>, out: Sample[]): void {
  const counts = new Map<string, number>();
  for (const c of registry.entries()) if (kinds.has(c.kind)) counts.set(c.owner.name, (counts.get(c.owner.name) ?? 0) + 1);
  for (const [listener, n] of counts) out.push({ labels: { listener }, value: n });
}

/**
 * One sample per upstream and target. A tunnel registration's identity
 * (`tunnel:CODE@AGENT#SEQ`, new at every reconnect) is labelled by its
 * code alone (`tunnel:CODE`), healthy when any registration of it is.
 */
function targetHealth(upstreams: Iterable<Upstream>, out: Sample[]): void {
  for (const u of upstreams) {
    const byTarget = new Map<string, number>();
    for (const t of u.health().targets) {
      const at = t.address.startsWith('tunnel:') ? t.address.indexOf('@') : -1;
      const target = at < 0 ? t.address : t.address.slice(0, at);
      const healthy = t.healthy ? 1 : 0;
      byTarget.set(target, Math.max(byTarget.get(target) ?? 0, healthy));
    }
    for (const [target, healthy] of byTarget) out.push({ labels: { upstream: u.name, target }, value: healthy });
  }
}

/** One sample per upstream with a `discovery:` block, labelled with its type. */
function discovery(upstreams: Iterable<Upstream>, out: Sample[], value: (d: DiscoveryHealth) => number): void {
  for (const u of upstreams) {
    const d = u.health().discovery;
    if (d !== undefined) out.push({ labels: { upstream: u.name, type: d.type }, value: value(d) });
  }
}

const BREAKER_STATES = ['closed', 'open', 'half-open'] as const;

function breakerStates(upstreams: Iterable<Upstream>, out: Sample[]): void {
  for (const u of upstreams) {
    const b = u.breaker;
    if (b === null) continue;
    const state = b.state;
    for (const s of BREAKER_STATES) out.push({ labels: { upstream: u.name, state: s }, value: s === state ? 1 : 0 });
  }
}

let defaults: Metric[] | undefined;

/**
 * prom-client's process metrics (CPU, memory, event loop lag, GC, handles,
 * file descriptors), `portico_`-prefixed. They observe the whole process,
 * so they are collected once per process and the same metric objects are
 * registered in every Metrics registry (one per Gateway: one per process
 * outside tests), instead of starting another event-loop monitor and GC
 * observer per Gateway.
 */
function processMetrics(): Metric[] {
  if (defaults === undefined) {
    const own = new Registry();
    collectDefaultMetrics({ register: own, prefix: METRIC_PREFIX });
    defaults = own.getMetricsAsArray() as unknown as Metric[];
  }
  return defaults;
}
