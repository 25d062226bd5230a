import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait.js';

/** The repository root (tests run from build/test/...). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The built CLI, as `npx portico` runs it. */
export const CLI = join(ROOT, 'dist', 'cli', 'main.js');

export interface Running {
  child: ChildProcess;
  /** stdout lines parsed as JSON where possible. */
  logs: Record<string, unknown>[];
  stderr: string[];
  /** The `listeners` of the "portico started" line: name → base URL. */
  urls: Record<string, string>;
  admin: string | undefined;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Spawns `portico start --config FILE` (or `portico start ...configArgs`) and
 * waits for its "portico started" log line.
 */
export function startCli(config: string, env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = [], configArgs = ['--config', config]): Promise<Running> {
  return startProcess(process.execPath, [...nodeArgs, CLI, 'start', ...configArgs], env);
}

/** A spawned process whose stdout lines are parsed as JSON where possible (`{ raw }` otherwise). */
export interface Logged {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  stderr: string[];
  /** stdout and stderr as received, in order. */
  output(): string;
  exited: Promise<number | null>;
}

/** Spawns `command args` with `env` added to this process's, collecting its JSON log lines. */
export function spawnLogged(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Logged {
  const child = spawn(command, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  let raw = '';
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    raw += d.toString();
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ raw: line });
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => {
    raw += d.toString();
    stderr.push(d.toString());
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, logs, stderr, output: () => raw, exited };
}

/** Spawns a command that runs `portico start` (an installed binary, a wrapper) and waits for its "portico started" log line. */
export async function startProcess(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Running> {
  const { child, logs, stderr, exited } = spawnLogged(command, args, env);
  let exitCode: number | null | undefined;
  void exited.then((c) => (exitCode = c));
  const started = await waitFor(() => {
    if (exitCode !== undefined) throw new Error(`portico exited with ${exitCode}: ${stderr.join('')}`);
    return logs.find((l) => l.msg === 'portico started');
  }, 'portico to start');
  const urls: Record<string, string> = {};
  for (const l of started.listeners as { name: string; url: string }[]) urls[l.name] = l.url;
  return {
    child,
    logs,
    stderr,
    urls,
    admin: started.admin as string | undefined,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (exitCode === undefined) child.kill(signal);
      return exited;
    },
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `portico ARGS` to completion, with `input` on stdin; killed (and rejected) after `timeoutMs`. */
export function runCli(args: string[], o: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const timeoutMs = o.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...o.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`portico ${args.join(' ')} did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(o.input ?? '');
  });
}

/** A fresh temp dir (`portico-<prefix>-…`), removed after the test. */
export function tempDir(t: TestContext, prefix = 'cli'): string {
  const dir = fs.mkdtempSync(join(os.tmpdir(), `portico-${prefix}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Stops a CLI process in the after hook: SIGTERM, then SIGKILL if it has not exited within `killAfterMs`. */
export function stopAfter(t: TestContext, child: ChildProcess, exited: Promise<number | null>, killAfterMs = 5000): void {
  t.after(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    await exited;
    clearTimeout(timer);
  });
}

/** True once `pid` no longer runs (ESRCH, or a zombie waiting to be reaped: see proc(5), field 3). */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** The pids whose parent is `pid` (Linux /proc). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}
