/**
 * Load generation: wrk when installed (a separate process, pinned to CPU 0),
 * otherwise autocannon in-process. Both give requests/sec, p50/p99 latency
 * in ms, and error counts.
 */
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { Managed, hasBinary, pinned } from './util.js';

export type LoadTool = 'wrk' | 'autocannon';

export interface LoadOptions {
  url: string;
  connections: number;
  durationS: number;
  /** Extra request headers; Host is always api.example.com. */
  headers?: Record<string, string>;
  /** CPU to pin the load generator to. */
  cpu?: number;
}

export interface LoadResult {
  /** wrk, autocannon, or close-loop (the in-process Connection: close client used instead of autocannon); the protocol scenarios' tools (protocols.ts). */
  tool: LoadTool | 'close-loop' | 'h2load' | 'h2-load' | 'ws-load' | 'grpc-load';
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Responses received (any status). */
  requests: number;
  /** Responses that were not 2xx/3xx. */
  non2xx: number;
  /** Connect/read/write errors and timeouts. */
  socketErrors: number;
  /** non2xx + socketErrors. */
  errors: number;
  /** Detail of socketErrors, for the report. */
  errorDetail: string;
}

export function defaultTool(): LoadTool {
  return hasBinary('wrk') ? 'wrk' : 'autocannon';
}

const HOST = 'api.example.com';

/** Convert a wrk duration ("213.00us", "1.23ms", "2.00s", "1.00m") to ms. */
export function wrkTimeToMs(value: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(value.trim());
  if (m === null) throw new Error(`cannot parse wrk time '${value}'`);
  const n = Number(m[1]);
  switch (m[2]) {
    case 'us':
      return n / 1000;
    case 'ms':
      return n;
    case 's':
      return n * 1000;
    case 'm':
      return n * 60_000;
    default:
      return n * 3_600_000;
  }
}

/** Parse wrk --latency output. Throws when Requests/sec is missing (wrk failed). */
export function parseWrk(out: string): Omit<LoadResult, 'tool'> {
  const rpsM = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
  if (rpsM === null) throw new Error(`wrk output has no Requests/sec line:\n${out}`);
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out);
    return m === null ? Number.NaN : wrkTimeToMs(m[1] ?? '');
  };
  const reqM = /^\s+(\d+) requests in /m.exec(out);
  const non2xxM = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  const sockM = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const [connect, read, write, timeout] = sockM === null ? [0, 0, 0, 0] : sockM.slice(1, 5).map(Number);
  const socketErrors = (connect ?? 0) + (read ?? 0) + (write ?? 0) + (timeout ?? 0);
  const non2xx = non2xxM === null ? 0 : Number(non2xxM[1]);
  return {
    rps: Number(rpsM[1]),
    p50Ms: pct('50'),
    p99Ms: pct('99'),
    requests: reqM === null ? 0 : Number(reqM[1]),
    non2xx,
    socketErrors,
    errors: non2xx + socketErrors,
    errorDetail:
      sockM === null && non2xx === 0
        ? ''
        : [non2xx ? `non-2xx/3xx ${non2xx}` : '', sockM ? `socket: connect ${connect}, read ${read}, write ${write}, timeout ${timeout}` : '']
            .filter(Boolean)
            .join('; '),
  };
}

async function runWrk(opts: LoadOptions): Promise<LoadResult> {
  const headerArgs = Object.entries({ Host: HOST, ...opts.headers }).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  const duration = Math.max(1, Math.round(opts.durationS));
  const [cmd, args] = pinned(opts.cpu, 'wrk', ['-t1', `-c${opts.connections}`, `-d${duration}s`, '--latency', ...headerArgs, opts.url]);
  const proc = new Managed('wrk', cmd, args);
  await proc.wait();
  await proc.stop();
  const out = proc.output.toString();
  if (proc.exitCode !== 0) throw new Error(`wrk failed (${proc.exitReason() ?? 'unknown'})`);
  return { tool: 'wrk', ...parseWrk(out) };
}

let pinnedSelf = false;

/** In-process load runs in this process: pin the whole runner (all threads) once. */
function pinSelf(cpu: number | undefined): void {
  if (!pinnedSelf && cpu !== undefined && hasBinary('taskset')) {
    spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], { stdio: 'ignore' });
    pinnedSelf = true;
  }
}

const isConnectionClose = (h: Record<string, string> | undefined): boolean =>
  Object.entries(h ?? {}).some(([k, v]) => k.toLowerCase() === 'connection' && v.toLowerCase() === 'close');

async function runAutocannon(opts: LoadOptions): Promise<LoadResult> {
  pinSelf(opts.cpu);
  // autocannon keeps writing on a connection the server is closing, so its
  // Connection: close figures are wrong; use a plain connect-per-request loop.
  if (isConnectionClose(opts.headers)) return runCloseLoop(opts);
  const r = await autocannon({
    url: opts.url,
    connections: opts.connections,
    duration: Math.max(1, opts.durationS),
    headers: { host: HOST, ...lowerKeys(opts.headers ?? {}) },
  });
  const socketErrors = r.errors + r.timeouts;
  return {
    tool: 'autocannon',
    rps: r.requests.average,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    requests: r.requests.total,
    non2xx: r.non2xx,
    socketErrors,
    errors: r.non2xx + socketErrors,
    errorDetail: r.non2xx || socketErrors ? `non-2xx ${r.non2xx}; errors ${r.errors}, timeouts ${r.timeouts}` : '',
  };
}

/**
 * Closed-loop Connection: close client: `connections` workers, each connects,
 * sends one request, reads the whole response (Content-Length or EOF),
 * closes, and starts again until the deadline. Latency is connect-to-last-byte.
 */
async function runCloseLoop(opts: LoadOptions): Promise<LoadResult> {
  const u = new URL(opts.url);
  const port = Number(u.port || 80);
  const extra = Object.entries(opts.headers ?? {})
    .filter(([k]) => !['host', 'connection'].includes(k.toLowerCase()))
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  const request = Buffer.from(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${HOST}\r\n${extra}Connection: close\r\n\r\n`, 'latin1');
  const latencies: number[] = [];
  let non2xx = 0;
  let errors = 0;
  let timeouts = 0;
  const start = performance.now();
  const deadline = start + opts.durationS * 1000;

  const once = (): Promise<void> =>
    new Promise((resolve) => {
      const t0 = performance.now();
      const sock = net.connect(port, u.hostname);
      let head = Buffer.alloc(0);
      let status = 0;
      let bodyLeft = -1; // -1: headers not parsed yet; Infinity: read to EOF
      let done = false;
      let timedOut = false;
      const finish = (complete: boolean): void => {
        if (done) return;
        done = true;
        if (complete) {
          latencies.push(performance.now() - t0);
          if (status < 200 || status >= 400) non2xx++;
        } else if (timedOut) timeouts++;
        else errors++;
        sock.destroy();
        resolve();
      };
      sock.setTimeout(10_000);
      sock.on('connect', () => sock.write(request));
      sock.on('data', (chunk: Buffer) => {
        if (bodyLeft < 0) {
          head = Buffer.concat([head, chunk]);
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          const text = head.subarray(0, end).toString('latin1');
          status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
          const cl = /\r\ncontent-length:\s*(\d+)/i.exec(text);
          bodyLeft = cl !== null ? Number(cl[1]) : Number.POSITIVE_INFINITY;
          bodyLeft -= head.length - end - 4;
        } else {
          bodyLeft -= chunk.length;
        }
        if (bodyLeft <= 0) finish(true);
      });
      sock.on('end', () => finish(status > 0 && bodyLeft === Number.POSITIVE_INFINITY));
      sock.on('timeout', () => {
        timedOut = true;
        finish(false);
      });
      sock.on('error', () => finish(false));
      sock.on('close', () => finish(false));
    });

  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) await once();
  };
  await Promise.all(Array.from({ length: opts.connections }, worker));
  const elapsedS = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number): number => (latencies.length === 0 ? Number.NaN : (latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? Number.NaN));
  const socketErrors = errors + timeouts;
  return {
    tool: 'close-loop',
    rps: latencies.length / elapsedS,
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
    requests: latencies.length,
    non2xx,
    socketErrors,
    errors: non2xx + socketErrors,
    errorDetail: non2xx || socketErrors ? `non-2xx ${non2xx}; errors ${errors}, timeouts ${timeouts}` : '',
  };
}

function lowerKeys(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
}

export function runLoad(tool: LoadTool, opts: LoadOptions): Promise<LoadResult> {
  return tool === 'wrk' ? runWrk(opts) : runAutocannon(opts);
}
