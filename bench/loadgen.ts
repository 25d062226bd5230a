/**
 * Shared parts of the bench's protocol load generators (h2-load.ts,
 * ws-load.ts, grpc-load.ts). Each generator is its own process, started
 * (and pinned to the load CPU) by the runner; it connects, runs for the
 * measured duration, and prints one JSON line, a `LoadReport`, on stdout.
 */
import { performance } from 'node:perf_hooks';

/** What a load generator process prints (one JSON line on stdout). */
export interface LoadReport {
  /** Completed operations during the measured window: 2xx responses, echoed messages, OK calls. */
  ops: number;
  elapsedS: number;
  /** ops / elapsedS. */
  rate: number;
  p50Ms: number;
  p99Ms: number;
  /** Completed operations that failed at the protocol level (non-2xx status, non-OK gRPC status). */
  failed: number;
  /** Connection or stream errors (resets, closes, connect failures). */
  socketErrors: number;
  /** The most frequent error messages, with counts. */
  errorDetail: string;
}

/** Latencies in ms, in a growable Float64Array (a million samples is 8 MB). */
export class Recorder {
  private buf = new Float64Array(1 << 16);
  count = 0;

  record(ms: number): void {
    if (this.count === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.count++] = ms;
  }

  /** Percentiles (0..1) of what was recorded; NaN when nothing was. */
  percentiles(...ps: number[]): number[] {
    if (this.count === 0) return ps.map(() => Number.NaN);
    const sorted = this.buf.subarray(0, this.count).sort();
    return ps.map((p) => sorted[Math.min(this.count - 1, Math.floor(p * this.count))] ?? Number.NaN);
  }
}

/** Counts error messages by kind, for the report. */
export class ErrorTally {
  private readonly counts = new Map<string, number>();
  total = 0;

  add(what: string): void {
    this.total++;
    const key = what.length > 120 ? what.slice(0, 120) + '…' : what;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  detail(): string {
    return [...this.counts]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 4)
      .map(([k, n]) => `${n} × ${k}`)
      .join('; ');
  }
}

/**
 * Warm-up, then the measured window. Operations run from the start (the
 * warm-up warms this process's JIT, the connections and the target) and
 * keep running until the window closes; only completions inside the
 * measured window count (`measuring`). Completions after the deadline are
 * dropped, so operations in flight do not inflate the rate. When the window
 * opens, "measuring" is printed on stdout (the runner starts its CPU probe then).
 */
export class Window {
  /** Operations keep going while true. */
  running = true;
  /** True during the measured window: count completions. */
  measuring = false;
  private start = 0;
  private deadline = Number.POSITIVE_INFINITY;
  private endedAt = 0;

  constructor(
    private readonly warmupS: number,
    private readonly durationS: number,
  ) {}

  /** Whether an operation completing now goes on (and, with `measuring`, counts). */
  active(): boolean {
    if (!this.running) return false;
    if (this.measuring && performance.now() >= this.deadline) {
      this.stop();
      return false;
    }
    return true;
  }

  /** Errors count only inside the measured window. */
  counting(): boolean {
    return this.active() && this.measuring;
  }

  stop(): void {
    if (!this.running) return;
    this.running = false;
    this.measuring = false;
    this.endedAt = performance.now();
  }

  /** Warm-up, then the measured window; resolves when it closes. */
  async run(): Promise<void> {
    const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
    if (this.warmupS > 0) await sleep(this.warmupS * 1000);
    this.start = performance.now();
    this.deadline = this.start + this.durationS * 1000;
    this.measuring = true;
    process.stdout.write('measuring\n');
    await sleep(this.durationS * 1000);
    this.stop();
  }

  get elapsedS(): number {
    if (this.start === 0) return 0;
    return ((this.running ? performance.now() : this.endedAt) - this.start) / 1000;
  }
}

export function report(ops: number, win: Window, rec: Recorder, failed: number, errors: ErrorTally): LoadReport {
  const elapsedS = win.elapsedS;
  const [p50, p99] = rec.percentiles(0.5, 0.99);
  return {
    ops,
    elapsedS,
    rate: elapsedS > 0 ? ops / elapsedS : 0,
    p50Ms: p50 ?? Number.NaN,
    p99Ms: p99 ?? Number.NaN,
    failed,
    socketErrors: errors.total - failed,
    errorDetail: errors.detail(),
  };
}

/** Print the report as the last line of stdout and exit once it is flushed. */
export function emitAndExit(r: LoadReport): void {
  process.stdout.write(JSON.stringify(r) + '\n', () => process.exit(0));
}

/** Parse `--name value` pairs into numbers/strings; unknown names are an error. */
export function args(spec: Record<string, 'number' | 'string'>, argv = process.argv.slice(2)): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]?.replace(/^--/, '') ?? '';
    const value = argv[i + 1];
    const kind = spec[name];
    if (kind === undefined || value === undefined) fail(`bad argument '${argv[i] ?? ''}'`);
    out[name] = kind === 'number' ? Number(value) : value;
    if (kind === 'number' && !Number.isFinite(out[name])) fail(`--${name}: not a number: ${value}`);
  }
  for (const name of Object.keys(spec)) if (!(name in out)) fail(`missing --${name}`);
  return out;
}

export function fail(message: string): never {
  process.stderr.write(`${process.argv[1] ?? 'load'}: ${message}\n`);
  process.exit(2);
}
