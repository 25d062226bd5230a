/**
 * Noise meter: how much CPU went to processes that are not part of the
 * bench (a compiler, a test suite, an editor) during one measured run, plus
 * hypervisor steal. On a 2-core machine any foreign work lands on the CPU of
 * the load generator or of the proxy, so a run with noise is flagged.
 * Linux only (/proc); elsewhere it reports nothing.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** Kernel clock ticks per second (USER_HZ); 100 on every mainstream Linux. */
const CLK_TCK = 100;

interface ProcSample {
  ppid: number;
  comm: string;
  /** utime + stime of the process itself. */
  ticks: number;
  /** cutime + cstime: CPU of its children that exited and were waited for. */
  childTicks: number;
}

function readProcs(): Map<number, ProcSample> {
  const out = new Map<number, ProcSample>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = readFileSync(`/proc/${e}/stat`, 'utf8');
      const close = s.lastIndexOf(')');
      const comm = s.slice(s.indexOf('(') + 1, close);
      const f = s.slice(close + 2).split(' ');
      // Fields after ")": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
      out.set(Number(e), { ppid: Number(f[1]), comm, ticks: Number(f[11]) + Number(f[12]), childTicks: Number(f[13]) + Number(f[14]) });
    } catch {
      /* process ended meanwhile */
    }
  }
  return out;
}

interface CpuSample {
  steal: number;
  /** Not idle, iowait or steal: user, nice, system, irq, softirq. */
  busy: number;
  total: number;
}

/** /proc/stat: index 0 is the "cpu" line (all CPUs), then cpu0, cpu1, ... */
function readCpus(): CpuSample[] | undefined {
  try {
    const lines = readFileSync('/proc/stat', 'utf8')
      .split('\n')
      .filter((l) => /^cpu\d*\s/.test(l));
    return lines.map((line) => {
      // user nice system idle iowait irq softirq steal guest guest_nice (guest time is already in user)
      const f = line.trim().split(/\s+/).slice(1).map(Number);
      const v = (i: number): number => f[i] ?? 0;
      const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
      return { steal: v(7), busy: v(0) + v(1) + v(2) + v(5) + v(6), total };
    });
  } catch {
    return undefined;
  }
}

/** Pids in the tree rooted at `root` (this process: the runner and everything it started). */
function descendants(procs: Map<number, ProcSample>, root: number): Set<number> {
  const ours = new Set<number>([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, p] of procs) {
      if (!ours.has(pid) && ours.has(p.ppid)) {
        ours.add(pid);
        grew = true;
      }
    }
  }
  return ours;
}

export interface Noise {
  /** CPU used by processes outside the bench, in % of one core (200 = both cores busy). */
  foreignPct: number;
  /** Hypervisor steal, in % of all CPUs' time. */
  stealPct: number;
  /** Busy time of each CPU (user, system, irq, softirq), in %: cpuBusyPct[0] is CPU 0. */
  cpuBusyPct: number[];
  /** The busiest foreign processes, "comm (pid) N%". */
  top: string[];
  /** CPU used by the measured target's process tree (e.g. the proxy), in % of one core; 100 = one core saturated. */
  targetPct?: number;
}

export interface NoiseProbe {
  stop(): Noise | undefined;
}

/**
 * Start measuring; call stop() when the run ends. `targetPid` is the process
 * (or the processes, e.g. both ends of a tunnel) whose trees' CPU use is
 * reported as targetPct. Returns undefined results
 * where /proc is missing.
 */
export function startNoiseProbe(targetPid?: number | readonly number[]): NoiseProbe {
  const targets = targetPid === undefined ? [] : typeof targetPid === 'number' ? [targetPid] : targetPid;
  if (process.platform !== 'linux') return { stop: () => undefined };
  const before = readProcs();
  const cpus0 = readCpus();
  const t0 = performance.now();
  return {
    stop(): Noise | undefined {
      const after = readProcs();
      const cpus1 = readCpus();
      const elapsedS = (performance.now() - t0) / 1000;
      if (after.size === 0 || elapsedS <= 0) return undefined;
      const ours = descendants(after, process.pid);
      const foreign: { name: string; pct: number }[] = [];
      for (const [pid, p] of after) {
        // Skip the bench's own tree and kernel threads (kthreadd is pid 2; softirq
        // work for loopback traffic is the bench's own doing).
        if (ours.has(pid) || pid === 2 || p.ppid === 2) continue;
        // Own CPU plus that of children which exited during the run (short-lived
        // test processes are only seen this way, in their parent's cutime).
        const prev = before.get(pid);
        const same = prev !== undefined && prev.comm === p.comm;
        const ticks = same ? p.ticks - prev.ticks + (p.childTicks - prev.childTicks) : p.ticks + p.childTicks;
        if (ticks <= 0) continue;
        foreign.push({ name: `${p.comm} (${pid})`, pct: ((ticks / CLK_TCK) * 100) / elapsedS });
      }
      // Foreign processes that exited during the run: their time before the run
      // shows up in a parent's cutime above; take it back out.
      let vanished = 0;
      const oursBefore = descendants(before, process.pid);
      for (const [pid, p] of before) {
        if (!after.has(pid) && !oursBefore.has(pid) && p.ppid !== 2) vanished += p.ticks + p.childTicks;
      }
      foreign.sort((a, b) => b.pct - a.pct);
      let targetPct: number | undefined;
      const alive = targets.filter((t) => after.has(t));
      if (alive.length > 0) {
        let ticks = 0;
        const tree = new Set(alive.flatMap((t) => [...descendants(after, t)]));
        for (const pid of tree) {
          const p = after.get(pid);
          const prev = before.get(pid);
          if (p !== undefined) ticks += prev !== undefined && prev.comm === p.comm ? p.ticks - prev.ticks : p.ticks;
        }
        targetPct = ((ticks / CLK_TCK) * 100) / elapsedS;
      }
      const foreignPct = Math.max(0, foreign.reduce((a, b) => a + b.pct, 0) - ((vanished / CLK_TCK) * 100) / elapsedS);
      const delta = (i: number, k: 'steal' | 'busy'): number => {
        const a = cpus0?.[i];
        const b = cpus1?.[i];
        if (a === undefined || b === undefined || b.total <= a.total) return 0;
        return ((b[k] - a[k]) / (b.total - a.total)) * 100;
      };
      const stealPct = delta(0, 'steal');
      const cpuBusyPct = (cpus1 ?? []).slice(1).map((_, i) => delta(i + 1, 'busy'));
      return {
        foreignPct,
        stealPct,
        cpuBusyPct,
        top: foreign.filter((f) => f.pct >= 1).slice(0, 3).map((f) => `${f.name} ${f.pct.toFixed(0)}%`),
        ...(targetPct !== undefined ? { targetPct } : {}),
      };
    },
  };
}

/** Foreign CPU above this (% of one core) or steal above STEAL_LIMIT marks a run as noisy. */
export const FOREIGN_LIMIT = 10;
export const STEAL_LIMIT = 5;

export function isNoisy(n: Noise | undefined): boolean {
  return n !== undefined && (n.foreignPct > FOREIGN_LIMIT || n.stealPct > STEAL_LIMIT);
}
