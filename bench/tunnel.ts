/**
 * The `tunnel` scenario: the same traffic sent directly to an origin, through
 * OpenSSH's reverse tunnel (`ssh -R`) and through Portico's tunnel (gateway
 * `protocol: tunnel` listener + `portico agent`), in one run. One contender
 * is alive at a time; both ends of a tunnel share the proxy CPU, the load
 * generators and origins share the other.
 *
 * Measures (each its own table; the contenders' rows in each):
 * - `tunnel-bulk`: one TCP connection, bytes one way, iperf3 (-t duration):
 *   load → [sshd remote port → ssh | gateway remote port → agent] → iperf3 -s.
 * - `tunnel-rr`: keep-alive GET of 13 bytes, wrk -t1 -c50, to nginx.
 * - `tunnel-http`: the same GET on Portico's http listener: a host route to
 *   a `{ tunnel: CODE }` upstream vs a host route to a plain upstream, both
 *   reaching the same nginx (target: tunnel ≥ 0.5 × plain).
 * - `tunnel-connect`: one GET per connection (Connection: close), wrk:
 *   new connections per second through the tunnel.
 * - `tunnel-memory`: RSS of both ends with 1,000 open idle connections
 *   through a remote port to a silent origin, per stream above the baseline
 *   (target: ≤ 20 KiB per stream for the gateway and for the agent).
 * - `tunnel-long-link`: bench/delay-relay.ts (25 ms per direction) between
 *   the tunnel's two ends; one iperf3 stream through the tunnel vs one plain
 *   TCP connection through the same relay (target: ≥ 0.9 × plain).
 */
import type net from 'node:net';
import type { LoadTool } from './load.js';
import { runLoad } from './load.js';
import { runBulkSender, runIperf3, type BenchResult, type TcpRunFn } from './tcp.js';
import { iperf3Binary, startBulkSink, startIperf3Server, type TcpProcess } from './tcp-peers.js';
import {
  PLAIN_HOST,
  TUNNEL_HOST,
  openIdle,
  startDelayRelay,
  startIdleOrigin,
  RemotePortsRefused,
  startPorticoTunnel,
  startSshTunnel,
  treeRss,
  type Forward,
  type PorticoTunnel,
  type PorticoTunnelOptions,
  type Tunnel,
} from './tunnel-peers.js';
import { Managed, freePort, httpGet, waitUntil } from './util.js';

export const TUNNEL_PARTS = ['tunnel-bulk', 'tunnel-rr', 'tunnel-http', 'tunnel-connect', 'tunnel-long-link'] as const;
export type TunnelPart = (typeof TUNNEL_PARTS)[number];
export type TunnelTarget = 'direct' | 'ssh-r' | 'portico' | 'portico-tunnel';

/** The product's targets. */
export const TUNNEL_TARGETS = { httpVsPlain: 0.5, bytesPerStream: 20 * 1024, longLinkVsPlain: 0.9 } as const;
/** Idle streams held open by the memory measure. */
export const IDLE_STREAMS = 1000;
/** One-way delay of the long link, ms. */
export const LINK_DELAY_MS = 25;

export const TUNNEL_DESCRIPTIONS: Record<TunnelPart | 'tunnel-memory', string> = {
  'tunnel-bulk': 'one TCP connection through the tunnel, bytes one way (iperf3), Gbit/s',
  'tunnel-rr': 'keep-alive GET, 13-byte body, through the tunnel to nginx (wrk), rps',
  'tunnel-http': `Portico http listener: host route to a { tunnel: CODE } upstream (portico-tunnel) vs host route to a plain upstream (portico), same nginx; target tunnel/plain >= ${TUNNEL_TARGETS.httpVsPlain}`,
  'tunnel-connect': 'one GET per TCP connection (Connection: close) through the tunnel, connections/s',
  'tunnel-long-link': `${LINK_DELAY_MS} ms per direction (bench/delay-relay.ts) between the tunnel's ends; direct = one plain TCP connection through the same relay; iperf3, Gbit/s; target portico/plain >= ${TUNNEL_TARGETS.longLinkVsPlain}`,
  'tunnel-memory': `RSS of each tunnel end with ${IDLE_STREAMS} idle streams open (connections through a remote port to a silent origin), above the idle baseline; target <= ${TUNNEL_TARGETS.bytesPerStream / 1024} KiB per stream`,
};

export const TUNNEL_UNITS: Record<TunnelPart, string> = {
  'tunnel-bulk': 'Gbit/s',
  'tunnel-rr': 'rps',
  'tunnel-http': 'rps',
  'tunnel-connect': 'conn/s',
  'tunnel-long-link': 'Gbit/s',
};

export interface TunnelContext<R> {
  durationS: number;
  connections: number;
  tool: LoadTool;
  cpuProf: boolean;
  porticoMain: string | undefined;
  /** Whether Portico is measured at all (--no-portico). */
  portico: boolean;
  /** The HTTP origin (nginx serving /small, or the node:http fallback). */
  upstream: { port: number; proc: Managed };
  cpuLoad: number;
  cpuUpstream: number;
  cpuProxy: number;
  notes: string[];
  /** The runner's measuring routine (warm-up, noise probe on `pids`, retries). */
  measure(target: TunnelTarget, url: string, run: TcpRunFn, alive: () => string | undefined, pids: number[], warmupInside: boolean): Promise<R>;
  failed(target: TunnelTarget, failure: string): R;
  /** A row's rate, unless it failed or produced only errors. */
  rateOf(row: R): number | undefined;
  checkInterrupted(): void;
}

/** The memory measure of one contender: bytes of RSS per idle stream, for each end. */
export interface MemoryRow {
  target: TunnelTarget;
  streams: number;
  ends: { name: string; baselineBytes: number; loadedBytes: number; perStreamBytes: number }[];
  failure?: string;
}

export interface TunnelResults<R> {
  parts: { part: TunnelPart; rows: R[] }[];
  memory: MemoryRow[];
  /** tunnel-http: median of the per-round ratios tunnelled route / plain route. */
  httpVsPlain: number | undefined;
}

/** tunnel-http: alternating rounds of the plain and the tunnelled route. */
const HTTP_ROUNDS = 3;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The run whose rate is the median (failed runs sort first). */
function medianBy<R>(runs: R[], rate: (r: R) => number | undefined): R {
  return [...runs].sort((a, b) => (rate(a) ?? -1) - (rate(b) ?? -1))[Math.floor(runs.length / 2)]!;
}

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Median of three RSS readings of each pid's tree, 250 ms apart (Node's RSS moves with GC). */
async function rssOf(pids: number[]): Promise<number[]> {
  const samples: number[][] = [];
  for (let i = 0; i < 3; i++) {
    if (i > 0) await delay(250);
    samples.push(pids.map(treeRss));
  }
  return pids.map((_, j) => samples.map((s) => s[j]!).sort((a, b) => a - b)[1]!);
}

/** Opens `count` idle streams through `port`, waits until the origin has them all, runs `whileOpen`, closes them. */
async function withIdleStreams<T>(tunnel: Tunnel, port: number, origin: { live(): number }, count: number, whileOpen: () => Promise<T>): Promise<T> {
  const abort = (): string | undefined => tunnel.exitReason();
  let socks: net.Socket[] = [];
  try {
    socks = await openIdle(port, count);
    await waitUntil(`${count} idle streams through ${tunnel.name} reaching the origin`, async () => origin.live() >= count, { timeoutMs: 30_000, abort });
    return await whileOpen();
  } finally {
    for (const s of socks) s.destroy();
    await waitUntil(`idle streams through ${tunnel.name} closed at the origin`, async () => origin.live() === 0, { timeoutMs: 15_000, abort }).catch(() => undefined);
  }
}

/**
 * RSS of each end of `tunnel` while IDLE_STREAMS connections through `port`
 * are open and silent, above its idle baseline: the tunnel just started,
 * having carried only the sanity request. No warm-up round: freed memory
 * stays in a process's RSS (malloc arenas, V8 pages), so any earlier round
 * of streams hides part of the next one's cost (sshd shows 0 bytes per
 * stream after one). The figure is thus an upper bound for Node: it
 * includes the first-use cost (JIT code, pools) of the stream path.
 */
async function measureMemory(target: TunnelTarget, tunnel: Tunnel, port: number, origin: { live(): number }): Promise<MemoryRow> {
  const pids = tunnel.ends.map((e) => e.proc.pid ?? 0);
  await delay(500);
  const base = await rssOf(pids);
  const loaded = await withIdleStreams(tunnel, port, origin, IDLE_STREAMS, async () => {
    await delay(1000);
    return rssOf(pids);
  });
  return {
    target,
    streams: IDLE_STREAMS,
    ends: tunnel.ends.map((e, j) => ({ name: e.name, baselineBytes: base[j]!, loadedBytes: loaded[j]!, perStreamBytes: (loaded[j]! - base[j]!) / IDLE_STREAMS })),
  };
}

/**
 * Runs every part for every contender (direct, ssh -R, Portico, then the
 * long link with each), and returns the rows of each part and the memory
 * figures. A contender that cannot start gets a failed row in each part.
 */
export async function runTunnelScenario<R>(ctx: TunnelContext<R>): Promise<TunnelResults<R>> {
  const rows: Record<TunnelPart, R[]> = { 'tunnel-bulk': [], 'tunnel-rr': [], 'tunnel-http': [], 'tunnel-connect': [], 'tunnel-long-link': [] };
  const memory: MemoryRow[] = [];
  let httpVsPlain: number | undefined;
  const iperf3 = iperf3Binary();
  const bulkRun =
    (port: number): TcpRunFn =>
    (d, w) =>
      iperf3 !== undefined ? runIperf3(iperf3, port, d, w, ctx.cpuLoad) : runBulkSender(port, d, w, ctx.cpuLoad);
  if (iperf3 === undefined) ctx.notes.push('tunnel: iperf3 not installed: bulk measured with the Node sender and sink (bench/tcp-bulk.ts)');
  const httpRun =
    (port: number, headers: Record<string, string> = {}): TcpRunFn =>
    (d) =>
      runLoad(ctx.tool, { url: `http://127.0.0.1:${port}/small`, connections: ctx.connections, durationS: d, headers, cpu: ctx.cpuLoad });
  const closeHeaders = { Connection: 'close' };
  // Portico exposes the tcp forwards as the agent's remote ports; a gateway that refuses them gets
  // one tcp listener per forward with a `{ tunnel: CODE }` upstream instead (same data path).
  // TUNNEL_EXPOSE=tcpListener measures the config-made path even on a gateway that opens remote ports (to compare the two).
  let expose: PorticoTunnelOptions['expose'] = process.env.TUNNEL_EXPOSE === 'tcpListener' ? 'tcpListener' : 'remotePort';
  const startPortico = async (o: Omit<PorticoTunnelOptions, 'expose' | 'cpu' | 'cpuProf' | 'main'>): Promise<PorticoTunnel> => {
    const full = (e: PorticoTunnelOptions['expose']): PorticoTunnelOptions => ({
      ...o,
      expose: e,
      cpu: ctx.cpuProxy,
      cpuProf: ctx.cpuProf,
      ...(ctx.porticoMain !== undefined ? { main: ctx.porticoMain } : {}),
    });
    try {
      return await startPorticoTunnel(full(expose), freePort);
    } catch (err) {
      if (!(err instanceof RemotePortsRefused)) throw err;
      expose = 'tcpListener';
      ctx.notes.push(
        'tunnel: this gateway refuses agents\' remote ports: Portico\'s tcp forwards are tcp listeners with a { tunnel: CODE } upstream instead (the same gateway → tunnel → agent path, set up by the gateway config)',
      );
      return startPorticoTunnel(full(expose), freePort);
    }
  };

  let bulkServer: TcpProcess | undefined;
  let origin: Awaited<ReturnType<typeof startIdleOrigin>> | undefined;
  try {
    const bulkPort = await freePort();
    bulkServer = iperf3 !== undefined ? await startIperf3Server(iperf3, bulkPort, ctx.cpuUpstream) : await startBulkSink(bulkPort, ctx.cpuUpstream);
    origin = await startIdleOrigin();
    const bs = bulkServer;
    const httpPort = ctx.upstream.port;
    const originsAlive = (): string | undefined => bs.proc.exitReason() ?? ctx.upstream.proc.exitReason();
    const forwards = async (): Promise<Forward[]> => [
      { name: 'bulk', localPort: bulkPort, remotePort: await freePort() },
      { name: 'rr', localPort: httpPort, remotePort: await freePort() },
      { name: 'idle', localPort: origin!.port, remotePort: await freePort() },
    ];
    const sanity = async (what: string, port: number, headers: Record<string, string> = {}): Promise<void> => {
      try {
        const r = await httpGet(port, '/small', headers);
        if (r.status !== 200) ctx.notes.push(`tunnel: GET /small through ${what} returned ${r.status}`);
      } catch (err) {
        ctx.notes.push(`tunnel: GET /small through ${what} failed: ${(err as Error).message}`);
      }
    };

    // Direct: load → origin.
    ctx.checkInterrupted();
    rows['tunnel-bulk'].push(await ctx.measure('direct', `tcp://127.0.0.1:${bulkPort}`, bulkRun(bulkPort), originsAlive, [bs.proc.pid ?? 0], true));
    rows['tunnel-rr'].push(await ctx.measure('direct', `http://127.0.0.1:${httpPort}/small`, httpRun(httpPort), originsAlive, [ctx.upstream.proc.pid ?? 0], false));
    rows['tunnel-http'].push(rows['tunnel-rr'][0]!);
    rows['tunnel-connect'].push(await ctx.measure('direct', `http://127.0.0.1:${httpPort}/small`, httpRun(httpPort, closeHeaders), originsAlive, [ctx.upstream.proc.pid ?? 0], false));

    // Each tunnel in turn: started on the proxy CPU, measured in every part, stopped.
    type Start = () => Promise<Tunnel & { httpPort?: number }>;
    const contenders: [TunnelTarget, Start | undefined][] = [
      ['ssh-r', async () => startSshTunnel({ forwards: await forwards(), cpu: ctx.cpuProxy, sshPort: await freePort() })],
      [
        'portico',
        ctx.portico
          ? async () => startPortico({ forwards: [...(await forwards()), { name: 'web', localPort: httpPort, remotePort: 0, http: true }], plainHttpPort: httpPort })
          : undefined,
      ],
    ];
    for (const [target, start] of contenders) {
      if (start === undefined) continue;
      ctx.checkInterrupted();
      let tunnel: (Tunnel & { httpPort?: number }) | undefined;
      try {
        tunnel = await start();
      } catch (err) {
        const failure = `failed to start: ${(err as Error).message}`;
        for (const part of ['tunnel-bulk', 'tunnel-rr', 'tunnel-connect'] as const) rows[part].push(ctx.failed(target, failure));
        if (target === 'portico') rows['tunnel-http'].push(ctx.failed('portico-tunnel', failure));
        memory.push({ target, streams: IDLE_STREAMS, ends: [], failure });
        continue;
      }
      try {
        const t = tunnel;
        const alive = (): string | undefined => t.exitReason() ?? originsAlive();
        const pids = t.ends.map((e) => e.proc.pid ?? 0);
        const [bulk, rr, idle] = [t.ports.bulk!, t.ports.rr!, t.ports.idle!];
        await sanity(t.name, rr);
        // Memory first: the baseline is then the idle tunnel (measureMemory warms it up itself).
        try {
          memory.push(await measureMemory(target, t, idle, origin));
        } catch (err) {
          memory.push({ target, streams: IDLE_STREAMS, ends: [], failure: (err as Error).message });
        }
        ctx.checkInterrupted();
        rows['tunnel-bulk'].push(await ctx.measure(target, `tcp://127.0.0.1:${bulk}`, bulkRun(bulk), alive, pids, true));
        rows['tunnel-rr'].push(await ctx.measure(target, `http://127.0.0.1:${rr}/small`, httpRun(rr), alive, pids, false));
        rows['tunnel-connect'].push(await ctx.measure(target, `http://127.0.0.1:${rr}/small`, httpRun(rr, closeHeaders), alive, pids, false));
        if (t.httpPort !== undefined) {
          const hp = t.httpPort;
          await sanity('the tunnelled route', hp, { host: TUNNEL_HOST });
          // The gateway alone is the plain proxy; with the tunnelled route, the agent joins it.
          // Alternating rounds on the same gateway; the ratio is the median of the per-round ratios
          // (consecutive runs on a shared VM differ more than the cost measured; cf. `policies`).
          const plain: R[] = [];
          const tunnelled: R[] = [];
          for (let round = 0; round < HTTP_ROUNDS; round++) {
            plain.push(await ctx.measure('portico', `http://127.0.0.1:${hp}/small (Host: ${PLAIN_HOST})`, httpRun(hp, { Host: PLAIN_HOST }), alive, [pids[0]!], false));
            tunnelled.push(await ctx.measure('portico-tunnel', `http://127.0.0.1:${hp}/small (Host: ${TUNNEL_HOST})`, httpRun(hp, { Host: TUNNEL_HOST }), alive, pids, false));
          }
          const ratios = plain.flatMap((p, i) => {
            const a = ctx.rateOf(p);
            const b = ctx.rateOf(tunnelled[i]!);
            return a !== undefined && b !== undefined && a > 0 ? [b / a] : [];
          });
          rows['tunnel-http'].push(medianBy(plain, ctx.rateOf), medianBy(tunnelled, ctx.rateOf));
          if (ratios.length > 0) httpVsPlain = median(ratios);
          ctx.notes.push(`tunnel-http: ${HTTP_ROUNDS} alternating rounds per route; the rows are each route's median round, vs plain is the median of the per-round ratios`);
        }
      } finally {
        ctx.notes.push(...(await tunnel.stop()));
      }
    }

    // The long link: the delay relay between the two ends of each tunnel (on the load CPU: it is the network).
    ctx.checkInterrupted();
    const relayPort = await freePort();
    const plainRelay = await startDelayRelay(relayPort, bulkPort, LINK_DELAY_MS, ctx.cpuLoad);
    try {
      rows['tunnel-long-link'].push(
        await ctx.measure('direct', `tcp://127.0.0.1:${relayPort} (relay)`, bulkRun(relayPort), () => plainRelay.exitReason() ?? originsAlive(), [plainRelay.pid ?? 0], true),
      );
    } finally {
      await plainRelay.stop(5_000);
    }
    const linkForward = async (): Promise<Forward[]> => [{ name: 'bulk', localPort: bulkPort, remotePort: await freePort() }];
    const linkContenders: [TunnelTarget, ((relay: (to: number) => Promise<number>) => Promise<Tunnel>) | undefined][] = [
      [
        'ssh-r',
        async (relay) => {
          const sshPort = await freePort();
          return startSshTunnel({ forwards: await linkForward(), cpu: ctx.cpuProxy, sshPort, via: await relay(sshPort) });
        },
      ],
      [
        'portico',
        ctx.portico
          ? async (relay) => startPortico({ forwards: await linkForward(), via: relay })
          : undefined,
      ],
    ];
    for (const [target, start] of linkContenders) {
      if (start === undefined) continue;
      ctx.checkInterrupted();
      let relayProc: Managed | undefined;
      const relay = async (to: number): Promise<number> => {
        const port = await freePort();
        await relayProc?.stop(5_000); // a start that was retried
        relayProc = await startDelayRelay(port, to, LINK_DELAY_MS, ctx.cpuLoad);
        return port;
      };
      let tunnel: Tunnel | undefined;
      try {
        try {
          tunnel = await start(relay);
        } catch (err) {
          rows['tunnel-long-link'].push(ctx.failed(target, `failed to start: ${(err as Error).message}`));
          continue;
        }
        const t = tunnel;
        const r = relayProc!;
        const port = t.ports.bulk!;
        rows['tunnel-long-link'].push(
          await ctx.measure(target, `tcp://127.0.0.1:${port} (over the relay)`, bulkRun(port), () => t.exitReason() ?? r.exitReason() ?? originsAlive(), t.ends.map((e) => e.proc.pid ?? 0), true),
        );
      } finally {
        if (tunnel !== undefined) ctx.notes.push(...(await tunnel.stop()));
        await relayProc?.stop(5_000);
      }
    }
  } finally {
    await origin?.close();
    if (bulkServer !== undefined) await bulkServer.stop();
  }
  return { parts: TUNNEL_PARTS.map((part) => ({ part, rows: rows[part] })), memory, httpVsPlain };
}

const kib = (n: number): string => (n / 1024).toFixed(1);
const mib = (n: number): string => (n / 1024 / 1024).toFixed(1);

/** The memory table: one line per tunnel end. */
export function renderMemory(memory: MemoryRow[]): string {
  const header = ['target', 'end', 'idle MiB', `+${IDLE_STREAMS} MiB`, 'KiB/stream', 'vs target'];
  const lines: string[][] = [header];
  const notes: string[] = [];
  for (const m of memory) {
    const label = m.target === 'ssh-r' ? 'ssh -R' : m.target;
    if (m.failure !== undefined) {
      lines.push([label, 'FAILED', '-', '-', '-', '-']);
      notes.push(`  ! ${label}: ${m.failure}`);
      continue;
    }
    for (const e of m.ends) {
      lines.push([label, e.name, mib(e.baselineBytes), mib(e.loadedBytes), kib(e.perStreamBytes), e.perStreamBytes <= TUNNEL_TARGETS.bytesPerStream ? 'met' : 'MISSED']);
    }
  }
  const widths = header.map((_, i) => Math.max(...lines.map((l) => (l[i] ?? '').length)));
  const fmt = (l: string[]): string => '  ' + l.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [`tunnel-memory — ${TUNNEL_DESCRIPTIONS['tunnel-memory']}`, fmt(header), '  ' + widths.map((w) => '-'.repeat(w)).join('  '), ...lines.slice(1).map(fmt), ...notes].join('\n');
}

export type { BenchResult };
