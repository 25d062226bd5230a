import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readPid } from '../process/pid-file.js';

/**
 * `portico stop`: SIGTERM to the process a pid file names (the gateway, or
 * the primary of `workers: N`), then waits until it has exited. The gateway
 * drains within its shutdownTimeout and removes the pid file itself.
 *
 * Results: `stopped` once the process is gone; otherwise a one-line reason
 * (no pid file, not a pid file, a stale pid, EPERM, still running at the
 * deadline). The process is never sent SIGKILL: that stays the operator's call.
 */
export type StopResult = { ok: true; pid: number; ms: number } | { ok: false; error: string };

/** How often the process is polled while waiting for it to exit. */
const POLL_MS = 50;

export async function stopByPidFile(pidFile: string, timeoutMs: number): Promise<StopResult> {
  const file = resolve(pidFile);
  const pid = readPid(file);
  if (pid === 'gone') return { ok: false, error: `no pid file at ${file}: Portico is not running (or writes its pid elsewhere)` };
  if (pid === undefined) return { ok: false, error: `${file} does not hold a process id (or cannot be read)` };
  const t0 = Date.now();
  try {
    process.kill(pid, 'SIGTERM');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return { ok: false, error: `pid file ${file} names process ${pid}, which is not running (a stale pid file)` };
    if (code === 'EPERM') return { ok: false, error: `not permitted to signal process ${pid} (from ${file}): run as its user` };
    return { ok: false, error: `cannot signal process ${pid}: ${(err as Error).message}` };
  }
  const deadline = t0 + timeoutMs;
  while (!exited(pid)) {
    if (Date.now() >= deadline) {
      return { ok: false, error: `process ${pid} is still running ${Math.round(timeoutMs / 1000)}s after SIGTERM (it may still be draining; SIGKILL it to force)` };
    }
    await sleep(POLL_MS);
  }
  return { ok: true, pid, ms: Date.now() - t0 };
}

/** True once `pid` no longer runs: kill(pid, 0) fails with ESRCH, or (Linux) it is a zombie waiting to be reaped. */
function exited(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 3 (state) follows the parenthesised command name, see proc(5).
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch (err) {
    // Gone between the two calls, or no /proc (not Linux), where kill(pid, 0) is the only answer.
    return (err as NodeJS.ErrnoException).code === 'ENOENT' && existsSync('/proc/self/stat');
  }
}
