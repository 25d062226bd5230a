/**
 * The TCP (L4) scenarios: the same traffic sent directly to a server, and
 * through four proxies, each alone on the proxy CPU in turn: Portico's
 * `protocol: tcp` listener, HAProxy (`mode tcp`), nginx `stream` and the
 * bare Node pipe (bench/tcp-pipe.ts). A peer that is not installed is
 * skipped with a note.
 *
 * - `tcp-bulk`: one long connection carrying bytes one way as fast as it
 *   can; Gbit/s. iperf3 (client → target → `iperf3 -s`) when installed,
 *   otherwise bench/tcp-bulk.ts (a Node sender and sink).
 * - `tcp-connect`: one HTTP request per TCP connection (`Connection: close`)
 *   to the fast upstream (nginx, or node:http); connections/s. wrk
 *   reconnects after every response the server closes; without wrk the
 *   bench's close-loop client does the same.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runLoad, type LoadResult, type LoadTool } from './load.js';
import {
  haproxyBinary,
  iperf3Binary,
  nginxStreamModule,
  startBulkSink,
  startHaproxy,
  startIperf3Server,
  startNginxStream,
  startNodePipe,
  startTcpPortico,
  type ProxyOptions,
  type TcpProcess,
} from './tcp-peers.js';
import { Managed, freePort, httpGet, pinned } from './util.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export const TCP_SCENARIOS = ['tcp-bulk', 'tcp-connect'] as const;
export type TcpScenario = (typeof TCP_SCENARIOS)[number];
export type TcpTarget = 'direct' | 'portico' | 'haproxy' | 'nginx-stream' | 'node-pipe';

/** The targets, as fractions of HAProxy's figure. */
export const TCP_TARGETS: Record<TcpScenario, number> = { 'tcp-bulk': 0.8, 'tcp-connect': 0.5 };

export const TCP_DESCRIPTIONS: Record<TcpScenario, string> = {
  'tcp-bulk': 'one TCP connection, bytes one way as fast as possible, Gbit/s; Portico: protocol tcp listener',
  'tcp-connect': 'one HTTP GET (13-byte body) per TCP connection, connections/s; Portico: protocol tcp listener',
};

export const TCP_UNITS: Record<TcpScenario, string> = { 'tcp-bulk': 'Gbit/s', 'tcp-connect': 'conn/s' };

/** A load result of any scenario: for `tcp-bulk`, `rps` is Gbit/s and `bytes` the bytes counted. */
export type BenchResult = Omit<LoadResult, 'tool'> & { tool: LoadResult['tool'] | 'iperf3' | 'tcp-bulk'; bytes?: number };

/** Measured seconds, warm-up seconds inside the same run (0 = none), measured-window callback. */
export type TcpRunFn = (durationS: number, warmupS: number, onMeasuring: () => void) => Promise<BenchResult>;

export interface TcpContext<R> {
  connections: number;
  tool: LoadTool;
  cpuProf: boolean;
  porticoMain: string | undefined;
  /** Whether Portico is measured at all (--no-portico). */
  portico: boolean;
  nginxBin: string | undefined;
  /** The fast HTTP upstream (target of tcp-connect). */
  upstream: { port: number; proc: Managed };
  cpuLoad: number;
  cpuUpstream: number;
  cpuProxy: number;
  notes: string[];
  /** The runner's measuring routine (warm-up, noise probe, retries). */
  measure(target: TcpTarget, url: string, run: TcpRunFn, alive: () => string | undefined, pid: number | undefined, warmupInside: boolean): Promise<R>;
  /** A row for a target that could not be started. */
  failed(target: TcpTarget, failure: string): R;
  /** Throws when the bench was interrupted. */
  checkInterrupted(): void;
}

/** Which peers this machine has, for the header and the notes. */
export function tcpPeers(nginxBin: string | undefined): { iperf3?: string; haproxy?: string; nginxStream?: { load: string | undefined } } {
  return { iperf3: iperf3Binary(), haproxy: haproxyBinary(), nginxStream: nginxStreamModule(nginxBin) };
}

/** Parses `iperf3 -J` output: received bits/s and bytes of the summary, or the error iperf3 reports. */
export function parseIperf3(out: string): { bitsPerSecond: number; bytes: number } {
  let doc: { error?: string; end?: { sum_received?: { bits_per_second?: number; bytes?: number } } };
  try {
    doc = JSON.parse(out) as typeof doc;
  } catch {
    throw new Error(`iperf3 printed no JSON:\n${out.slice(0, 2000)}`);
  }
  if (doc.error !== undefined) throw new Error(`iperf3: ${doc.error}`);
  const r = doc.end?.sum_received;
  if (r?.bits_per_second === undefined || r.bytes === undefined) throw new Error('iperf3 JSON has no end.sum_received');
  return { bitsPerSecond: r.bits_per_second, bytes: r.bytes };
}

function bulkResult(tool: 'iperf3' | 'tcp-bulk', bitsPerSecond: number, bytes: number): BenchResult {
  return {
    tool,
    rps: bitsPerSecond / 1e9,
    p50Ms: Number.NaN,
    p99Ms: Number.NaN,
    requests: 1,
    bytes,
    non2xx: 0,
    socketErrors: 0,
    errors: 0,
    errorDetail: '',
  };
}

/** Runs a load process to its end (killed after `limitMs`) and returns its stdout+stderr tail. */
async function runToEnd(proc: Managed, limitMs: number): Promise<string> {
  const timer = setTimeout(() => void proc.stop(1_000), limitMs);
  await proc.wait();
  clearTimeout(timer);
  await proc.stop();
  return proc.output.toString();
}

/** iperf3 client to 127.0.0.1:port for `durationS` after `warmupS` omitted seconds (-O). */
export async function runIperf3(bin: string, port: number, durationS: number, warmupS: number, cpu: number): Promise<BenchResult> {
  const args = ['-c', '127.0.0.1', '-p', String(port), '-t', String(Math.max(1, Math.round(durationS))), '-J', '--connect-timeout', '3000'];
  if (warmupS > 0) args.push('-O', String(Math.round(warmupS)));
  // The server takes one test at a time and may still be closing the previous one: one retry on "busy".
  for (let attempt = 0; ; attempt++) {
    const [cmd, argv] = pinned(cpu, bin, args);
    const out = await runToEnd(new Managed('iperf3 client', cmd, argv), (durationS + warmupS + 15) * 1000);
    try {
      const r = parseIperf3(out);
      return bulkResult('iperf3', r.bitsPerSecond, r.bytes);
    } catch (err) {
      if (attempt === 0 && /busy/i.test((err as Error).message)) {
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      throw err;
    }
  }
}

/** bench/tcp-bulk.ts sender to 127.0.0.1:port. */
export async function runBulkSender(port: number, durationS: number, warmupS: number, cpu: number): Promise<BenchResult> {
  const [cmd, argv] = pinned(cpu, process.execPath, ['--max-semi-space-size=32', path.join(HERE, 'tcp-bulk.js'), 'send', String(port), String(durationS), String(warmupS)]);
  const proc = new Managed('node bulk sender', cmd, argv);
  const out = await runToEnd(proc, (durationS + warmupS + 15) * 1000);
  if (proc.exitCode !== 0) throw new Error(`node bulk sender failed (${proc.exitReason() ?? 'killed'})`);
  const line = out.trim().split('\n').pop() ?? '';
  const r = JSON.parse(line) as { bytes: number; bitsPerSecond: number };
  return bulkResult('tcp-bulk', r.bitsPerSecond, r.bytes);
}

/**
 * Runs one TCP scenario: the server, then direct and each proxy in turn
 * (started, sanity-checked, measured, stopped: only one proxy at a time
 * on the proxy CPU). Returns one row per target, in a fixed order.
 */
export async function runTcpScenario<R>(scenario: TcpScenario, ctx: TcpContext<R>): Promise<R[]> {
  const rows: R[] = [];
  const peers = tcpPeers(ctx.nginxBin);
  let server: TcpProcess | undefined;
  try {
    let targetPort: number;
    let run: (port: number) => TcpRunFn;
    let warmupInside: boolean;
    let alive: () => string | undefined;
    let sanity: ((port: number) => Promise<string | undefined>) | undefined;
    if (scenario === 'tcp-bulk') {
      targetPort = await freePort();
      const iperf3 = peers.iperf3;
      server = iperf3 !== undefined ? await startIperf3Server(iperf3, targetPort, ctx.cpuUpstream) : await startBulkSink(targetPort, ctx.cpuUpstream);
      if (iperf3 === undefined) ctx.notes.push('tcp-bulk: iperf3 not installed: the Node sender and sink (bench/tcp-bulk.ts) measured instead (apt-get install iperf3)');
      run =
        (port) =>
        (d, w) =>
          iperf3 !== undefined ? runIperf3(iperf3, port, d, w, ctx.cpuLoad) : runBulkSender(port, d, w, ctx.cpuLoad);
      // iperf3 omits its first seconds (-O), the Node sender its warm-up: one process, one connection.
      warmupInside = true;
      const s = server;
      alive = () => s.proc.exitReason();
    } else {
      targetPort = ctx.upstream.port;
      run = (port) => (d) => runLoad(ctx.tool, { url: `http://127.0.0.1:${port}/small`, connections: ctx.connections, durationS: d, headers: { Connection: 'close' }, cpu: ctx.cpuLoad });
      warmupInside = false;
      alive = () => ctx.upstream.proc.exitReason();
      sanity = async (port) => {
        try {
          const r = await httpGet(port, '/small');
          return r.status === 200 ? undefined : `GET /small returned ${r.status}`;
        } catch (err) {
          return `GET /small failed: ${(err as Error).message}`;
        }
      };
    }
    const url = (port: number): string => (scenario === 'tcp-bulk' ? `tcp://127.0.0.1:${port}` : `http://127.0.0.1:${port}/small`);
    rows.push(await ctx.measure('direct', url(targetPort), run(targetPort), alive, scenario === 'tcp-bulk' ? server?.proc.pid : ctx.upstream.proc.pid, warmupInside));

    const proxies: [TcpTarget, ((o: ProxyOptions) => Promise<TcpProcess>) | undefined, string][] = [
      [
        'portico',
        ctx.portico ? async (o) => startTcpPortico({ ...o, adminPort: await freePort(), cpuProf: ctx.cpuProf, ...(ctx.porticoMain !== undefined ? { main: ctx.porticoMain } : {}) }) : undefined,
        'skipped: --no-portico',
      ],
      ['haproxy', peers.haproxy !== undefined ? (o) => startHaproxy(peers.haproxy!, o) : undefined, 'haproxy not installed: peer skipped (apt-get install haproxy)'],
      [
        'nginx-stream',
        ctx.nginxBin !== undefined && peers.nginxStream !== undefined ? (o) => startNginxStream(ctx.nginxBin!, peers.nginxStream!, o) : undefined,
        ctx.nginxBin === undefined ? 'nginx not installed (or --no-nginx): nginx stream peer skipped' : "nginx has no stream module: peer skipped (apt-get install libnginx-mod-stream)",
      ],
      ['node-pipe', (o) => startNodePipe(o), ''],
    ];
    for (const [target, start, skipped] of proxies) {
      ctx.checkInterrupted();
      if (start === undefined) {
        if (target !== 'portico') ctx.notes.push(`${scenario}: ${skipped}`);
        continue;
      }
      let proxy: TcpProcess | undefined;
      try {
        proxy = await start({ port: await freePort(), targetPort, cpu: ctx.cpuProxy });
      } catch (err) {
        rows.push(ctx.failed(target, `failed to start: ${(err as Error).message}`));
        continue;
      }
      try {
        const problem = await sanity?.(proxy.port);
        if (problem !== undefined) ctx.notes.push(`${scenario}: sanity check through ${target}: ${problem}`);
        const p = proxy;
        rows.push(await ctx.measure(target, url(p.port), run(p.port), () => p.proc.exitReason() ?? alive(), p.proc.pid, warmupInside));
      } finally {
        ctx.notes.push(...(await proxy.stop()));
      }
    }
  } finally {
    if (server !== undefined) await server.stop();
  }
  return rows;
}
