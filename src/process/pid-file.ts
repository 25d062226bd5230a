import { linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * The pid file (`pidFile:`): the decimal process id and a newline, written
 * when `portico start` starts and removed when it exits (also after a
 * failed start). With `workers: N` it names the primary, the process to
 * signal.
 *
 * Taking it: the content goes to a temporary file that is then hard-linked
 * to the path, so the pid file appears whole or not at all and an existing
 * one is never overwritten (link(2) fails with EEXIST). An existing file
 * naming a live process refuses the start; one naming a process that no
 * longer exists is stale and replaced; one that does not hold a process id
 * is refused and left alone (it may not be a pid file at all). A relative
 * path is relative to the working directory.
 */
export type PidFileResult = { ok: true; file: string; release(): void } | { ok: false; error: string };

export function acquirePidFile(path: string, pid = process.pid): PidFileResult {
  const file = resolve(path);
  const tmp = `${file}.${pid}.tmp`;
  try {
    writeFileSync(tmp, `${pid}\n`, { mode: 0o644 });
  } catch (err) {
    return { ok: false, error: `cannot write pid file ${file}: ${(err as Error).message}` };
  }
  try {
    // Two tries: the second one after removing a stale file.
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        linkSync(tmp, file);
        return taken(file, pid);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return { ok: false, error: `cannot write pid file ${file}: ${(err as Error).message}` };
      }
      const other = readPid(file);
      if (other === 'gone') continue;
      if (other === undefined) return { ok: false, error: `pid file ${file} exists but does not hold a (readable) process id; remove it or choose another path` };
      if (other !== pid && isAlive(other)) return { ok: false, error: `pid file ${file} names running process ${other}: is Portico already running?` };
      // Stale: its process is gone. (Two starts racing over one stale file is not guarded against.)
      try {
        unlinkSync(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return { ok: false, error: `cannot replace stale pid file ${file}: ${(err as Error).message}` };
      }
    }
    return { ok: false, error: `cannot write pid file ${file}: it keeps reappearing` };
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
  }
}

/** Registers removal at process exit too (an uncaught error, `process.exit`); `release` removes it now. */
function taken(file: string, pid: number): PidFileResult {
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off('exit', release);
    // Only our own file: never one another instance wrote after replacing ours.
    if (readPid(file) !== pid) return;
    try {
      unlinkSync(file);
    } catch {
      // removed meanwhile
    }
  };
  process.on('exit', release);
  return { ok: true, file, release };
}

/** The pid a file names; undefined when it holds something else; 'gone' when it does not exist (any more). */
export function readPid(file: string): number | undefined | 'gone' {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'gone' : undefined;
  }
  const m = /^\s*(\d{1,10})\s*$/.exec(text);
  const pid = m ? Number(m[1]) : NaN;
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/** kill(pid, 0): delivers nothing, only checks (POSIX kill(2)); EPERM means it exists under another user. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
