/**
 * Portico bench runner: measures the same traffic sent directly to a fast
 * upstream, through Portico, through nginx as a peer proxy and through Go's
 * httputil.ReverseProxy (go-proxy.ts), and prints one table per scenario plus
 * a summary of the Portico/nginx and Portico/Go ratios. The protocol
 * scenarios (h2, websocket, grpc-unary, grpc-bidi) compare Portico with a
 * direct connection to the same server (see protocols.ts). The idle scenario
 * measures memory per idle keep-alive connection (see idle.ts).
 *
 *   node build/bench/run.js [--duration 10] [--connections 50] [--quick]
 *                           [--only small,large,close,small-accesslog,policies,idle,
 *                                   h2,websocket,grpc-unary,grpc-bidi]
 *                           [--cpu-prof] [--no-portico] [--no-nginx]
 *                           [--load wrk|autocannon] [--warmup 1]
 *                           [--proto-connections 10] [--inflight 10] [--no-h2load]
 *                           [--idle-connections 5000] [--no-install]
 *
 * The TCP scenarios (tcp-bulk, tcp-connect) compare Portico's `protocol: tcp`
 * listener with a direct connection, HAProxy, nginx stream and a bare Node
 * pipe (see tcp.ts).
 *
 * The tunnel scenario (`--only tunnel`) compares Portico's tunnel (gateway
 * `protocol: tunnel` listener + `portico agent`) with a direct connection
 * and OpenSSH's `ssh -R` in six measures (see tunnel.ts).
 *
 * See bench/README.md for what each scenario measures and how to read it.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildGoProxy, startGoProxy, type GoBuild, type RunningGoProxy } from './go-proxy.js';
import { IDLE_CONNECTIONS, IDLE_CONNECTIONS_QUICK, IDLE_TARGET, idleCount, renderIdle, runIdleScenario, startBareServer, type IdleRow, type IdleServer, type IdleTargetName } from './idle.js';
import { defaultTool, runLoad, type LoadTool } from './load.js';
import { FOREIGN_LIMIT, STEAL_LIMIT, isNoisy, startNoiseProbe, type Noise } from './noise.js';
import { makeTempDir, nginxBinary, startNginxPeer, type Started } from './nginx.js';
import { POLICIES_TOKEN, startPortico, type ProtocolPorts, type RunningPortico } from './portico.js';
import { defaultH2Tool, runGrpc, runH2, runWs, startGrpcServer, startH2Direct, startWsEcho, type H2Tool, type ProtoLoadOptions } from './protocols.js';
import { TCP_DESCRIPTIONS, TCP_SCENARIOS, TCP_TARGETS, TCP_UNITS, runTcpScenario, tcpPeers, type BenchResult, type TcpScenario } from './tcp.js';
import { makeCert, type CertFiles } from './tls-cert.js';
import { IDLE_STREAMS, TUNNEL_DESCRIPTIONS, TUNNEL_TARGETS, TUNNEL_UNITS, renderMemory, runTunnelScenario, type MemoryRow, type TunnelPart } from './tunnel.js';
import { ensureTunnelDeps } from './tunnel-peers.js';
import { startUpstream } from './upstream.js';
import { Managed, REPO_ROOT, canPin, cleanup, freePort, hasBinary, killAllNow } from './util.js';

const SCENARIOS = ['small', 'large', 'close', 'small-accesslog', 'policies', 'idle', 'h2', 'websocket', 'grpc-unary', 'grpc-bidi', ...TCP_SCENARIOS, 'tunnel'] as const;
type Scenario = (typeof SCENARIOS)[number];
/** The protocol scenarios: Portico vs a direct connection, each with its own server and load generator (protocols.ts). */
const PROTO_SCENARIOS = ['h2', 'websocket', 'grpc-unary', 'grpc-bidi'] as const;
type ProtoScenario = (typeof PROTO_SCENARIOS)[number];
const isProto = (s: Scenario): s is ProtoScenario => (PROTO_SCENARIOS as readonly string[]).includes(s);
const isTcp = (s: Scenario | TunnelPart): s is TcpScenario => (TCP_SCENARIOS as readonly string[]).includes(s);
type ProxyScenario = Exclude<Scenario, 'small-accesslog' | 'policies' | 'idle' | ProtoScenario | TcpScenario | 'tunnel'>;
type TargetName =
  | 'direct'
  | 'portico'
  | 'nginx'
  | 'go'
  | 'portico+accesslog'
  | 'portico+policies'
  | 'portico+ratelimit'
  | 'haproxy'
  | 'nginx-stream'
  | 'node-pipe'
  | 'ssh-r'
  | 'portico-tunnel';

/** CPU layout: the load generator and the upstream share CPU 0, the proxy under test has CPU 1 to itself. */
const CPU_LOAD = 0;
const CPU_UPSTREAM = 0;
const CPU_PROXY = 1;

const USAGE = `usage: node build/bench/run.js [options]

  --duration <s>        measured seconds per run (default 10)
  --connections <n>     concurrent connections (default 50)
  --quick               2 s runs, for CI smoke runs (an explicit --duration wins)
  --warmup <s>          warm-up seconds before each measured run (default 1)
  --only <list>         comma-separated scenarios: ${SCENARIOS.join(', ')}
  --cpu-prof            run Portico under node --cpu-prof (profiles in .bench/profiles)
  --retries <n>         re-measure a run disturbed by other processes up to n times (default 1)
  --no-portico          skip Portico (measure direct and nginx only)
  --portico <file>      Portico CLI entry to run (default dist/cli/main.js), e.g. an older build
  --no-nginx            do not use nginx: node:http upstream, no nginx peer
  --load <tool>         wrk or autocannon (default: wrk when installed)
  --proto-connections <n>  h2 connections, WebSocket connections, gRPC channels (default 10;
                        grpc-bidi opens min(4, n) streams)
  --inflight <n>        in flight per connection: h2 streams, WebSocket messages,
                        gRPC calls or bidi messages (default 10)
  --no-h2load           h2 load from bench/h2-load.ts (node:http2) even if h2load is installed
  --idle-connections <n>  idle: keep-alive connections held open (default ${IDLE_CONNECTIONS};
                        ${IDLE_CONNECTIONS_QUICK} with --quick)
  --no-install          do not install missing tools with apt-get: the TCP scenarios' peers
                        (haproxy, iperf3), Go (golang-go, for the go contender), h2load
                        (nghttp2-client), the tunnel scenario's (openssh-server, nginx, wrk, iperf3)
  -h, --help            this text
`;

interface Options {
  durationS: number;
  /** The tunnel scenario's runs: 5 s unless --duration (or --quick) says otherwise. */
  tunnelDurationS: number;
  warmupS: number;
  connections: number;
  scenarios: Scenario[];
  cpuProf: boolean;
  portico: boolean;
  nginx: boolean;
  tool: LoadTool;
  /** --load was given (otherwise the tool is chosen again after the tunnel scenario installs wrk). */
  toolExplicit: boolean;
  retries: number;
  porticoMain: string | undefined;
  protoConnections: number;
  inflight: number;
  h2Tool: H2Tool;
  /** --no-h2load was given. */
  noH2load: boolean;
  idleConnections: number;
  install: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      duration: { type: 'string' },
      connections: { type: 'string' },
      quick: { type: 'boolean', default: false },
      warmup: { type: 'string' },
      retries: { type: 'string' },
      portico: { type: 'string' },
      only: { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
      'no-portico': { type: 'boolean', default: false },
      'no-nginx': { type: 'boolean', default: false },
      load: { type: 'string' },
      'proto-connections': { type: 'string' },
      inflight: { type: 'string' },
      'no-h2load': { type: 'boolean', default: false },
      'idle-connections': { type: 'string' },
      'no-install': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const num = (name: string, v: string | undefined, def: number, min: number): number => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be a number >= ${min}, got '${v}'`);
    return n;
  };
  const durationS = num('duration', values.duration, values.quick ? 2 : 10, 1);
  const warmupS = num('warmup', values.warmup, 1, 0);
  const connections = Math.round(num('connections', values.connections, 50, 1));
  const retries = Math.round(num('retries', values.retries, 1, 0));
  const protoConnections = Math.round(num('proto-connections', values['proto-connections'], 10, 1));
  const inflight = Math.round(num('inflight', values.inflight, 10, 1));
  const idleConnections = Math.round(num('idle-connections', values['idle-connections'], values.quick ? IDLE_CONNECTIONS_QUICK : IDLE_CONNECTIONS, 1));
  let scenarios: Scenario[] = [...SCENARIOS];
  if (values.only !== undefined) {
    const wanted = values.only
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    for (const w of wanted) {
      if (!(SCENARIOS as readonly string[]).includes(w)) throw new UsageError(`--only: unknown scenario '${w}' (known: ${SCENARIOS.join(', ')})`);
    }
    scenarios = SCENARIOS.filter((s) => wanted.includes(s));
  }
  let tool: LoadTool = defaultTool();
  if (values.load !== undefined) {
    if (values.load !== 'wrk' && values.load !== 'autocannon') throw new UsageError(`--load must be wrk or autocannon, got '${values.load}'`);
    if (values.load === 'wrk' && !hasBinary('wrk')) throw new UsageError('--load wrk: wrk is not installed');
    tool = values.load;
  }
  return {
    durationS,
    tunnelDurationS: values.duration !== undefined || values.quick ? durationS : 5,
    warmupS,
    connections,
    scenarios,
    cpuProf: values['cpu-prof'],
    portico: !values['no-portico'],
    nginx: !values['no-nginx'],
    tool,
    toolExplicit: values.load !== undefined,
    retries,
    porticoMain: values.portico !== undefined ? path.resolve(values.portico) : undefined,
    protoConnections,
    inflight,
    h2Tool: values['no-h2load'] ? 'node' : defaultH2Tool(),
    noH2load: values['no-h2load'],
    idleConnections,
    install: !values['no-install'],
  };
}

class UsageError extends Error {}

interface Row {
  target: TargetName;
  /** Shown instead of `target` in the table (e.g. `ssh -R`). */
  label?: string;
  url: string;
  result?: BenchResult;
  /** Why there is no result (process failed to start, load generator failed, ...). */
  failure?: string;
  vsDirect?: number;
  vsNginx?: number;
  /** HTTP proxy scenarios, Portico row: ratio to Go's httputil.ReverseProxy (rps), and of the p99 latencies. */
  vsGo?: number;
  p99VsGo?: number;
  /** TCP scenarios, Portico row: ratio to HAProxy, and to the bare Node pipe. */
  vsHaproxy?: number;
  vsPipe?: number;
  /**
   * TCP scenarios, proxy rows: the rate one fully busy core of the proxy would give (rate / its CPU
   * share), and the Portico row's ratio of that to HAProxy's. Robust when the load generator is the
   * limit or other processes share the machine, since it counts only the proxy's own CPU time.
   */
  perCore?: number;
  perCoreVsHaproxy?: number;
  /** Tunnel scenario: ratio to the report's `peer` row (ssh -R; in tunnel-http, Portico's plain proxy). */
  vsPeer?: number;
  /** For portico+accesslog: ratio to portico small without the log. */
  vsNoLog?: number;
  /** For portico+policies and portico+ratelimit: ratio to the bare route measured just before. */
  vsBare?: number;
  /** CPU used by processes outside the bench during the measured run. */
  noise?: Noise;
}

interface ScenarioReport {
  scenario: Scenario | TunnelPart;
  description: string;
  /** What the rate counts: rps for HTTP, msg/s for WebSocket and gRPC bidi messages, calls/s for gRPC unary. */
  unit?: string;
  /**
   * The peer the Portico row is compared with in the last ratio column: nginx (HTTP), haproxy (TCP),
   * ssh -R (tunnel), Portico's plain proxy (tunnel-http, compared with the portico-tunnel row).
   */
  peer?: 'nginx' | 'haproxy' | 'ssh-r' | 'portico';
  /** Add the `per core` column (rate / CPU share of the proxy rows). */
  perCore?: boolean;
  rows: Row[];
}

const DESCRIPTIONS: Record<Scenario, string> = {
  small: 'keep-alive GET, 13-byte body',
  large: 'keep-alive GET, 64 KiB body',
  close: 'GET 13-byte body, Connection: close on every request',
  'small-accesslog': 'keep-alive GET, 13-byte body, Portico access log on vs off',
  policies: 'keep-alive GET, 13-byte body, route with jwt-auth + rate-limit (and with rate-limit alone) vs the bare route',
  h2: 'GET 13-byte body over HTTP/2 with TLS (ALPN h2); Portico: https listener, HTTP/1.1 upstream',
  websocket: 'WebSocket echo of 13-byte text messages, messages/s; Portico: upgrade proxied to the ws echo server',
  'grpc-unary': 'gRPC UnaryEcho calls/s (grpc-js client and server, h2c); Portico: http listener (h2c), h2c upstream',
  'grpc-bidi': 'gRPC BidirectionalStreamingEcho messages/s on a few long-lived streams (grpc-js, h2c)',
  ...TCP_DESCRIPTIONS,
  idle: 'memory per idle keep-alive connection: bare node:http, Portico, Go',
  tunnel: 'Portico tunnel vs direct and ssh -R: bulk, request/response, HTTP via tunnel, connect rate, memory per stream, long link',
};

/** Runs the load for a target: measured seconds, warm-up seconds inside the same run (0 = none), measured-window callback. */
type RunFn = (durationS: number, warmupS: number, onMeasuring: () => void) => Promise<BenchResult>;

const UNITS: Record<ProtoScenario, string> = { h2: 'rps', websocket: 'msg/s', 'grpc-unary': 'calls/s', 'grpc-bidi': 'msg/s' };

/** The target for gRPC unary calls through Portico, as a fraction of direct calls/s. */
const GRPC_UNARY_TARGET = 0.5;
/** The target for HTTP/2 requests through Portico, as a fraction of direct requests/s. */
const H2_TARGET = 0.3;
/**
 * Targets against Go's httputil.ReverseProxy (GOMAXPROCS=1, same core, same work): rps ratios at
 * least, p99 ratios (Portico's p99 / Go's) at most.
 */
const GO_TARGETS = { small: 1.5, smallP99: 1.0, large: 1.0, largeP99: 2, close: 0.7 } as const;

const PATHS: Record<ProxyScenario, string> = { small: '/small', large: '/large', close: '/small' };

/** `policies`: rounds of bare / policies / rate-limit-only runs, in alternation. */
const POLICY_ROUNDS = 5;

/** A target's rate in a scenario, unless it failed or produced only errors. */
function rpsOf(rep: ScenarioReport | undefined, t: TargetName): number | undefined {
  const r = rep?.rows.find((x) => x.target === t)?.result;
  return r === undefined || onlyErrors(r) ? undefined : r.rps;
}

/** Fills each row's ratios to the direct and nginx rows of its scenario, prints the table, and returns the report. */
function report(rep: ScenarioReport): ScenarioReport {
  const direct = rpsOf(rep, 'direct');
  const nginx = rpsOf(rep, 'nginx');
  const go = rpsOf(rep, 'go');
  const goP99 = rep.rows.find((r) => r.target === 'go')?.result?.p99Ms;
  const haproxy = rpsOf(rep, 'haproxy');
  const pipe = rpsOf(rep, 'node-pipe');
  for (const row of rep.rows) {
    if (row.result === undefined || row.target === 'direct') continue;
    if (direct !== undefined) row.vsDirect = row.result.rps / direct;
    if (row.target === 'portico' && nginx !== undefined) row.vsNginx = row.result.rps / nginx;
    if (row.target === 'portico' && go !== undefined) {
      row.vsGo = row.result.rps / go;
      if (goP99 !== undefined && goP99 > 0 && Number.isFinite(row.result.p99Ms)) row.p99VsGo = row.result.p99Ms / goP99;
    }
    if (row.target === 'portico' && haproxy !== undefined) row.vsHaproxy = row.result.rps / haproxy;
    if (row.target === 'portico' && pipe !== undefined) row.vsPipe = row.result.rps / pipe;
    // A ratio set by the scenario itself (tunnel-http: median of alternating rounds) is kept.
    if (row.vsPeer === undefined && ((rep.peer === 'ssh-r' && row.target === 'portico') || (rep.peer === 'portico' && row.target === 'portico-tunnel'))) {
      const peerRps = rpsOf(rep, rep.peer);
      if (peerRps !== undefined) row.vsPeer = row.result.rps / peerRps;
    }
    const cpu = row.noise?.targetPct;
    if ((rep.peer === 'haproxy' || rep.perCore === true) && cpu !== undefined && cpu > 0) row.perCore = row.result.rps / (cpu / 100);
  }
  const haproxyPerCore = rep.rows.find((r) => r.target === 'haproxy')?.perCore;
  const porticoRow = rep.rows.find((r) => r.target === 'portico');
  if (porticoRow?.perCore !== undefined && haproxyPerCore !== undefined) porticoRow.perCoreVsHaproxy = porticoRow.perCore / haproxyPerCore;
  process.stdout.write(renderTable(rep) + '\n\n');
  return rep;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** A run that produced no successful response at all. */
function onlyErrors(r: BenchResult): boolean {
  return r.requests - r.non2xx <= 0 || r.rps <= 0;
}

const fmtNum = (n: number | undefined, digits: number): string => (n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(digits));
const fmtRps = (n: number): string => Math.round(n).toLocaleString('en-US');
const fmtBytes = (n: number | undefined): string => (n === undefined || !Number.isFinite(n) ? 'n/a' : `${Math.round(n).toLocaleString('en-US')} B`);

function renderTable(rep: ScenarioReport): string {
  const hasNoLog = rep.rows.some((r) => r.vsNoLog !== undefined);
  const hasBare = rep.rows.some((r) => r.vsBare !== undefined);
  const vsPeer = (row: Row): number | undefined =>
    rep.peer === 'haproxy' ? row.vsHaproxy : rep.peer === 'ssh-r' || rep.peer === 'portico' ? row.vsPeer : row.vsNginx;
  const tcp = rep.peer === 'haproxy' || rep.perCore === true;
  const peerLabel = rep.peer === 'ssh-r' ? 'ssh -R' : rep.peer === 'portico' ? 'plain' : (rep.peer ?? 'nginx');
  const hasGo = rep.rows.some((r) => r.target === 'go');
  const header = [
    'target', rep.unit ?? 'rps', 'p50 ms', 'p99 ms', 'errors', 'vs direct',
    hasNoLog ? 'vs no log' : hasBare ? 'vs bare' : `vs ${peerLabel}`,
    ...(hasGo ? ['vs go'] : []),
    'proc', 'cpu0', 'cpu1', 'noise',
  ];
  if (tcp) header.push('per core');
  // Bulk throughput (Gbit/s) needs decimals; rates are whole numbers.
  const fmtRate = (n: number): string => (rep.unit === 'Gbit/s' ? (n < 1 ? n.toFixed(3) : n.toFixed(2)) : fmtRps(n));
  const lines: string[][] = [header];
  const notes: string[] = [];
  for (const row of rep.rows) {
    if (row.result === undefined) {
      lines.push([row.label ?? row.target, 'FAILED', '-', '-', '-', '-', '-', ...(hasGo ? [''] : []), '', '', '', '', ...(tcp ? [''] : [])]);
      notes.push(`  ! ${row.label ?? row.target}: ${row.failure ?? 'no result'}`);
      continue;
    }
    const r = row.result;
    if (row.failure !== undefined) notes.push(`  ! ${row.target}: ${row.failure}`);
    const errCell = r.errors > 0 ? `${r.errors} !` : '0';
    if (r.errors > 0) notes.push(`  ! ${row.target}: ${onlyErrors(r) ? 'ONLY ERRORS — ' : ''}${r.errorDetail} (of ${r.requests} responses)`);
    const n = row.noise;
    if (n !== undefined && isNoisy(n)) {
      notes.push(
        `  ~ ${row.target}: noisy run: other processes used ${n.foreignPct.toFixed(0)}% of a core${n.top.length ? ` (${n.top.join(', ')})` : ''}, steal ${n.stealPct.toFixed(1)}%`,
      );
    }
    lines.push([
      row.label ?? row.target,
      fmtRate(r.rps),
      fmtNum(r.p50Ms, 2),
      fmtNum(r.p99Ms, 2),
      errCell,
      row.target === 'direct' ? '1.00' : fmtNum(row.vsDirect, 2),
      hasNoLog
        ? row.vsNoLog !== undefined
          ? fmtNum(row.vsNoLog, 2)
          : ''
        : hasBare
          ? row.vsBare !== undefined
            ? fmtNum(row.vsBare, 2)
            : ''
          : vsPeer(row) !== undefined
            ? fmtNum(vsPeer(row), 2)
            : '',
      ...(hasGo ? [row.vsGo !== undefined ? fmtNum(row.vsGo, 2) : ''] : []),
      n?.targetPct === undefined ? '' : `${n.targetPct.toFixed(0)}%`,
      n?.cpuBusyPct[0] === undefined ? '' : `${n.cpuBusyPct[0].toFixed(0)}%`,
      n?.cpuBusyPct[1] === undefined ? '' : `${n.cpuBusyPct[1].toFixed(0)}%`,
      n === undefined ? '' : `${n.foreignPct.toFixed(0)}%${isNoisy(n) ? ' ~' : ''}`,
      ...(tcp ? [row.target === 'direct' || row.perCore === undefined ? '' : fmtRate(row.perCore)] : []),
    ]);
  }
  const widths = header.map((_, i) => Math.max(...lines.map((l) => (l[i] ?? '').length)));
  const fmtLine = (l: string[]): string =>
    '  ' +
    l
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const sep = '  ' + widths.map((w) => '-'.repeat(w)).join('  ');
  const out = [`${rep.scenario} — ${rep.description}`, fmtLine(header), sep, ...lines.slice(1).map(fmtLine)];
  if (notes.length > 0) out.push(...notes);
  return out.join('\n');
}

/** "1.22.1" from `nginx -v` (which prints to stderr). */
function nginxVersionString(bin: string | undefined): string {
  if (bin === undefined) return 'not installed';
  const r = spawnSync(bin, ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const text = `${r.stderr ?? ''}${r.stdout ?? ''}`.trim();
  return text.replace(/^nginx version:\s*nginx\//, '') || 'unknown';
}

/** The tunnel scenario's summary figures: Portico ÷ direct and ÷ ssh -R per measure, and the targets' ratios. */
function tunnelSummary(reports: ScenarioReport[], memory: MemoryRow[]) {
  const row = (part: TunnelPart, t: TargetName): Row | undefined => reports.find((r) => r.scenario === part)?.rows.find((x) => x.target === t);
  const portico = memory.find((m) => m.target === 'portico' && m.failure === undefined);
  const ssh = memory.find((m) => m.target === 'ssh-r' && m.failure === undefined);
  const per = (m: MemoryRow | undefined, i: number): number | undefined => m?.ends[i]?.perStreamBytes;
  return {
    tunnelBulkVsDirect: row('tunnel-bulk', 'portico')?.vsDirect,
    tunnelBulkVsSsh: row('tunnel-bulk', 'portico')?.vsPeer,
    tunnelRrVsDirect: row('tunnel-rr', 'portico')?.vsDirect,
    tunnelRrVsSsh: row('tunnel-rr', 'portico')?.vsPeer,
    tunnelConnectVsDirect: row('tunnel-connect', 'portico')?.vsDirect,
    tunnelConnectVsSsh: row('tunnel-connect', 'portico')?.vsPeer,
    tunnelHttpVsPlain: row('tunnel-http', 'portico-tunnel')?.vsPeer,
    tunnelHttpVsDirect: row('tunnel-http', 'portico-tunnel')?.vsDirect,
    tunnelLongLinkVsPlain: row('tunnel-long-link', 'portico')?.vsDirect,
    tunnelLongLinkVsSsh: row('tunnel-long-link', 'portico')?.vsPeer,
    tunnelLongLinkSshVsPlain: row('tunnel-long-link', 'ssh-r')?.vsDirect,
    tunnelGatewayBytesPerStream: per(portico, 0),
    tunnelAgentBytesPerStream: per(portico, 1),
    tunnelMaxBytesPerStream: portico !== undefined ? Math.max(...portico.ends.map((e) => e.perStreamBytes)) : undefined,
    tunnelSshdBytesPerStream: per(ssh, 0),
    tunnelSshBytesPerStream: per(ssh, 1),
  };
}

function tunnelSummaryLines(s: ReturnType<typeof tunnelSummary>): string[] {
  const k = (n: number | undefined): string => (n === undefined ? 'n/a' : (n / 1024).toFixed(1));
  return [
    `portico tunnel bulk: portico/direct ${fmtNum(s.tunnelBulkVsDirect, 2)}, portico/ssh -R ${fmtNum(s.tunnelBulkVsSsh, 2)}`,
    `portico tunnel rr: portico/direct ${fmtNum(s.tunnelRrVsDirect, 2)}, portico/ssh -R ${fmtNum(s.tunnelRrVsSsh, 2)}`,
    `portico tunnel connect: portico/direct ${fmtNum(s.tunnelConnectVsDirect, 2)}, portico/ssh -R ${fmtNum(s.tunnelConnectVsSsh, 2)}`,
    `portico tunnel http: tunnelled route/plain route ${fmtNum(s.tunnelHttpVsPlain, 2)} (target >= ${TUNNEL_TARGETS.httpVsPlain}; tunnelled/direct ${fmtNum(s.tunnelHttpVsDirect, 2)})`,
    `portico tunnel long link: portico/plain ${fmtNum(s.tunnelLongLinkVsPlain, 2)} (target >= ${TUNNEL_TARGETS.longLinkVsPlain}; portico/ssh -R ${fmtNum(s.tunnelLongLinkVsSsh, 2)}, ssh -R/plain ${fmtNum(s.tunnelLongLinkSshVsPlain, 2)})`,
    `portico tunnel memory: KiB per idle stream: gateway ${k(s.tunnelGatewayBytesPerStream)}, agent ${k(s.tunnelAgentBytesPerStream)} (target <= ${TUNNEL_TARGETS.bytesPerStream / 1024}; ssh -R: sshd ${k(s.tunnelSshdBytesPerStream)}, ssh ${k(s.tunnelSshBytesPerStream)}; ${IDLE_STREAMS} streams)`,
  ];
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }

  const wantTunnel = opts.scenarios.includes('tunnel');
  const tunnelNotes: string[] = [];
  // The tunnel scenario's programs (sshd, ssh, iperf3, nginx as the origin, wrk): installed with apt-get
  // as root before the upstream is chosen, so nginx and wrk serve every scenario of this run.
  if (wantTunnel && opts.install) {
    tunnelNotes.push(...ensureTunnelDeps());
    if (!opts.toolExplicit) opts.tool = defaultTool();
  }
  const nginxBin = opts.nginx ? nginxBinary() : undefined;
  const proxyScenarios = opts.scenarios.filter(
    (s): s is ProxyScenario => s !== 'small-accesslog' && s !== 'policies' && s !== 'idle' && s !== 'tunnel' && !isProto(s) && !isTcp(s),
  );
  const protoScenarios = opts.scenarios.filter(isProto);
  const tcpScenarios = opts.scenarios.filter(isTcp);
  const wantIdle = opts.scenarios.includes('idle');
  const wantGo = proxyScenarios.length > 0 || wantIdle;
  // Missing tools, installed with apt-get when running as root (never fatal: a missing peer is skipped
  // with a note): the TCP scenarios' peers (haproxy, iperf3; nginx's stream module when nginx is
  // there), Go for the go contender, h2load for the h2 scenario.
  const depGroups = [
    ...(tcpScenarios.length > 0 ? ['tcp'] : []),
    ...(wantGo ? ['go'] : []),
    ...(opts.scenarios.includes('h2') && !opts.noH2load ? ['h2load'] : []),
  ];
  if (depGroups.length > 0 && opts.install) {
    const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'scripts', 'ensure-bench-deps.mjs'), ...depGroups], { stdio: 'inherit', timeout: 360_000 });
    if (r.status !== 0) process.stderr.write('bench: ensure-bench-deps did not finish cleanly; missing peers will be skipped\n');
    if (!opts.noH2load) opts.h2Tool = defaultH2Tool();
  }
  // The go contender (Go's httputil.ReverseProxy), built once for this run.
  const goBuild: GoBuild | undefined = wantGo ? await buildGoProxy() : undefined;
  const goBin = goBuild?.ok === true ? goBuild.bin : undefined;
  const goSkipped = goBuild?.ok === false ? `go: row skipped: ${goBuild.reason}` : undefined;
  const peers = tcpScenarios.length > 0 ? tcpPeers(nginxBin) : undefined;
  const wantAccessLog = opts.scenarios.includes('small-accesslog') && opts.portico;
  const wantPolicies = opts.scenarios.includes('policies') && opts.portico;
  const notes: string[] = [...tunnelNotes, ...(goSkipped !== undefined ? [goSkipped] : [])];
  let fatal = false;

  if (opts.scenarios.includes('small-accesslog') && !opts.portico) notes.push('small-accesslog skipped: --no-portico');
  if (opts.scenarios.includes('policies') && !opts.portico) notes.push('policies skipped: --no-portico');

  const pinNote = canPin() ? `load + upstream on CPU ${CPU_LOAD}, proxy under test on CPU ${CPU_PROXY}` : 'taskset not found: no CPU pinning';
  process.stdout.write(
    [
      'Portico bench',
      `  load: ${opts.tool}, ${opts.connections} connections, ${opts.durationS} s per run (+${opts.warmupS} s warm-up)`,
      `  upstream: ${nginxBin !== undefined ? `nginx ${nginxVersionString(nginxBin)}` : 'node:http'}; peer proxies: ${
        proxyScenarios.length === 0
          ? 'none'
          : `${nginxBin !== undefined ? 'nginx' : 'no nginx'}, ${goBuild?.ok === true ? `go (httputil.ReverseProxy, ${goBuild.version}, GOMAXPROCS=1)` : 'no go (skipped, see Notes)'}`
      }`,
      ...(wantIdle ? [`  idle: ${opts.idleConnections} connections; targets: bare node:http, ${opts.portico ? 'portico, ' : ''}${goBin !== undefined ? 'go' : 'no go (skipped, see Notes)'}`] : []),
      `  pinning: ${pinNote}`,
      ...(protoScenarios.length > 0
        ? [
            `  protocols: ${opts.protoConnections} connections × ${opts.inflight} in flight; h2 load: ${opts.h2Tool === 'h2load' ? 'h2load' : 'node:http2 (bench/h2-load.ts)'}; ` +
              `h2 direct: ${nginxBin !== undefined ? 'nginx (ssl http2)' : 'node:http2'}; websocket/gRPC load: node (ws, @grpc/grpc-js), own process`,
          ]
        : []),
      ...(peers !== undefined
        ? [
            `  tcp: bulk load: ${peers.iperf3 !== undefined ? 'iperf3' : 'node (bench/tcp-bulk.ts)'}; connect load: ${opts.tool === 'wrk' ? 'wrk' : 'close-loop'}, Connection: close; ` +
              `peers: haproxy ${peers.haproxy !== undefined ? 'yes' : 'not installed'}, nginx stream ${peers.nginxStream !== undefined ? 'yes' : 'no'}, node pipe yes`,
          ]
        : []),
      ...(wantTunnel
        ? [
            `  tunnel: direct, ssh -R (OpenSSH, aes128-gcm) and Portico (gateway + agent), both tunnel ends on CPU ${CPU_PROXY}; ` +
              `${opts.tunnelDurationS} s per run; bulk: iperf3; rr/connect/http: ${opts.tool}; origin: ${nginxBin !== undefined ? 'nginx' : 'node:http'}`,
          ]
        : []),
      `  scenarios: ${opts.scenarios.join(', ')}${opts.portico ? '' : ' (no Portico)'}${opts.cpuProf ? ' (Portico under --cpu-prof)' : ''}`,
      '  columns: vs direct/vs nginx = rps ratios; proc = CPU used by the target process (the upstream for direct), % of one core;',
      '           cpu0/cpu1 = how busy each core was (incl. kernel network work);',
      `           noise = CPU used by processes outside the bench (~ marks > ${FOREIGN_LIMIT}%: the figure is disturbed); ! marks errors`,
      '',
      '',
    ].join('\n'),
  );

  const upstreamPort = await freePort();
  const upstream = await startUpstream(nginxBin, upstreamPort, CPU_UPSTREAM);

  let peer: Started | undefined;
  if (nginxBin !== undefined && proxyScenarios.length > 0) {
    peer = await startNginxPeer(nginxBin, await freePort(), upstreamPort, CPU_PROXY);
  }
  let goPeer: RunningGoProxy | undefined;
  let goFailure: string | undefined;
  if (goBin !== undefined && proxyScenarios.length > 0) {
    try {
      goPeer = await startGoProxy(goBin, await freePort(), upstreamPort, CPU_PROXY);
      notes.push(...goPeer.warnings);
    } catch (err) {
      goFailure = `failed to start: ${(err as Error).message}`;
      fatal = true;
    }
  }

  // Protocol scenarios: ports of their Portico listeners and upstream servers (started with each
  // scenario), and the h2 scenario's self-signed certificate.
  let protoPorts: ProtocolPorts | undefined;
  let cert: CertFiles | undefined;
  let certFailure: string | undefined;
  if (protoScenarios.length > 0) {
    protoPorts = {};
    if (protoScenarios.includes('h2')) {
      try {
        cert = await makeCert(await makeTempDir('tls'));
        if (cert.madeWith !== 'openssl') notes.push(`h2: openssl not found, the self-signed certificate was made with ${cert.madeWith}`);
        protoPorts.tls = { port: await freePort(), cert: cert.cert, key: cert.key };
      } catch (err) {
        certFailure = `could not make a certificate: ${(err as Error).message}`;
      }
    }
    if (protoScenarios.includes('websocket')) protoPorts.wsUpstreamPort = await freePort();
    if (protoScenarios.includes('grpc-unary') || protoScenarios.includes('grpc-bidi')) protoPorts.grpc = { port: await freePort(), upstreamPort: await freePort() };
  }

  let portico: RunningPortico | undefined;
  let porticoFailure: string | undefined;
  let plainBuild: string | undefined;
  const needPlainPortico = opts.portico && (proxyScenarios.length > 0 || wantAccessLog || wantPolicies || protoScenarios.length > 0);
  if (needPlainPortico) {
    try {
      portico = await startPortico('portico', {
        port: await freePort(),
        adminPort: await freePort(),
        upstreamPort,
        accessLog: false,
        cpuProf: opts.cpuProf,
        cpu: CPU_PROXY,
        main: opts.porticoMain,
        protocols: protoPorts,
      });
      notes.push(...portico.warnings);
      plainBuild = portico.build;
    } catch (err) {
      porticoFailure = `failed to start: ${(err as Error).message}`;
      fatal = true;
      process.stdout.write(`! portico ${porticoFailure}\n\n`);
    }
  }

  /**
   * One target: warm-up, then the measured run with `run` (again when it was noisy, up to --retries
   * times). With `warmupInside`, the load tool warms up itself in the same process before measuring
   * (and may call `onMeasuring` when its measured window opens: the CPU probe restarts then);
   * otherwise a separate warm-up run comes first.
   */
  const measureWith = async (
    target: TargetName,
    url: string,
    run: RunFn,
    alive?: () => string | undefined,
    pid?: number | readonly number[],
    durationS = opts.durationS,
    warmupInside = false,
  ): Promise<Row> => {
    const row: Row = { target, url };
    checkInterrupted();
    const dead = alive?.();
    if (dead !== undefined) {
      row.failure = dead;
      fatal = true;
      return row;
    }
    try {
      if (opts.warmupS > 0 && !warmupInside) await run(opts.warmupS, 0, () => undefined);
      // A run during which other processes took CPU is measured again (up to
      // --retries times); the least disturbed run is kept.
      for (let attempt = 0; attempt <= opts.retries; attempt++) {
        if (attempt > 0) process.stderr.write(`bench: ${target} ${url}: other processes used CPU during the run, measuring again\n`);
        let probe = startNoiseProbe(pid);
        const result = await run(durationS, warmupInside ? opts.warmupS : 0, () => {
          probe = startNoiseProbe(pid);
        });
        const noise = probe.stop();
        if (row.result === undefined || (noise?.foreignPct ?? 0) < (row.noise?.foreignPct ?? 0)) {
          row.result = result;
          row.noise = noise;
        }
        if (!isNoisy(row.noise) || alive?.() !== undefined) break;
      }
      checkInterrupted();
      if (row.result === undefined) throw new Error('no run');
      if (onlyErrors(row.result)) fatal = true;
      const after = alive?.();
      if (after !== undefined) {
        row.failure = after;
        notes.push(`${target} died during the ${url} run: ${after}`);
        fatal = true;
      }
    } catch (err) {
      checkInterrupted();
      row.failure = (err as Error).message;
      fatal = true;
    }
    return row;
  };

  /** An HTTP/1.1 target, loaded with wrk or autocannon. */
  const measure = (
    target: TargetName,
    port: number,
    urlPath: string,
    headers: Record<string, string>,
    alive?: () => string | undefined,
    pid?: number,
    durationS = opts.durationS,
  ): Promise<Row> => {
    const url = `http://127.0.0.1:${port}${urlPath}`;
    return measureWith(target, url, (d) => runLoad(opts.tool, { url, connections: opts.connections, durationS: d, headers, cpu: CPU_LOAD }), alive, pid, durationS);
  };

  const reports: ScenarioReport[] = [];

  for (const scenario of proxyScenarios) {
    const headers: Record<string, string> = scenario === 'close' ? { Connection: 'close' } : {};
    const rows: Row[] = [];
    rows.push(await measure('direct', upstream.port, PATHS[scenario], headers, () => upstream.proc.exitReason(), upstream.proc.pid));
    if (opts.portico) {
      if (portico !== undefined) {
        const p = portico;
        rows.push(await measure('portico', p.port, `/users${PATHS[scenario]}`, headers, () => p.proc.exitReason(), p.proc.pid));
      } else {
        rows.push({ target: 'portico', url: '', failure: porticoFailure ?? 'not started' });
      }
    }
    if (peer !== undefined) {
      const n = peer;
      rows.push(await measure('nginx', n.port, `/users${PATHS[scenario]}`, headers, () => n.proc.exitReason(), n.proc.pid));
    }
    if (goPeer !== undefined) {
      const g = goPeer;
      rows.push(await measure('go', g.port, `/users${PATHS[scenario]}`, headers, () => g.proc.exitReason(), g.proc.pid));
    } else if (goFailure !== undefined) {
      rows.push({ target: 'go', url: '', failure: goFailure });
    }
    reports.push(report({ scenario, description: DESCRIPTIONS[scenario], rows }));
  }

  // Policies: the bare route, the route with jwt-auth + rate-limit, and the route with the rate-limit
  // alone, on the same Portico. Run-to-run variation on a shared 2-core VM is larger than the cost
  // measured (the bare route alone moves by 20% between consecutive runs), so the three are measured
  // in alternation for POLICY_ROUNDS rounds of a third of --duration each, and each ratio is the
  // median of the per-round ratios; the table shows each target's median round.
  if (wantPolicies) {
    const rows: Row[] = [];
    if (portico !== undefined) {
      const p = portico;
      const roundS = Math.max(2, Math.round(opts.durationS / POLICY_ROUNDS));
      // runLoad always sends Host: api.example.com.
      const targets: [TargetName, string, Record<string, string>][] = [
        ['portico', '/users/small', {}],
        ['portico+policies', '/p/users/small', { Authorization: `Bearer ${POLICIES_TOKEN}` }],
        ['portico+ratelimit', '/rl/users/small', {}],
      ];
      const rounds: Row[][] = [];
      for (let round = 0; round < POLICY_ROUNDS; round++) {
        const got: Row[] = [];
        for (const [target, urlPath, headers] of targets) got.push(await measure(target, p.port, urlPath, headers, () => p.proc.exitReason(), p.proc.pid, roundS));
        rounds.push(got);
        if (got.some((r) => r.result === undefined)) break;
      }
      const ok = (r: Row | undefined): number | undefined => (r?.result !== undefined && !onlyErrors(r.result) ? r.result.rps : undefined);
      for (let t = 0; t < targets.length; t++) {
        const byRps = rounds.map((r) => r[t]!).sort((x, y) => (ok(x) ?? -1) - (ok(y) ?? -1));
        const row = { ...byRps[Math.floor(byRps.length / 2)]! };
        if (t > 0) {
          const ratios = rounds.map((r) => [ok(r[0]), ok(r[t])]).filter(([b, x]) => b !== undefined && x !== undefined).map(([b, x]) => x! / b!);
          if (ratios.length > 0) row.vsBare = median(ratios);
        }
        rows.push(row);
      }
      notes.push(`policies: ${rounds.length} alternating rounds of ${roundS} s per target; vs bare is the median of the per-round ratios`);
    } else {
      rows.push({ target: 'portico', url: '', failure: porticoFailure ?? 'not started' });
    }
    const smallDirect = rpsOf(
      reports.find((r) => r.scenario === 'small'),
      'direct',
    );
    for (const row of rows) if (row.result !== undefined && smallDirect !== undefined) row.vsDirect = row.result.rps / smallDirect;
    const rep: ScenarioReport = { scenario: 'policies', description: DESCRIPTIONS.policies, rows };
    reports.push(rep);
    process.stdout.write(renderTable(rep) + '\n\n');
  }

  // Protocol scenarios: each has its own server on CPU 0 (started here, stopped after the
  // scenario) and its own load generator process on CPU 0; Portico (started above with the listeners,
  // upstreams and routes of these scenarios) on CPU 1. Ratios are to the direct connection.
  let loadTmp: string | undefined;
  for (const scenario of protoScenarios) {
    const rows: Row[] = [];
    const servers: Managed[] = [];
    const load =
      (target: string, connections = opts.protoConnections) =>
      (durationS: number, warmupS: number, onMeasuring: () => void): ProtoLoadOptions => ({
        target,
        connections,
        inflight: opts.inflight,
        durationS,
        warmupS,
        onMeasuring,
        cpu: CPU_LOAD,
      });
    // The load tools warm up in the measuring process (its JIT, connections and the target).
    const measureProto = (target: TargetName, url: string, run: RunFn, alive: () => string | undefined, pid: number | undefined): Promise<Row> =>
      measureWith(target, url, run, alive, pid, opts.durationS, true);
    // Portico's row: needs Portico and the scenario's upstream server alive.
    const porticoRow = async (url: string, run: RunFn, server: Managed): Promise<void> => {
      if (!opts.portico) return;
      if (portico === undefined) {
        rows.push({ target: 'portico', url: '', failure: porticoFailure ?? 'not started' });
        return;
      }
      const p = portico;
      rows.push(await measureProto('portico', url, run, () => p.proc.exitReason() ?? server.exitReason(), p.proc.pid));
    };
    try {
      checkInterrupted();
      if (scenario === 'h2') {
        if (cert === undefined || protoPorts?.tls === undefined) throw new Error(certFailure ?? 'no certificate');
        const c = cert;
        loadTmp ??= await makeTempDir('h2load');
        const tmp = loadTmp;
        const h2 =
          (target: string): RunFn =>
          (...a) =>
            runH2(opts.h2Tool, load(target)(...a), tmp);
        const direct = await startH2Direct(nginxBin, await freePort(), c, CPU_UPSTREAM);
        servers.push(direct.proc);
        const directUrl = `https://127.0.0.1:${direct.port}/small`;
        rows.push(await measureProto('direct', directUrl, h2(directUrl), () => direct.proc.exitReason(), direct.proc.pid));
        const porticoUrl = `https://127.0.0.1:${protoPorts.tls.port}/users/small`;
        await porticoRow(porticoUrl, h2(porticoUrl), upstream.proc);
        if (nginxBin !== undefined) {
          // nginx doing the same work over HTTP/2 + TLS: the peer proxy's config with `listen … ssl http2`.
          const peerH2 = await startNginxPeer(nginxBin, await freePort(), upstreamPort, CPU_PROXY, c);
          servers.push(peerH2.proc);
          const url = `https://127.0.0.1:${peerH2.port}/users/small`;
          rows.push(await measureProto('nginx', url, h2(url), () => peerH2.proc.exitReason() ?? upstream.proc.exitReason(), peerH2.proc.pid));
        }
      } else if (scenario === 'websocket') {
        const port = protoPorts?.wsUpstreamPort ?? (await freePort());
        const server = await startWsEcho(port, CPU_UPSTREAM);
        servers.push(server);
        const ws =
          (target: string): RunFn =>
          (...a) =>
            runWs(load(target)(...a));
        const directUrl = `ws://127.0.0.1:${port}/ws`;
        rows.push(await measureProto('direct', directUrl, ws(directUrl), () => server.exitReason(), server.pid));
        const porticoUrl = `ws://127.0.0.1:${portico?.port ?? 0}/ws`;
        await porticoRow(porticoUrl, ws(porticoUrl), server);
      } else {
        const mode = scenario === 'grpc-unary' ? 'unary' : 'bidi';
        const port = protoPorts?.grpc?.upstreamPort ?? (await freePort());
        const server = await startGrpcServer(port, CPU_UPSTREAM);
        servers.push(server);
        // Bidi: a few long-lived streams (one per channel), each with --inflight messages in flight.
        const connections = mode === 'bidi' ? Math.min(4, opts.protoConnections) : opts.protoConnections;
        const grpcRun =
          (target: string): RunFn =>
          (...a) =>
            runGrpc(mode, load(target, connections)(...a));
        const directTarget = `127.0.0.1:${port}`;
        rows.push(await measureProto('direct', directTarget, grpcRun(directTarget), () => server.exitReason(), server.pid));
        const porticoTarget = `127.0.0.1:${protoPorts?.grpc?.port ?? 0}`;
        await porticoRow(porticoTarget, grpcRun(porticoTarget), server);
      }
    } catch (err) {
      if (err instanceof Interrupted) throw err;
      fatal = true;
      const failure = `could not run: ${(err as Error).message}`;
      if (rows.length === 0) rows.push({ target: 'direct', url: '', failure });
      else notes.push(`${scenario}: ${failure}`);
    } finally {
      for (const srv of servers.reverse()) await srv.stop(5_000);
    }
    reports.push(report({ scenario, description: DESCRIPTIONS[scenario], unit: UNITS[scenario], rows }));
  }

  // TCP scenarios: each proxy (a Portico with one tcp listener, HAProxy, nginx stream, the Node pipe)
  // is started on CPU 1 for its run and stopped after it; servers and load on CPU 0 (tcp.ts).
  for (const scenario of tcpScenarios) {
    checkInterrupted();
    let rows: Row[] = [];
    try {
      rows = await runTcpScenario<Row>(scenario, {
        connections: opts.connections,
        tool: opts.tool,
        cpuProf: opts.cpuProf,
        porticoMain: opts.porticoMain,
        portico: opts.portico,
        nginxBin,
        upstream: { port: upstream.port, proc: upstream.proc },
        cpuLoad: CPU_LOAD,
        cpuUpstream: CPU_UPSTREAM,
        cpuProxy: CPU_PROXY,
        notes,
        measure: (target, url, run, alive, pid, warmupInside) => measureWith(target, url, run, alive, pid, opts.durationS, warmupInside),
        failed: (target, failure) => {
          fatal = true;
          return { target, url: '', failure };
        },
        checkInterrupted,
      });
    } catch (err) {
      if (err instanceof Interrupted) throw err;
      fatal = true;
      rows.push({ target: 'direct', url: '', failure: `could not run: ${(err as Error).message}` });
    }
    reports.push(report({ scenario, description: DESCRIPTIONS[scenario], unit: TCP_UNITS[scenario], peer: 'haproxy', rows }));
  }

  // Tunnel scenario: direct, ssh -R and Portico's tunnel, each tunnel alone on CPU 1 (both ends),
  // load generators and origins on CPU 0 (tunnel.ts). One table per measure, then the memory table.
  let tunnelMemory: MemoryRow[] = [];
  if (wantTunnel) {
    checkInterrupted();
    const labels: Partial<Record<TargetName, string>> = { 'ssh-r': 'ssh -R' };
    try {
      const res = await runTunnelScenario<Row>({
        durationS: opts.tunnelDurationS,
        connections: opts.connections,
        tool: opts.tool,
        cpuProf: opts.cpuProf,
        porticoMain: opts.porticoMain,
        portico: opts.portico,
        upstream: { port: upstream.port, proc: upstream.proc },
        cpuLoad: CPU_LOAD,
        cpuUpstream: CPU_UPSTREAM,
        cpuProxy: CPU_PROXY,
        notes,
        measure: async (target, url, run, alive, pids, warmupInside) => ({
          ...(await measureWith(target, url, run, alive, pids, opts.tunnelDurationS, warmupInside)),
          ...(labels[target] !== undefined ? { label: labels[target] } : {}),
        }),
        failed: (target, failure) => {
          fatal = true;
          return { target, url: '', failure, ...(labels[target] !== undefined ? { label: labels[target] } : {}) };
        },
        rateOf: (row) => (row.result === undefined || onlyErrors(row.result) ? undefined : row.result.rps),
        checkInterrupted,
      });
      for (const { part, rows } of res.parts) {
        if (part === 'tunnel-http') {
          const tunnelled = rows.find((r) => r.target === 'portico-tunnel');
          if (tunnelled !== undefined && res.httpVsPlain !== undefined) tunnelled.vsPeer = res.httpVsPlain;
        }
        if (part === 'tunnel-long-link') {
          const plain = rows.find((r) => r.target === 'direct');
          if (plain !== undefined) plain.label = 'plain (relay)';
        }
        reports.push(report({ scenario: part, description: TUNNEL_DESCRIPTIONS[part], unit: TUNNEL_UNITS[part], peer: part === 'tunnel-http' ? 'portico' : 'ssh-r', perCore: part !== 'tunnel-long-link', rows }));
      }
      tunnelMemory = res.memory;
      if (tunnelMemory.some((m) => m.failure !== undefined)) fatal = true;
      process.stdout.write(renderMemory(tunnelMemory) + '\n\n');
    } catch (err) {
      if (err instanceof Interrupted) throw err;
      fatal = true;
      notes.push(`tunnel: could not run: ${(err as Error).message}`);
    }
  }

  if (wantAccessLog) {
    const rows: Row[] = [];
    const smallRep = reports.find((r) => r.scenario === 'small');
    let baseline = smallRep?.rows.find((r) => r.target === 'portico');
    if (baseline === undefined && portico !== undefined) {
      const p = portico;
      baseline = await measure('portico', p.port, '/users/small', {}, () => p.proc.exitReason(), p.proc.pid);
    } else if (baseline === undefined) {
      baseline = { target: 'portico', url: '', failure: porticoFailure ?? 'not started' };
    }
    rows.push(baseline);
    // Only one Portico on CPU 1 at a time.
    if (portico !== undefined) {
      notes.push(...(await portico.stop()));
      portico = undefined;
    }
    let logged: RunningPortico | undefined;
    try {
      logged = await startPortico('portico+accesslog', {
        port: await freePort(),
        adminPort: await freePort(),
        upstreamPort,
        accessLog: true,
        cpuProf: opts.cpuProf,
        cpu: CPU_PROXY,
        main: opts.porticoMain,
      });
      notes.push(...logged.warnings);
      if (plainBuild !== undefined && logged.build !== plainBuild) {
        notes.push(
          `dist/ was rebuilt between the two Portico starts (${plainBuild} -> ${logged.build}): the access-log ratio compares two different builds`,
        );
      }
      const l = logged;
      rows.push(await measure('portico+accesslog', l.port, '/users/small', {}, () => l.proc.exitReason(), l.proc.pid));
    } catch (err) {
      fatal = true;
      rows.push({ target: 'portico+accesslog', url: '', failure: `failed to start: ${(err as Error).message}` });
    } finally {
      if (logged !== undefined) notes.push(...(await logged.stop()));
    }
    const direct = rpsOf(smallRep, 'direct');
    const base = baseline.result !== undefined && !onlyErrors(baseline.result) ? baseline.result.rps : undefined;
    for (const row of rows) {
      if (row.result === undefined) continue;
      if (direct !== undefined) row.vsDirect = row.result.rps / direct;
      if (row.target === 'portico+accesslog' && base !== undefined) row.vsNoLog = row.result.rps / base;
    }
    const rep: ScenarioReport = { scenario: 'small-accesslog', description: DESCRIPTIONS['small-accesslog'], rows };
    reports.push(rep);
    process.stdout.write(renderTable(rep) + '\n\n');
  }

  if (portico !== undefined) {
    notes.push(...(await portico.stop()));
    portico = undefined;
  }

  // Idle: memory per idle keep-alive connection of a bare node:http server, a fresh Portico and a
  // fresh go proxy, one at a time on CPU 1, the client on CPU 0 (idle.ts). After the other HTTP
  // scenarios, so the plain Portico is stopped and each target starts with nothing retained.
  let idleRows: IdleRow[] = [];
  let idleConnections: number | undefined;
  if (wantIdle) {
    checkInterrupted();
    const count = idleCount(opts.idleConnections, notes);
    idleConnections = count;
    const targets: [IdleTargetName, () => Promise<IdleServer>][] = [['bare', async () => startBareServer(await freePort(), CPU_PROXY)]];
    if (opts.portico) {
      targets.push([
        'portico',
        async () => {
          // The same config as the other scenarios; the listener keeps idle connections for 120 s,
          // longer than the measure, whatever the gateway's default. No --cpu-prof: it costs memory.
          const p = await startPortico('portico (idle)', {
            port: await freePort(),
            adminPort: await freePort(),
            upstreamPort,
            accessLog: false,
            cpuProf: false,
            cpu: CPU_PROXY,
            main: opts.porticoMain,
            keepAliveS: 120,
          });
          notes.push(...p.warnings);
          return { pid: p.proc.pid ?? 0, port: p.port, path: '/users/small', host: 'api.example.com', alive: () => p.proc.exitReason(), stop: () => p.stop() };
        },
      ]);
    }
    if (goBin !== undefined) {
      const bin = goBin;
      targets.push([
        'go',
        async () => {
          const g = await startGoProxy(bin, await freePort(), upstreamPort, CPU_PROXY);
          notes.push(...g.warnings);
          return {
            pid: g.proc.pid ?? 0,
            port: g.port,
            path: '/users/small',
            host: 'api.example.com',
            alive: () => g.proc.exitReason(),
            stop: async () => {
              await g.proc.stop(5_000);
              return [];
            },
          };
        },
      ]);
    }
    idleRows = await runIdleScenario(targets, { count, cpuLoad: CPU_LOAD, notes, checkInterrupted });
    if (idleRows.some((r) => r.failure !== undefined)) fatal = true;
    process.stdout.write(renderIdle(idleRows, count) + '\n\n');
  }

  checkInterrupted();
  // Summary: the lines below are quoted by notes elsewhere; keep their wording.
  const ratio = (s: ProxyScenario): number | undefined => reports.find((r) => r.scenario === s)?.rows.find((x) => x.target === 'portico')?.vsNginx;
  const goRow = (s: ProxyScenario): Row | undefined => reports.find((r) => r.scenario === s)?.rows.find((x) => x.target === 'portico');
  const idleOf = (t: IdleTargetName): number | undefined => {
    const r = idleRows.find((x) => x.target === t && x.failure === undefined);
    return r === undefined ? undefined : r.perConnBytes;
  };
  const accessRatio = reports.find((r) => r.scenario === 'small-accesslog')?.rows.find((x) => x.target === 'portico+accesslog')?.vsNoLog;
  const policiesRatio = reports.find((r) => r.scenario === 'policies')?.rows.find((x) => x.target === 'portico+policies')?.vsBare;
  const rateLimitRatio = reports.find((r) => r.scenario === 'policies')?.rows.find((x) => x.target === 'portico+ratelimit')?.vsBare;
  const protoRow = (s: ProtoScenario): Row | undefined => reports.find((r) => r.scenario === s)?.rows.find((x) => x.target === 'portico');
  const tcpRow = (s: TcpScenario): Row | undefined => reports.find((r) => r.scenario === s)?.rows.find((x) => x.target === 'portico');
  const summary = {
    porticoNginxSmall: ratio('small'),
    porticoNginxLarge: ratio('large'),
    porticoNginxClose: ratio('close'),
    porticoGoSmall: goRow('small')?.vsGo,
    porticoGoLarge: goRow('large')?.vsGo,
    porticoGoClose: goRow('close')?.vsGo,
    porticoGoSmallP99: goRow('small')?.p99VsGo,
    porticoGoLargeP99: goRow('large')?.p99VsGo,
    idleBytesPerConnection: { bare: idleOf('bare'), portico: idleOf('portico'), go: idleOf('go'), connections: idleConnections },
    porticoBareIdle: idleRows.find((x) => x.target === 'portico')?.vsBare,
    porticoGoIdle: ((p, g) => (p !== undefined && g !== undefined && g > 0 ? p / g : undefined))(idleOf('portico'), idleOf('go')),
    accessLogCost: accessRatio,
    policiesCost: policiesRatio,
    rateLimitCost: rateLimitRatio,
    porticoDirectH2: protoRow('h2')?.vsDirect,
    porticoNginxH2: protoRow('h2')?.vsNginx,
    porticoDirectWebsocket: protoRow('websocket')?.vsDirect,
    porticoDirectGrpcUnary: protoRow('grpc-unary')?.vsDirect,
    porticoDirectGrpcBidi: protoRow('grpc-bidi')?.vsDirect,
    porticoHaproxyTcpBulk: tcpRow('tcp-bulk')?.vsHaproxy,
    porticoDirectTcpBulk: tcpRow('tcp-bulk')?.vsDirect,
    porticoPipeTcpBulk: tcpRow('tcp-bulk')?.vsPipe,
    porticoHaproxyTcpConnect: tcpRow('tcp-connect')?.vsHaproxy,
    porticoDirectTcpConnect: tcpRow('tcp-connect')?.vsDirect,
    porticoPipeTcpConnect: tcpRow('tcp-connect')?.vsPipe,
    porticoHaproxyPerCoreTcpBulk: tcpRow('tcp-bulk')?.perCoreVsHaproxy,
    porticoHaproxyPerCoreTcpConnect: tcpRow('tcp-connect')?.perCoreVsHaproxy,
    ...tunnelSummary(reports, tunnelMemory),
  };
  /** name, figure, target, whether the figure must stay at or below the target (else at or above), scenario judged noisy on (default: the name). */
  const targets: [string, number | undefined, number, ('max' | 'min')?, string?][] = [
    ['small', summary.porticoNginxSmall, 0.25],
    ['large', summary.porticoNginxLarge, 0.5],
    ['close', summary.porticoNginxClose, 0.75],
    ['go-small', summary.porticoGoSmall, GO_TARGETS.small, 'min', 'small'],
    ['go-small-p99', summary.porticoGoSmallP99, GO_TARGETS.smallP99, 'max', 'small'],
    ['go-large', summary.porticoGoLarge, GO_TARGETS.large, 'min', 'large'],
    ['go-large-p99', summary.porticoGoLargeP99, GO_TARGETS.largeP99, 'max', 'large'],
    ['go-close', summary.porticoGoClose, GO_TARGETS.close, 'min', 'close'],
    ['policies', summary.policiesCost, 0.85],
    ['idle', summary.porticoBareIdle, IDLE_TARGET, 'max'],
    ['h2', summary.porticoDirectH2, H2_TARGET],
    ['grpc-unary', summary.porticoDirectGrpcUnary, GRPC_UNARY_TARGET],
    ['tcp-bulk', summary.porticoHaproxyTcpBulk, TCP_TARGETS['tcp-bulk']],
    ['tcp-connect', summary.porticoHaproxyTcpConnect, TCP_TARGETS['tcp-connect']],
    ['tunnel-http', summary.tunnelHttpVsPlain, TUNNEL_TARGETS.httpVsPlain],
    ['tunnel-long-link', summary.tunnelLongLinkVsPlain, TUNNEL_TARGETS.longLinkVsPlain],
    ['tunnel-memory', summary.tunnelMaxBytesPerStream, TUNNEL_TARGETS.bytesPerStream],
  ];
  const summaryLines = [
    `portico/nginx small: ${fmtNum(summary.porticoNginxSmall, 2)} (target >= 0.25, stretch 0.35)`,
    `portico/nginx large: ${fmtNum(summary.porticoNginxLarge, 2)} (target >= 0.5)`,
    `portico/nginx close: ${fmtNum(summary.porticoNginxClose, 2)} (target >= 0.75)`,
    `portico/go small: ${fmtNum(summary.porticoGoSmall, 2)} (target >= ${GO_TARGETS.small})`,
    `portico/go large: ${fmtNum(summary.porticoGoLarge, 2)} (target >= ${GO_TARGETS.large.toFixed(1)}; p99 portico/go: ${fmtNum(summary.porticoGoLargeP99, 2)}, target <= ${GO_TARGETS.largeP99})`,
    `portico/go close: ${fmtNum(summary.porticoGoClose, 2)} (target >= ${GO_TARGETS.close})`,
    `portico/go small p99: ${fmtNum(summary.porticoGoSmallP99, 2)} (target <= ${GO_TARGETS.smallP99.toFixed(1)})`,
    `portico/bare idle bytes per connection: ${fmtNum(summary.porticoBareIdle, 2)} (target <= ${IDLE_TARGET}; bytes per connection: portico ${fmtBytes(summary.idleBytesPerConnection.portico)}, bare ${fmtBytes(summary.idleBytesPerConnection.bare)}, go ${fmtBytes(summary.idleBytesPerConnection.go)}; ${idleConnections ?? 'n/a'} connections)`,
    `accesslog cost: portico small with log / without: ${fmtNum(summary.accessLogCost, 2)}`,
    `policies cost: rate-limit+auth route / bare route: ${fmtNum(summary.policiesCost, 2)} (target >= 0.85)`,
    `rate-limit cost: rate-limit route / bare route: ${fmtNum(summary.rateLimitCost, 2)}`,
    `portico/direct h2: ${fmtNum(summary.porticoDirectH2, 2)} (target >= ${H2_TARGET}; portico/nginx h2: ${fmtNum(summary.porticoNginxH2, 2)})`,
    `portico/direct websocket: ${fmtNum(summary.porticoDirectWebsocket, 2)}`,
    `portico/direct grpc-unary: ${fmtNum(summary.porticoDirectGrpcUnary, 2)} (target >= ${GRPC_UNARY_TARGET})`,
    `portico/direct grpc-bidi: ${fmtNum(summary.porticoDirectGrpcBidi, 2)}`,
    `portico/haproxy tcp-bulk: ${fmtNum(summary.porticoHaproxyTcpBulk, 2)} (target >= ${TCP_TARGETS['tcp-bulk']}; portico/direct: ${fmtNum(summary.porticoDirectTcpBulk, 2)}, portico/node pipe: ${fmtNum(summary.porticoPipeTcpBulk, 2)}; per core of CPU: ${fmtNum(summary.porticoHaproxyPerCoreTcpBulk, 2)})`,
    `portico/haproxy tcp-connect: ${fmtNum(summary.porticoHaproxyTcpConnect, 2)} (target >= ${TCP_TARGETS['tcp-connect']}; portico/direct: ${fmtNum(summary.porticoDirectTcpConnect, 2)}, portico/node pipe: ${fmtNum(summary.porticoPipeTcpConnect, 2)}; per core of CPU: ${fmtNum(summary.porticoHaproxyPerCoreTcpConnect, 2)})`,
  ];
  if (wantTunnel) summaryLines.push(...tunnelSummaryLines(summary));
  const ratioNoisy = (s: string, name: string): boolean =>
    (reports.find((r) => r.scenario === s)?.rows ?? []).some(
      (r) =>
        (r.target === 'portico' ||
          (r.target === 'nginx' && !name.startsWith('go-')) ||
          (r.target === 'go' && name.startsWith('go-')) ||
          r.target === 'haproxy' ||
          r.target === 'portico+policies' ||
          r.target === 'portico-tunnel' ||
          (r.target === 'direct' && (isProto(s as Scenario) || s === 'tunnel-long-link'))) &&
        isNoisy(r.noise),
    );
  const verdicts = targets
    .filter(([, v]) => v !== undefined)
    // Judged on the printed (2-decimal) figure, so the verdict agrees with the line above it.
    .map(([name, v, t, dir = 'min', scenario = name]) => {
      const verdict = (x: number): string => ((dir === 'min' ? Number(x.toFixed(2)) >= t : Number(x.toFixed(2)) <= t) ? 'met' : 'MISSED');
      // TCP: also judged per core of CPU, the figure that holds when the load generator is the limit.
      const perCore = name === 'tcp-bulk' ? summary.porticoHaproxyPerCoreTcpBulk : name === 'tcp-connect' ? summary.porticoHaproxyPerCoreTcpConnect : undefined;
      if (name === 'tunnel-memory') return `${name} ${(v ?? Infinity) <= t ? 'met' : 'MISSED'}`;
      return `${name} ${verdict(v ?? 0)}${perCore !== undefined ? ` (per core: ${verdict(perCore)})` : ''}${ratioNoisy(scenario, name) ? ' (noisy)' : ''}`;
    });
  const errored = reports.flatMap((rep) => rep.rows.filter((r) => r.result === undefined || r.result.errors > 0).map((r) => `${rep.scenario}/${r.target}`));
  const noisy = reports.flatMap((rep) => rep.rows.filter((r) => isNoisy(r.noise)).map((r) => `${rep.scenario}/${r.target}`));

  process.stdout.write('Summary\n' + summaryLines.join('\n') + '\n');
  if (verdicts.length > 0) process.stdout.write(`targets: ${verdicts.join(', ')}\n`);
  if (errored.length > 0) process.stdout.write(`runs with errors or failures (figures not trustworthy): ${errored.join(', ')}\n`);
  if (noisy.length > 0) {
    process.stdout.write(
      `noisy runs (other processes took > ${FOREIGN_LIMIT}% of a core, or steal > ${STEAL_LIMIT}%; re-run on a quiet machine): ${noisy.join(', ')}\n`,
    );
  }
  if (notes.length > 0) process.stdout.write('\nNotes\n' + notes.map((n) => `  - ${n.replace(/\n/g, '\n    ')}`).join('\n') + '\n');

  const resultsPath = path.join(REPO_ROOT, '.bench', 'results.json');
  await mkdir(path.dirname(resultsPath), { recursive: true });
  const json = {
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, node: process.version, platform: `${os.type()} ${os.release()}` },
    options: {
      durationS: opts.durationS,
      warmupS: opts.warmupS,
      connections: opts.connections,
      loadTool: opts.tool,
      upstream: upstream.kind,
      nginx: nginxBin !== undefined ? nginxVersionString(nginxBin) : null,
      pinning: canPin() ? { load: CPU_LOAD, upstream: CPU_UPSTREAM, proxy: CPU_PROXY } : null,
      cpuProf: opts.cpuProf,
      portico: opts.portico,
      retries: opts.retries,
      porticoBuild: plainBuild ?? null,
      protoConnections: opts.protoConnections,
      inflight: opts.inflight,
      h2Load: opts.h2Tool,
      go: goBuild === undefined ? null : goBuild.ok ? { version: goBuild.version, gomaxprocs: 1 } : { skipped: goBuild.reason },
      idleConnections: wantIdle ? (idleConnections ?? null) : null,
      tcpPeers: peers !== undefined ? { bulkLoad: peers.iperf3 !== undefined ? 'iperf3' : 'node', haproxy: peers.haproxy !== undefined, nginxStream: peers.nginxStream !== undefined } : null,
      certificate: cert?.madeWith ?? null,
    },
    scenarios: Object.fromEntries(
      reports.map((rep) => [
        rep.scenario,
        {
          description: rep.description,
          unit: rep.unit ?? 'rps',
          rows: rep.rows.map((r) => ({
            target: r.target,
            url: r.url,
            ...(r.result !== undefined
              ? {
                  rps: r.result.rps,
                  p50Ms: r.result.p50Ms,
                  p99Ms: r.result.p99Ms,
                  requests: r.result.requests,
                  errors: r.result.errors,
                  non2xx: r.result.non2xx,
                  socketErrors: r.result.socketErrors,
                  onlyErrors: onlyErrors(r.result),
                }
              : {}),
            ...(r.failure !== undefined ? { failure: r.failure } : {}),
            ...(r.noise !== undefined ? { noise: { ...r.noise, noisy: isNoisy(r.noise) } } : {}),
            vsDirect: r.target === 'direct' && r.result !== undefined ? 1 : (r.vsDirect ?? null),
            ...(r.target === 'portico' && !isTcp(rep.scenario) && !rep.scenario.startsWith('tunnel') ? { vsNginx: r.vsNginx ?? null } : {}),
            ...(r.target === 'portico' && r.vsGo !== undefined ? { vsGo: r.vsGo, p99VsGo: r.p99VsGo ?? null } : {}),
            ...(r.target === 'portico' && isTcp(rep.scenario) ? { vsHaproxy: r.vsHaproxy ?? null, vsNodePipe: r.vsPipe ?? null, perCoreVsHaproxy: r.perCoreVsHaproxy ?? null } : {}),
            ...(r.perCore !== undefined ? { perCore: r.perCore } : {}),
            ...(r.result?.bytes !== undefined ? { bytes: r.result.bytes } : {}),
            ...(r.result !== undefined ? { tool: r.result.tool } : {}),
            ...(r.target === 'portico+accesslog' ? { vsNoLog: r.vsNoLog ?? null } : {}),
            ...(r.vsPeer !== undefined ? { vsPeer: r.vsPeer } : {}),
            ...(r.target === 'portico+policies' || r.target === 'portico+ratelimit' ? { vsBare: r.vsBare ?? null } : {}),
          })),
        },
      ]),
    ),
    summary: {
      ...summary,
      lines: summaryLines,
      targets: {
        small: 0.25,
        smallStretch: 0.35,
        large: 0.5,
        close: 0.75,
        goSmall: GO_TARGETS.small,
        goSmallP99: GO_TARGETS.smallP99,
        goLarge: GO_TARGETS.large,
        goLargeP99: GO_TARGETS.largeP99,
        goClose: GO_TARGETS.close,
        idlePorticoBare: IDLE_TARGET,
        h2: H2_TARGET,
        policies: 0.85,
        grpcUnary: GRPC_UNARY_TARGET,
        tcpBulk: TCP_TARGETS['tcp-bulk'],
        tcpConnect: TCP_TARGETS['tcp-connect'],
        tunnelHttp: TUNNEL_TARGETS.httpVsPlain,
        tunnelLongLink: TUNNEL_TARGETS.longLinkVsPlain,
        tunnelBytesPerStream: TUNNEL_TARGETS.bytesPerStream,
      },
    },
    ...(wantTunnel ? { tunnelMemory } : {}),
    ...(wantIdle ? { idle: { connections: idleConnections ?? null, rows: idleRows } } : {}),
    noisyRuns: noisy,
    notes,
    ok: !fatal,
  };
  await writeFile(resultsPath, JSON.stringify(json, (_k, v: unknown) => (v === undefined ? null : v), 2) + '\n');
  process.stdout.write(`\nresults: ${path.relative(process.cwd(), resultsPath) || resultsPath}\n`);

  return fatal ? 1 : 0;
}

let interrupted = false;
class Interrupted extends Error {}
/** After SIGINT/SIGTERM the runs stop: no more tables, no results file. */
function checkInterrupted(): void {
  if (interrupted) throw new Interrupted('interrupted');
}
const onSignal = (sig: NodeJS.Signals): void => {
  if (interrupted) return;
  interrupted = true;
  process.stderr.write(`\nbench: ${sig}, stopping everything\n`);
  void cleanup().finally(() => process.exit(130));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
process.on('exit', killAllNow);

let code = 1;
try {
  code = await main();
} catch (err) {
  if (!interrupted) process.stderr.write(`bench: ${(err as Error).message}\n`);
  code = interrupted ? 130 : 1;
} finally {
  await cleanup();
}
process.exit(code);
