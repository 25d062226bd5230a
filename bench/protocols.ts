/**
 * The runner's side of the protocol scenarios (h2, websocket, grpc-unary,
 * grpc-bidi): their upstream/direct servers and their load generators.
 *
 * - h2: the direct target is nginx with `listen … ssl http2` (or, without
 *   nginx, bench/h2-server.ts); load is h2load (or bench/h2-load.ts).
 * - websocket: a `ws` echo server (bench/ws-echo-server.ts); load is
 *   bench/ws-load.ts.
 * - grpc-*: a @grpc/grpc-js echo server (bench/grpc-server.ts, the service
 *   of bench/echo.proto); load is bench/grpc-load.ts.
 *
 * Every server and load generator is its own process (a `Managed` child,
 * stopped by cleanup() on exit or error), pinned to the CPU it is given.
 */
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadResult } from './load.js';
import type { LoadReport } from './loadgen.js';
import { startNginxH2, type Started, type TlsFiles } from './nginx.js';
import { Managed, REPO_ROOT, h2Get, hasBinary, httpGet, pinned, waitUntil } from './util.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The gRPC service definition, read at run time from the source tree. */
export const ECHO_PROTO = path.join(REPO_ROOT, 'bench', 'echo.proto');

/** Node flags for the bench's own Node servers and load generators (as for Portico: many short-lived objects). */
const NODE_FLAGS = ['--max-semi-space-size=32'];

function nodeProc(name: string, script: string, args: readonly string[], cpu: number | undefined): Managed {
  const [cmd, argv] = pinned(cpu, process.execPath, [...NODE_FLAGS, path.join(HERE, script), ...args]);
  return new Managed(name, cmd, argv);
}

// --- servers ---

/** The direct HTTP/2 TLS target: nginx when given, else node:http2. */
export async function startH2Direct(nginxBin: string | undefined, port: number, tls: TlsFiles, cpu: number | undefined): Promise<Started> {
  if (nginxBin !== undefined) return startNginxH2(nginxBin, port, tls, cpu);
  const proc = nodeProc('node h2 server', 'h2-server.js', [String(port), tls.cert, tls.key], cpu);
  await waitUntil('node h2 server', async () => (await h2Get(port, '/small', true, {}, 1000)).status === 200, { abort: () => proc.exitReason() });
  return { proc, port, kind: 'node' };
}

export async function startWsEcho(port: number, cpu: number | undefined): Promise<Managed> {
  const proc = nodeProc('ws echo server', 'ws-echo-server.js', [String(port)], cpu);
  await waitUntil('ws echo server', async () => (await httpGet(port, '/', {}, 1000)).status === 426, { abort: () => proc.exitReason() });
  return proc;
}

export async function startGrpcServer(port: number, cpu: number | undefined): Promise<Managed> {
  const proc = nodeProc('grpc echo server', 'grpc-server.js', [String(port), ECHO_PROTO], cpu);
  await waitUntil('grpc echo server', async () => proc.output.toString().includes('ready'), { abort: () => proc.exitReason(), timeoutMs: 15_000 });
  return proc;
}

// --- load generators ---

export type H2Tool = 'h2load' | 'node';

export function defaultH2Tool(): H2Tool {
  return hasBinary('h2load') ? 'h2load' : 'node';
}

export interface ProtoLoadOptions {
  /** h2: https URL; websocket: ws URL; grpc: host:port. */
  target: string;
  /** Connections (h2 sessions, WebSocket connections, gRPC channels). */
  connections: number;
  /** In flight per connection: streams, messages or calls. */
  inflight: number;
  durationS: number;
  /** Warm-up inside the same process (same load, not counted) before the measured window. */
  warmupS: number;
  /** Called when the measured window opens (after the warm-up), when the tool tells. */
  onMeasuring?: () => void;
  cpu: number | undefined;
}

/** Run a bench load generator process and read its LoadReport. */
async function runNodeLoad(name: string, script: string, args: string[], tool: LoadResult['tool'], o: ProtoLoadOptions): Promise<LoadResult> {
  const proc = nodeProc(name, script, [...args, '--warmup', String(o.warmupS), '--duration', String(o.durationS)], o.cpu);
  // The generator prints "measuring" when its warm-up ends.
  let seen = '';
  let told = false;
  proc.child.stdout?.on('data', (c: Buffer) => {
    if (told) return;
    seen = (seen + c.toString('latin1')).slice(-64);
    if (seen.includes('measuring\n')) {
      told = true;
      o.onMeasuring?.();
    }
  });
  await proc.wait();
  await proc.stop();
  const out = proc.output.toString();
  const line = out
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{'));
  if (proc.exitCode !== 0 || line === undefined) throw new Error(`${name} failed (${proc.exitReason() ?? 'no report'})`);
  const r = JSON.parse(line) as LoadReport;
  const errors = r.failed + r.socketErrors;
  return {
    tool,
    rps: r.rate,
    p50Ms: r.p50Ms ?? Number.NaN,
    p99Ms: r.p99Ms ?? Number.NaN,
    requests: r.ops + r.failed,
    non2xx: r.failed,
    socketErrors: r.socketErrors,
    errors,
    errorDetail: r.errorDetail,
  };
}

export function runH2(tool: H2Tool, o: ProtoLoadOptions, tmpDir: string): Promise<LoadResult> {
  if (tool === 'h2load') return runH2load(o, tmpDir);
  return runNodeLoad(
    'h2-load',
    'h2-load.js',
    ['--url', o.target, '--connections', String(o.connections), '--streams', String(o.inflight)],
    'h2-load',
    o,
  );
}

export function runWs(o: ProtoLoadOptions): Promise<LoadResult> {
  return runNodeLoad(
    'ws-load',
    'ws-load.js',
    ['--url', o.target, '--connections', String(o.connections), '--inflight', String(o.inflight)],
    'ws-load',
    o,
  );
}

export function runGrpc(mode: 'unary' | 'bidi', o: ProtoLoadOptions): Promise<LoadResult> {
  return runNodeLoad(
    `grpc-load ${mode}`,
    'grpc-load.js',
    [
      '--mode', mode, '--target', o.target, '--proto', ECHO_PROTO,
      '--connections', String(o.connections), '--inflight', String(o.inflight),
    ],
    'grpc-load',
    o,
  );
}

let logSeq = 0;

/**
 * h2load -c C -m M -D S --warm-up-time W (one thread, pinned). h2load prints no latency
 * percentiles, so per-request latencies come from its --log-file (one line
 * per request: start µs, status, duration µs), removed afterwards.
 */
async function runH2load(o: ProtoLoadOptions, tmpDir: string): Promise<LoadResult> {
  const logFile = path.join(tmpDir, `h2load-${process.pid}-${logSeq++}.log`);
  const duration = Math.max(1, Math.round(o.durationS));
  const warmup = o.warmupS > 0 ? [`--warm-up-time=${Math.max(1, Math.round(o.warmupS))}`] : [];
  const [cmd, args] = pinned(o.cpu, 'h2load', ['-t1', `-c${o.connections}`, `-m${o.inflight}`, `-D${duration}`, ...warmup, `--log-file=${logFile}`, o.target]);
  const proc = new Managed('h2load', cmd, args);
  await proc.wait();
  await proc.stop();
  const out = proc.output.toString();
  try {
    if (proc.exitCode !== 0) throw new Error(`h2load failed (${proc.exitReason() ?? 'unknown'})`);
    const parsed = parseH2load(out);
    const durations = (await readFile(logFile, 'utf8').catch(() => ''))
      .split('\n')
      .map((l) => Number(l.split('\t')[2]))
      .filter((n) => Number.isFinite(n) && n >= 0);
    const lat = Float64Array.from(durations).sort();
    const pct = (p: number): number => (lat.length === 0 ? Number.NaN : lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]! / 1000);
    return { tool: 'h2load', ...parsed, p50Ms: pct(0.5), p99Ms: pct(0.99) };
  } finally {
    await rm(logFile, { force: true });
  }
}

/** Parse h2load's summary: "finished in …, N req/s", "requests: … N succeeded, N failed, N errored, N timeout", "status codes: …". */
export function parseH2load(out: string): Omit<LoadResult, 'tool' | 'p50Ms' | 'p99Ms'> {
  const rps = /^finished in [^,]+, ([\d.]+) req\/s/m.exec(out);
  const req = /^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/m.exec(out);
  if (rps === null || req === null) throw new Error(`h2load output has no summary:\n${out}`);
  const [done, succeeded, failedN, errored, timeout] = req.slice(3, 8).map(Number) as [number, number, number, number, number];
  const codes = /^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/m.exec(out);
  const non2xx = codes === null ? 0 : Number(codes[3]) + Number(codes[4]);
  // "failed" counts requests without a 2xx/3xx status, including errored and timed out ones.
  const socketErrors = Math.max(0, failedN - non2xx);
  return {
    rps: Number(rps[1]),
    requests: done,
    non2xx,
    socketErrors,
    errors: non2xx + socketErrors,
    errorDetail:
      non2xx + socketErrors === 0
        ? ''
        : `h2load: ${succeeded} succeeded, ${failedN} failed (${errored} errored, ${timeout} timeout); status codes ${codes?.slice(1, 5).join('/') ?? '?'} (2xx/3xx/4xx/5xx)`,
  };
}
