import type { TargetHealthView } from '../upstream/health.js';
import { AggregatorRegistry } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { LoadResult } from '../config/load.js';
import type { Logger } from '../observability/logger.js';
import { isConnectionKind, type ConnectionFilter, type ConnectionInfo, type ConnectionRegistry } from '../runtime/connection-registry.js';
import type { Dimension, StatsView } from '../observability/stats.js';
import { answerAsks, askOthers, type Ask, type Reply } from './fanout.js';

/**
 * The admin API's views across the processes of `workers: N` (the worker in
 * slot 0 serves the admin API; it asks the others through fanout.ts):
 *
 * - GET /stats: every series summed over the workers (requests, status
 *   classes, bytes, latency counts and sum); `qps1s`, `qps1m` and `today`
 *   come from the shared state store, so they are taken from one worker
 *   (the lowest index that has the series), never added up.
 * - GET /status: slot 0's shape, plus `workers: [{ index, pid, version }]`;
 *   listener `connections` and target `inflight` summed; each target's
 *   health merged (healthy only when every worker that answered sees it
 *   healthy; ejected when any ejects it) with each worker's own view in the
 *   target's `workers`.
 * - GET /connections: every worker's entries (ids `<worker>-<seq>`);
 *   DELETE /connections/:id goes to the worker named by the id.
 * - GET /metrics: every worker's prom-client registry, aggregated with
 *   AggregatorRegistry.aggregate (counters and histograms summed; gauges by
 *   their `aggregator`).
 * - POST /config/reload (reloadEverywhere): every worker reloads its own
 *   FileSource; one answer listing each.
 *
 * A worker that does not answer within ASK_TIMEOUT_MS (fanout.ts) is left out
 * of the sums and listed with its `error` in the view's `workers`.
 */

/** This process's reload through its own config source. */
export interface LocalReload {
  ok: boolean;
  /** The applied document's revision at its source (null when not known). */
  revision: string | null;
  /** The snapshot version serving after the reload (the old one when refused). */
  version: number;
  error?: string;
}

/**
 * What these views read of the running gateway (the Gateway class has it;
 * named here structurally: process/ sits below the gateway, see DESIGN.md, Layering).
 */
export interface GatewayViews {
  statsReport(): Promise<unknown>;
  status(): unknown;
  readonly connectionRegistry: ConnectionRegistry;
  readonly metrics: { readonly registry: { getMetricsAsJSON(): Promise<object[]> } };
  readonly logger: Logger;
  apply(config: Config): Promise<{ ok: true; version: number } | { ok: false; error: string }>;
}

type Outcome = { readonly ok: true } | { readonly ok: false; readonly error: string };

/** The config source as a reload uses it (the FileSource has it). */
export interface ReloadableSource {
  readonly file: string;
  subscribe(subscriber: (doc: { readonly config: Config; readonly revision: string }) => Promise<Outcome>): void;
  /** Resolves true when the document was applied; never rejects (see sources/config-source.ts). */
  reload(reason: string): Promise<boolean>;
  /** Why its last reload failed, when it tracks that (a store source's refusals are not in the file). */
  health?(): { readonly error?: string };
}

/** DELETE /connections/:id outcomes (admin/server.ts): 'unavailable' when the owner cannot be asked. */
export type CloseOutcome = 'closing' | 'already-closing' | 'unknown' | 'unavailable';

/** POST /config/reload's outcome (admin/server.ts ReloadReport). */
export interface ReloadReport {
  ok: boolean;
  revision: string | null;
  version: number;
  workers: { index: number; ok: boolean; error?: string; [field: string]: unknown }[];
}

export interface ProcessAdmin {
  /** This process's worker slot (0 for a single process). */
  index: number;
  /** How many worker slots there are (`workers:`; 1 for a single process). */
  workers: number;
  gateway: GatewayViews;
  reload(reason: string): Promise<LocalReload>;
}

/**
 * Wires a config source to the gateway and records what each reload did, so
 * a refusal can be answered with its reason (the source itself only logs
 * it). A document refused before it reached the gateway is explained by
 * loading the file again with `load` (the source's own checks). Concurrent
 * reloads of one source (a file watch firing during an admin reload) may
 * report each other's outcome: both read the same file.
 */
export function recordingReload(source: ReloadableSource, gateway: GatewayViews, load: (file: string) => LoadResult): ProcessAdmin['reload'] {
  type Applied = { revision: string; outcome: Outcome };
  let last = undefined as Applied | undefined;
  const subscriber = async (doc: { readonly config: Config; readonly revision: string }): Promise<Outcome> => {
    const result = await gateway.apply(doc.config);
    last = { revision: doc.revision, outcome: result };
    return result;
  };
  source.subscribe(subscriber);
  let revision: string | null = null;
  return async (reason) => {
    last = undefined as Applied | undefined;
    const ok = await source.reload(reason);
    const version = snapshotVersion(gateway);
    if (ok) {
      revision = (last as Applied | undefined)?.revision ?? revision;
      return { ok: true, revision, version };
    }
    const applied = last as Applied | undefined;
    let error = applied && !applied.outcome.ok ? applied.outcome.error : undefined;
    if (error === undefined) error = source.health?.().error;
    if (error === undefined) {
      // Refused before it reached the gateway: read, parse, validate or a named file (the source logged the same).
      const loaded = load(source.file);
      error = loaded.ok ? 'config rejected (see the log)' : loaded.errors.map((e) => (e.line !== undefined ? `${source.file}:${e.line}:${e.column ?? 1}: ${e.message}` : `${e.path}: ${e.message}`)).join('; ');
    }
    return { ok: false, revision, version, error };
  };
}

function snapshotVersion(gateway: GatewayViews): number {
  const v = (gateway.status() as { version?: unknown }).version;
  return typeof v === 'number' ? v : 0;
}

// ------------------------------------------------------------------ answering (every worker)

/** Makes this worker answer the asks of the admin-serving worker about its own gateway. */
export function answerForThisWorker(p: ProcessAdmin): void {
  answerAsks((ask) => answerLocally(p, ask));
}

/** This process's own answer to `ask`; throws on an unknown or malformed ask. */
async function answerLocally(p: ProcessAdmin, ask: Ask): Promise<unknown> {
  const g = p.gateway;
  switch (ask.kind) {
    case 'stats':
      return g.statsReport();
    case 'status':
      return g.status();
    case 'connections': {
      const filter = parseFilter(ask.filter);
      if (filter === undefined) throw new Error('malformed connections filter');
      return g.connectionRegistry.list(filter);
    }
    case 'close-connection':
      if (typeof ask.id !== 'string') throw new Error('malformed connection id');
      return g.connectionRegistry.close(ask.id);
    case 'metrics':
      return g.metrics.registry.getMetricsAsJSON();
    case 'reload':
      if (typeof ask.reason !== 'string') throw new Error('malformed reload reason');
      return p.reload(ask.reason);
    default:
      throw new Error(`unknown ask "${ask.kind.slice(0, 64)}"`);
  }
}

function parseFilter(v: unknown): ConnectionFilter | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const { kind, listener } = v as { kind?: unknown; listener?: unknown };
  const filter: ConnectionFilter = {};
  if (kind !== undefined) {
    if (typeof kind !== 'string' || !isConnectionKind(kind)) return undefined;
    filter.kind = kind;
  }
  if (listener !== undefined) {
    if (typeof listener !== 'string') return undefined;
    filter.listener = listener;
  }
  return filter;
}

// ------------------------------------------------------------------ gathering (the admin-serving worker)

/** One worker's part of a view: its value, or why it has none. */
export type Part<T> = { index: number; pid: number | null; ok: true; value: T } | { index: number; pid: number | null; ok: false; error: string; starting?: boolean };

/** This process's answer and every other slot's, in slot order; a slot absent from the replies counts as missing. */
async function gather<T>(p: ProcessAdmin, ask: Ask): Promise<Part<T>[]> {
  const [own, replies] = await Promise.all([
    answerLocally(p, ask).then(
      (value): Part<T> => ({ index: p.index, pid: process.pid, ok: true, value: value as T }),
      (err: unknown): Part<T> => ({ index: p.index, pid: process.pid, ok: false, error: (err as Error).message }),
    ),
    p.workers > 1 ? askOthers(ask) : Promise.resolve([] as Reply[]),
  ]);
  const parts: Part<T>[] = [own];
  for (let index = 0; index < p.workers; index++) {
    if (index === p.index) continue;
    const r = replies.find((x) => x.index === index);
    if (r === undefined) parts.push({ index, pid: null, ok: false, error: 'no answer: the primary did not relay the ask in time' });
    else if (r.ok) parts.push({ index, pid: r.pid, ok: true, value: r.value as T });
    else parts.push({ index, pid: r.pid, ok: false, error: r.error, ...('starting' in r && r.starting ? { starting: true } : {}) });
  }
  return parts.sort((a, b) => a.index - b.index);
}

function answered<T>(parts: Part<T>[]): { index: number; value: T }[] {
  return parts.flatMap((x) => (x.ok ? [{ index: x.index, value: x.value }] : []));
}

function workerList(parts: Part<unknown>[]): { index: number; pid: number | null; ok: boolean; error?: string }[] {
  return parts.map((x) => ({ index: x.index, pid: x.pid, ok: x.ok, ...(x.ok ? {} : { error: x.error }) }));
}

/** The admin options that make slot 0's admin API answer for every worker (set as `gateway.adminHooks`). */
export function clusterAdminHooks(p: ProcessAdmin) {
  const connections = {
    list: async (filter: ConnectionFilter): Promise<ConnectionInfo[]> => {
      const parts = await gather<ConnectionInfo[]>(p, { kind: 'connections', filter: { ...filter } });
      for (const x of parts) if (!x.ok) p.gateway.logger.warn({ worker: x.index, error: x.error }, 'GET /connections: a worker did not answer; its entries are missing');
      return answered(parts).flatMap((x) => (Array.isArray(x.value) ? x.value : []));
    },
    close: (id: string) => closeConnection(p, id),
  };
  return {
    stats: async () => {
      const parts = await gather<StatsReport>(p, { kind: 'stats' });
      return { ...mergeStats(answered(parts).map((x) => x.value)), workers: workerList(parts) };
    },
    status: async () => mergeStatus(await gather<StatusReport>(p, { kind: 'status' })),
    connections,
    metrics: async () => aggregateMetrics(answered(await gather<object[]>(p, { kind: 'metrics' })).map((x) => x.value)),
    reloadEverywhere: (reason: string) => reloadEverywhere(p, reason),
  };
}

/** The admin options of a single process: POST /config/reload reloads this process. */
export function singleProcessHooks(p: ProcessAdmin) {
  return { reloadEverywhere: (reason: string) => reloadEverywhere(p, reason) };
}

/**
 * Reloads the config from its source in every worker (this one through its
 * own source, the others through the fan-out, each its own). `ok` only when
 * every worker applied it; a worker that refused keeps its running config.
 * A slot that is starting is not asked: the primary reloads it once it
 * serves (as for SIGHUP); it is listed `ok` with `pending`.
 * Never rejects.
 */
export async function reloadEverywhere(p: ProcessAdmin, reason: string): Promise<ReloadReport> {
  const parts = await gather<LocalReload>(p, { kind: 'reload', reason });
  const workers = parts.map((x) => {
    if (!x.ok) {
      return x.starting ? { index: x.index, ok: true, pending: 'starting: reloads the config once it serves' } : { index: x.index, ok: false, error: x.error };
    }
    const r = x.value;
    return { index: x.index, ok: r.ok === true, revision: r.revision ?? null, version: r.version, ...(r.ok ? {} : { error: typeof r.error === 'string' ? r.error : 'refused' }) };
  });
  const own = parts.find((x) => x.index === p.index);
  const mine = own?.ok ? own.value : undefined;
  return { ok: workers.every((w) => w.ok), revision: mine?.revision ?? null, version: mine?.version ?? snapshotVersion(p.gateway), workers };
}

/** DELETE /connections/:id: closed by the worker named in the id (`<worker>-<seq>`). */
async function closeConnection(p: ProcessAdmin, id: string): Promise<CloseOutcome> {
  const m = /^(\d{1,4})-/.exec(id);
  const owner = m ? Number(m[1]) : -1;
  if (owner === p.index) return p.gateway.connectionRegistry.close(id);
  if (owner < 0 || owner >= p.workers) return 'unknown';
  const replies = await askOthers({ kind: 'close-connection', id }, owner);
  const r = replies.find((x) => x.index === owner);
  if (r === undefined || !r.ok) return 'unavailable';
  return r.value === 'closing' || r.value === 'already-closing' ? r.value : 'unknown';
}

// ------------------------------------------------------------------ merging (pure)

/**
 * One Prometheus exposition of several workers' `registry.getMetricsAsJSON()`:
 * prom-client's AggregatorRegistry.aggregate, each metric by its `aggregator`
 * (sum unless the metric says otherwise, e.g. `max` or `omit`).
 */
export async function aggregateMetrics(perWorker: object[]): Promise<{ contentType: string; body: string }> {
  const registry = AggregatorRegistry.aggregate(perWorker);
  return { contentType: registry.contentType, body: await registry.metrics() };
}

export type StatsReport = Record<Dimension, Record<string, StatsView>>;

/** Sums every series over the workers' reports; the store-backed rates come from the first report that has the series. */
export function mergeStats(reports: StatsReport[]): StatsReport {
  const out = { route: {}, upstream: {}, target: {}, consumer: {} } as StatsReport;
  for (const report of reports) {
    for (const dim of Object.keys(out) as Dimension[]) {
      for (const [name, v] of Object.entries(report?.[dim] ?? {})) {
        if (v === undefined || v === null) continue;
        const sum = out[dim][name];
        if (sum === undefined) {
          out[dim][name] = { ...v, statusClasses: [...v.statusClasses], latency: { ...v.latency, counts: [...v.latency.counts] } };
          continue;
        }
        sum.requests += v.requests;
        sum.bytesReceived += v.bytesReceived;
        sum.bytesSent += v.bytesSent;
        v.statusClasses.forEach((n, i) => (sum.statusClasses[i] = (sum.statusClasses[i] ?? 0) + n));
        v.latency.counts.forEach((n, i) => (sum.latency.counts[i] = (sum.latency.counts[i] ?? 0) + n));
        sum.latency.sumMs += v.latency.sumMs;
      }
    }
  }
  return out;
}

/** A target as one worker's /status lists it (upstream/health.ts), with its in-flight count. */
type TargetStatus = TargetHealthView & { inflight: number; [field: string]: unknown };
interface UpstreamStatus {
  name: string;
  panic: boolean;
  circuitBreaker: unknown;
  targets: TargetStatus[];
  [field: string]: unknown;
}
export interface StatusReport {
  version: number;
  listeners: { name: string; connections: number; [field: string]: unknown }[];
  upstreams: UpstreamStatus[];
}

/**
 * GET /status across workers: the lowest answering worker's document (slot
 * 0, the admin API's own, in practice), with `connections` and `inflight`
 * summed, target health merged (see the file comment) and `workers`.
 */
export function mergeStatus(parts: Part<StatusReport>[]): StatusReport & { workers: unknown[] } {
  const ok = answered(parts);
  const base = ok[0]?.value ?? { version: 0, listeners: [], upstreams: [] };
  const workers = parts.map((x) => (x.ok ? { index: x.index, pid: x.pid, version: x.value.version } : { index: x.index, pid: x.pid, version: null, error: x.error }));
  const listeners = base.listeners.map((l) => ({
    ...l,
    connections: ok.reduce((n, x) => n + (x.value.listeners.find((o) => o.name === l.name)?.connections ?? 0), 0),
  }));
  const upstreams = base.upstreams.map((u) => {
    const views = ok.map((x) => ({ index: x.index, u: x.value.upstreams.find((o) => o.name === u.name) })).filter((v): v is { index: number; u: UpstreamStatus } => v.u !== undefined);
    const targets = u.targets.map((t): TargetStatus => {
      const seen = views
        .map((v) => ({ index: v.index, t: v.u.targets.find((o) => o.address === t.address) }))
        .filter((v): v is { index: number; t: TargetStatus } => v.t !== undefined);
      const ts = seen.map((s) => s.t);
      return {
        ...t,
        healthy: ts.every((x) => x.healthy),
        active: ts.some((x) => x.active === 'unhealthy') ? 'unhealthy' : ts.some((x) => x.active === 'healthy') ? 'healthy' : 'unchecked',
        ejected: ts.some((x) => x.ejected),
        ejectedForMs: Math.max(0, ...ts.map((x) => x.ejectedForMs)),
        ejections: Math.max(0, ...ts.map((x) => x.ejections)),
        failures: { active: sum(ts.map((x) => x.failures?.active)), passive: sum(ts.map((x) => x.failures?.passive)) },
        inflight: sum(ts.map((x) => x.inflight)),
        workers: seen.map((s) => ({ index: s.index, healthy: s.t.healthy, active: s.t.active, ejected: s.t.ejected, inflight: s.t.inflight })),
      };
    });
    return {
      ...u,
      panic: views.some((v) => v.u.panic),
      targets,
      workers: views.map((v) => ({ index: v.index, panic: v.u.panic, circuitBreaker: v.u.circuitBreaker })),
    };
  });
  return { ...base, listeners, upstreams, workers };
}

function sum(xs: (number | undefined)[]): number {
  return xs.reduce<number>((n, x) => n + (typeof x === 'number' ? x : 0), 0);
}
