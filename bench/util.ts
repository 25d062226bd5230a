/**
 * Small helpers shared by the bench modules: free ports, HTTP probes,
 * readiness polling, and a registry of child processes so that every
 * process the runner starts is stopped on exit, on error and on SIGINT.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root: the compiled file lives in build/bench/, two levels below it. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** True when `name` is an executable found on PATH (or an absolute path that exists). */
export function hasBinary(name: string): boolean {
  if (path.isAbsolute(name)) return existsSync(name);
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { stdio: ['ignore', 'pipe', 'ignore'] });
  return r.status === 0 && r.stdout.toString().trim() !== '';
}

/** Absolute path of `name` on PATH, or undefined. nginx lives in /usr/sbin, which may not be on PATH. */
export function findBinary(name: string, extraDirs: readonly string[] = ['/usr/sbin', '/usr/local/sbin', '/sbin']): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { stdio: ['ignore', 'pipe', 'ignore'] });
  const found = r.status === 0 ? r.stdout.toString().trim() : '';
  if (found !== '') return found;
  for (const dir of extraDirs) {
    const p = path.join(dir, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

const TASKSET = hasBinary('taskset');

/** Whether CPU pinning is available on this machine. */
export function canPin(): boolean {
  return TASKSET;
}

/** Prefix `cmd args` with `taskset -c CPU` when taskset exists (taskset execs, so the pid stays the same). */
export function pinned(cpu: number | undefined, cmd: string, args: readonly string[]): [string, string[]] {
  if (cpu === undefined || !TASKSET) return [cmd, [...args]];
  return ['taskset', ['-c', String(cpu), cmd, ...args]];
}

/** A port that was free a moment ago: listen on port 0, read the port, close. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('could not read the address of a port-0 listener'));
        return;
      }
      const port = addr.port;
      srv.close(() => resolve(port));
    });
  });
}

export interface ProbeResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One GET to 127.0.0.1 on a fresh connection (no agent), with a timeout. Rejects on network errors. */
export function httpGet(port: number, urlPath: string, headers: Record<string, string> = {}, timeoutMs = 2000): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: urlPath, method: 'GET', headers: { connection: 'close', ...headers }, agent: false, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Poll `check` every `intervalMs` until it returns true, for at most
 * `timeoutMs`. `abort` is consulted first on every round (e.g. "the process
 * has exited") and turns into an immediate failure with its message.
 */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  opts: { intervalMs?: number; timeoutMs?: number; abort?: () => string | undefined } = {},
): Promise<void> {
  const interval = opts.intervalMs ?? 50;
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  let lastError = '';
  for (;;) {
    const aborted = opts.abort?.();
    if (aborted !== undefined) throw new Error(`${what}: ${aborted}`);
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() >= deadline) {
      throw new Error(`${what}: not ready after ${opts.timeoutMs ?? 10_000} ms${lastError ? ` (last error: ${lastError})` : ''}`);
    }
    await delay(interval);
  }
}

/** Wait until 127.0.0.1:port answers GET urlPath with 200. */
export function waitForHttp200(what: string, port: number, urlPath: string, headers: Record<string, string> = {}, abort?: () => string | undefined): Promise<void> {
  return waitUntil(what, async () => (await httpGet(port, urlPath, headers, 1000)).status === 200, { abort });
}

/** Keeps the last `limit` bytes written to it: enough to explain a crash without holding a flood of logs. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly limit = 16 * 1024) {}
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > this.limit && this.chunks.length > 1) {
      const first = this.chunks.shift();
      if (first !== undefined) this.size -= first.length;
    }
  }
  toString(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.limit)).toString('utf8');
  }
}

/** A child process the runner owns. `stop()` is idempotent. */
export class Managed {
  readonly name: string;
  readonly child: ChildProcess;
  readonly output = new TailBuffer();
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  exited = false;
  private readonly exitPromise: Promise<void>;
  private readonly stopSignal: NodeJS.Signals;

  constructor(name: string, cmd: string, args: readonly string[], options: SpawnOptions & { stopSignal?: NodeJS.Signals } = {}) {
    this.name = name;
    this.stopSignal = options.stopSignal ?? 'SIGTERM';
    const { stopSignal: _ignored, ...spawnOpts } = options;
    this.child = spawn(cmd, [...args], { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOpts });
    this.child.stdout?.on('data', (c: Buffer) => this.output.push(c));
    this.child.stderr?.on('data', (c: Buffer) => this.output.push(c));
    this.exitPromise = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exited = true;
        this.exitCode = code;
        this.exitSignal = signal;
        resolve();
      });
      this.child.once('error', (err) => {
        this.output.push(Buffer.from(`spawn error: ${err.message}\n`));
        this.exited = true;
        resolve();
      });
    });
    registry.add(this);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Why this process is not running, or undefined while it runs. */
  exitReason(): string | undefined {
    if (!this.exited) return undefined;
    const how = this.exitSignal !== null ? `signal ${this.exitSignal}` : `code ${String(this.exitCode)}`;
    const out = this.output.toString().trim();
    return `${this.name} exited (${how})${out ? `; output:\n${indent(out)}` : ''}`;
  }

  /** Resolves when the process has exited. */
  wait(): Promise<void> {
    return this.exitPromise;
  }

  /** Send the stop signal, wait up to `graceMs`, then SIGKILL. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.exited) {
      try {
        this.child.kill(this.stopSignal);
      } catch {
        /* already gone */
      }
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        this.exitPromise.then(() => false),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(true), graceMs);
        }),
      ]);
      if (timer !== undefined) clearTimeout(timer);
      if (timedOut && !this.exited) {
        process.stderr.write(`bench: ${this.name} did not exit ${graceMs} ms after ${this.stopSignal}; sending SIGKILL\n`);
        try {
          this.child.kill('SIGKILL');
        } catch {
          /* already gone */
        }
        await this.exitPromise;
      }
    }
    registry.delete(this);
  }

  /** Synchronous last-resort kill, for process 'exit' handlers. */
  killNow(): void {
    if (!this.exited) {
      try {
        this.child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

export function indent(s: string, by = '    '): string {
  return s
    .split('\n')
    .map((l) => by + l)
    .join('\n');
}

const registry = new Set<Managed>();
const tempDirs = new Set<string>();

/** Remember a temp dir so cleanup() removes it. */
export function trackTempDir(dir: string): void {
  tempDirs.add(dir);
}

/** Stop every registered process (in reverse start order) and remove temp dirs. */
export async function cleanup(): Promise<void> {
  const procs = [...registry].reverse();
  await Promise.all(procs.map((p) => p.stop(5_000).catch(() => undefined)));
  for (const dir of tempDirs) {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
  tempDirs.clear();
}

/** Synchronous best effort for the 'exit' event: SIGKILL what is left and remove temp dirs. */
export function killAllNow(): void {
  for (const p of registry) p.killNow();
  for (const dir of tempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
  tempDirs.clear();
}

/**
 * One HTTP/2 GET to 127.0.0.1 on a fresh session (TLS with ALPN h2 when
 * `tls`, certificate not verified; else h2c prior knowledge), with a
 * timeout. Rejects on network and protocol errors.
 */
export function h2Get(port: number, urlPath: string, tls: boolean, headers: Record<string, string> = {}, timeoutMs = 2000): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`${tls ? 'https' : 'http'}://127.0.0.1:${port}`, { rejectUnauthorized: false });
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`timeout after ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (err: Error | undefined, r?: ProbeResult): void => {
      clearTimeout(timer);
      session.close();
      if (err !== undefined) reject(err);
      else resolve(r!);
    };
    session.on('error', (err) => done(err));
    const req = session.request({ ':method': 'GET', ':path': urlPath, ...headers }, { endStream: true });
    let status = 0;
    let resHeaders: http.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => {
      status = Number(h[':status']);
      resHeaders = h as http.IncomingHttpHeaders;
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => done(undefined, { status, headers: resHeaders, body: Buffer.concat(chunks) }));
    req.on('error', (err) => done(err));
  });
}
