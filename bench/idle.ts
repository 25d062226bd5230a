/**
 * The `idle` scenario: memory per idle keep-alive downstream connection.
 *
 * For each target in turn (started fresh on the proxy CPU, measured,
 * stopped), the client (bench/idle-client.ts, its own process on the load
 * generator's CPU) warms the target up (300 requests on as many connections
 * as will be set up at once later, then closed: a proxy's upstream pool
 * reaches the size the measure gives it before the baseline, so its
 * upstream connections are not charged to the downstream ones); after a
 * 1 s settle the target's RSS is read
 * (`before`); then the client opens N connections, each making ONE
 * keep-alive GET and then staying open and silent, at most 100 being set
 * up at a time (so a proxy's upstream pool stays small: the downstream
 * connections are what is measured); after a 2 s settle the RSS is read
 * again (`after`). Each reading is the median of 3, 0.5 s apart (VmRSS of
 * the target's process tree, /proc/PID/status). The figure is
 * (after − before) / connections open. Nothing asks the target for a GC:
 * the figure includes what its collector has not reclaimed yet, as an
 * operator's RSS graph would.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { treeRss } from './tunnel-peers.js';
import { Managed, pinned, waitForHttp200, waitUntil } from './util.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** Connections held open by default (`--idle-connections`), and with `--quick`. */
export const IDLE_CONNECTIONS = 5000;
export const IDLE_CONNECTIONS_QUICK = 2000;
/** Target: Portico's bytes per idle connection, at most this many times the bare node:http server's. */
export const IDLE_TARGET = 1.2;
/** Connections being set up at once; the warm-up opens as many. */
const CONCURRENCY = 100;
/** Requests per warm-up connection. */
const WARMUP_REQUESTS = 3;
/** File descriptors kept free for everything else the processes hold (listeners, upstream pool, logs). */
const FD_RESERVE = 512;

export type IdleTargetName = 'bare' | 'portico' | 'go';

/** A started target of the idle scenario. */
export interface IdleServer {
  /** The process whose RSS (with its children's) is read. */
  pid: number;
  port: number;
  /** Request path and Host of the one GET each connection makes. */
  path: string;
  host: string;
  /** Why the target is not running, or undefined. */
  alive(): string | undefined;
  /** Stops it; returns notes (unclean exit…). */
  stop(): Promise<string[]>;
}

export interface IdleRow {
  target: IdleTargetName;
  /** Connections asked for, opened (one 2xx response each), failed. */
  asked: number;
  open: number;
  failed: number;
  /** Connections the target closed before the `after` reading was over. */
  closedByPeer: number;
  beforeBytes: number;
  afterBytes: number;
  perConnBytes: number;
  /** perConnBytes / the bare server's. */
  vsBare?: number;
  /** Milliseconds to open all the connections. */
  openMs: number;
  errorDetail?: string;
  failure?: string;
}

export interface IdleContext {
  count: number;
  cpuLoad: number | undefined;
  notes: string[];
  checkInterrupted(): void;
}

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The soft limit on open files of this process (inherited by every process the bench starts). */
export function openFilesLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m === null) return undefined;
    return m[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** The connection count the open-files limit allows (the client and the target each hold one fd per connection). */
export function idleCount(wanted: number, notes: string[]): number {
  const limit = openFilesLimit();
  if (limit === undefined || wanted + FD_RESERVE <= limit) return wanted;
  const n = Math.max(1, limit - FD_RESERVE);
  notes.push(`idle: the open-files limit is ${limit} (ulimit -n), so ${n} connections instead of ${wanted}; raise it (ulimit -n) before the bench to measure more`);
  return n;
}

/** The bare node:http server (bench/idle-server.ts), with Portico's V8 flags, pinned to `cpu`. */
export async function startBareServer(port: number, cpu: number | undefined): Promise<IdleServer> {
  const [cmd, args] = pinned(cpu, process.execPath, ['--max-semi-space-size=32', path.join(HERE, 'idle-server.js'), String(port)]);
  const proc = new Managed('bare node:http server', cmd, args);
  await waitForHttp200('bare node:http server', port, '/small', {}, () => proc.exitReason());
  return {
    pid: proc.pid ?? 0,
    port,
    path: '/small',
    host: 'api.example.com',
    alive: () => proc.exitReason(),
    stop: async () => {
      await proc.stop(5_000);
      return proc.exitCode === 0 ? [] : [`idle: the bare server did not exit cleanly (${proc.exitReason() ?? 'still running'})`];
    },
  };
}

/** Median of 3 readings of the tree's RSS, 0.5 s apart. */
async function rss(pid: number): Promise<number> {
  const r: number[] = [];
  for (let i = 0; i < 3; i++) {
    if (i > 0) await delay(500);
    r.push(treeRss(pid));
  }
  return r.sort((a, b) => a - b)[1]!;
}

interface ClientReport {
  phase: 'warm' | 'open' | 'closed';
  ok?: number;
  open?: number;
  failed?: number;
  ms?: number;
  closedByPeer?: number;
  errorDetail?: string;
}

/** The idle client process and the reports it prints, one JSON line each. */
class IdleClient {
  readonly proc: Managed;
  private readonly reports: ClientReport[] = [];

  constructor(server: IdleServer, count: number, cpu: number | undefined) {
    const [cmd, args] = pinned(cpu, process.execPath, [
      path.join(HERE, 'idle-client.js'),
      '--port', String(server.port), '--path', server.path, '--host', server.host,
      '--count', String(count), '--concurrency', String(CONCURRENCY),
      '--warmup-connections', String(Math.min(CONCURRENCY, count)), '--warmup-requests', String(WARMUP_REQUESTS),
    ]);
    this.proc = new Managed('idle client', cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let partial = '';
    this.proc.child.stdout?.on('data', (c: Buffer) => {
      partial += c.toString('utf8');
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        try {
          this.reports.push(JSON.parse(line) as ClientReport);
        } catch {
          /* not a report */
        }
      }
    });
  }

  /** Waits for the report of `phase` (the client or the server ending first is a failure). */
  async next(phase: ClientReport['phase'], server: IdleServer, timeoutMs: number): Promise<ClientReport> {
    let found: ClientReport | undefined;
    await waitUntil(
      `idle client: ${phase}`,
      async () => (found = this.reports.find((r) => r.phase === phase)) !== undefined,
      { intervalMs: 50, timeoutMs, abort: () => (phase === 'closed' ? undefined : (this.proc.exitReason() ?? server.alive())) },
    );
    return found!;
  }

  send(cmd: 'open' | 'close'): void {
    this.proc.child.stdin?.write(`${cmd}\n`);
  }
}

/** One target: start, warm up, read, open the connections, read, close, stop. */
async function measureOne(target: IdleTargetName, start: () => Promise<IdleServer>, ctx: IdleContext): Promise<IdleRow> {
  const row: IdleRow = { target, asked: ctx.count, open: 0, failed: 0, closedByPeer: 0, beforeBytes: 0, afterBytes: 0, perConnBytes: Number.NaN, openMs: 0 };
  let server: IdleServer | undefined;
  let client: IdleClient | undefined;
  try {
    server = await start();
    const s = server;
    client = new IdleClient(s, ctx.count, ctx.cpuLoad);
    const warm = await client.next('warm', s, 30_000);
    if ((warm.ok ?? 0) === 0) throw new Error(`the warm-up got no 2xx response: ${warm.errorDetail ?? ''}`);
    ctx.checkInterrupted();
    await delay(1000);
    row.beforeBytes = await rss(s.pid);
    client.send('open');
    const opened = await client.next('open', s, 120_000);
    row.open = opened.open ?? 0;
    row.failed = opened.failed ?? 0;
    row.openMs = opened.ms ?? 0;
    if (opened.errorDetail) row.errorDetail = opened.errorDetail;
    if (row.open === 0) throw new Error(`no connection got a 2xx response: ${opened.errorDetail ?? ''}`);
    ctx.checkInterrupted();
    await delay(2000);
    row.afterBytes = await rss(s.pid);
    const dead = s.alive();
    if (dead !== undefined) throw new Error(dead);
    row.perConnBytes = (row.afterBytes - row.beforeBytes) / row.open;
    client.send('close');
    try {
      row.closedByPeer = (await client.next('closed', s, 5_000)).closedByPeer ?? 0;
      if (row.closedByPeer > 0) ctx.notes.push(`idle: ${target} closed ${row.closedByPeer} of the ${row.open} idle connections before the reading was over: its figure is low`);
    } catch (err) {
      ctx.notes.push(`idle: ${target}: the client did not say whether the target closed idle connections during the measure (${(err as Error).message})`);
    }
  } catch (err) {
    row.failure = (err as Error).message;
  } finally {
    await client?.proc.stop(5_000);
    if (server !== undefined) ctx.notes.push(...(await server.stop()));
  }
  return row;
}

/** Measures each target in turn; a target that cannot start gets a failed row. */
export async function runIdleScenario(targets: [IdleTargetName, () => Promise<IdleServer>][], ctx: IdleContext): Promise<IdleRow[]> {
  const rows: IdleRow[] = [];
  for (const [name, start] of targets) {
    ctx.checkInterrupted();
    rows.push(await measureOne(name, start, ctx));
  }
  const bare = rows.find((r) => r.target === 'bare' && r.failure === undefined);
  if (bare !== undefined && bare.perConnBytes > 0) {
    for (const r of rows) if (r.failure === undefined) r.vsBare = r.perConnBytes / bare.perConnBytes;
  }
  return rows;
}

const MiB = 1024 * 1024;

export function renderIdle(rows: IdleRow[], count: number): string {
  const header = ['target', 'connections', 'failed', 'open s', 'RSS before MiB', 'RSS after MiB', 'bytes/conn', 'vs bare'];
  const lines: string[][] = [header];
  const notes: string[] = [];
  for (const r of rows) {
    if (r.failure !== undefined) {
      lines.push([r.target, 'FAILED', '-', '-', '-', '-', '-', '-']);
      notes.push(`  ! ${r.target}: ${r.failure}`);
      continue;
    }
    if (r.failed > 0) notes.push(`  ! ${r.target}: ${r.failed} connections failed: ${r.errorDetail ?? ''}`);
    lines.push([
      r.target,
      String(r.open),
      r.failed > 0 ? `${r.failed} !` : '0',
      (r.openMs / 1000).toFixed(1),
      (r.beforeBytes / MiB).toFixed(1),
      (r.afterBytes / MiB).toFixed(1),
      Math.round(r.perConnBytes).toLocaleString('en-US'),
      r.vsBare === undefined ? '' : r.vsBare.toFixed(2),
    ]);
  }
  const widths = header.map((_, i) => Math.max(...lines.map((l) => (l[i] ?? '').length)));
  const fmt = (l: string[]): string => '  ' + l.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  const out = [
    `idle — memory per idle keep-alive connection: ${count} connections, one GET each, then silent; RSS after − before, per connection`,
    fmt(header),
    '  ' + widths.map((w) => '-'.repeat(w)).join('  '),
    ...lines.slice(1).map(fmt),
  ];
  return [...out, ...notes].join('\n');
}
