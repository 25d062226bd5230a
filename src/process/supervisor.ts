import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../observability/logger.js';
import { WORKER_ENV, isReadyMessage, type ReadyMessage } from './worker.js';
import { AskRelay } from './fanout.js';

/**
 * The primary of `workers: N`: forks N workers with node:cluster (each one
 * runs the gateway, see worker.ts) and supervises them.
 *
 * - Start: resolves `onStarted` once every worker serves; a worker that exits
 *   before that fails the start (the others are stopped, exit code 1).
 * - SIGHUP: forwarded to every worker (each reloads the config file itself);
 *   a worker still starting gets it once it serves.
 * - SIGUSR1: forwarded to every worker (each reopens its access-log files),
 *   the same way. Not sent before a worker serves: until its handler is
 *   installed, Node's own SIGUSR1 action (starting the inspector) would run.
 * - SIGTERM / SIGINT: forwarded as SIGTERM (graceful stop); the primary exits
 *   when every worker has exited. A worker still running `shutdownTimeout`
 *   plus 5 s later is killed (SIGKILL).
 * - A worker that exits on its own while running is replaced in its slot
 *   after a backoff (100 ms, doubling, at most 5 s). A slot replaced more than
 *   5 times within a minute stops everything (exit code 1): a worker that
 *   keeps dying needs a person, and a supervisor above us should see it.
 * - Asks between workers (the admin API's views across workers, see
 *   fanout.ts) are relayed to the serving workers; a slot still starting is
 *   not asked, and a `reload` ask reloads it once it serves (as SIGHUP does).
 */
export interface SupervisorOptions {
  workers: number;
  /** Passed to each worker (see port-sharing.ts). */
  sharing: 'reuse-port' | 'cluster';
  /** The config's graceful-stop budget, in ms. */
  shutdownTimeout: number;
  logger: Logger;
  /** Once every worker serves: the first worker's report and every worker's pid. */
  onStarted(first: ReadyMessage, pids: number[]): void;
}

const RESTART_WINDOW_MS = 60_000;
const MAX_RESTARTS = 5;
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 5_000;
const KILL_MARGIN_MS = 5_000;

interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  ready: boolean;
  /** A SIGHUP arrived while this slot's worker was starting. */
  reloadPending: boolean;
  /** A SIGUSR1 arrived while this slot's worker was starting. */
  reopenPending: boolean;
  /** When this slot's worker was last replaced (within the window). */
  restarts: number[];
  restartTimer: NodeJS.Timeout | undefined;
}

/** Runs the workers until a stop signal (resolves 0) or a failure (resolves 1). */
export function supervise(o: SupervisorOptions): Promise<number> {
  const { logger } = o;
  // Round-robin hand-off by the primary (the default except on Windows; set so the environment cannot change it).
  cluster.schedulingPolicy = cluster.SCHED_RR;
  return new Promise<number>((resolve) => {
    const slots: Slot[] = Array.from({ length: o.workers }, (_, index) => ({
      index,
      worker: undefined,
      ready: false,
      reloadPending: false,
      reopenPending: false,
      restarts: [],
      restartTimer: undefined,
    }));
    let phase: 'starting' | 'running' | 'stopping' = 'starting';
    let exitCode = 0;
    let first: ReadyMessage | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const relay = new AskRelay(
      () => slots,
      (index, ask) => {
        if (ask.kind === 'reload') slots[index]!.reloadPending = true;
      },
      logger,
    );

    const fork = (slot: Slot) => {
      slot.restartTimer = undefined;
      const worker = cluster.fork({ [WORKER_ENV.index]: String(slot.index), [WORKER_ENV.sharing]: o.sharing });
      slot.worker = worker;
      slot.ready = false;
      worker.on('message', (m: unknown) => {
        if (slot.worker !== worker) return;
        if (isReadyMessage(m)) onReady(slot, worker, m);
        else relay.onMessage(worker, m);
      });
      worker.once('exit', (code, signal) => onExit(slot, worker, code, signal));
      // An IPC failure (a send to a worker that is exiting) is logged; unhandled, it would end the primary.
      worker.on('error', (err: Error) => logger.warn({ worker: slot.index, workerPid: worker.process.pid, error: err.message }, 'worker IPC error'));
    };

    const onReady = (slot: Slot, worker: Worker, m: ReadyMessage) => {
      slot.ready = true;
      if (slot.index === 0) first = m;
      if (slot.reloadPending) {
        slot.reloadPending = false;
        worker.process.kill('SIGHUP');
      }
      if (slot.reopenPending) {
        slot.reopenPending = false;
        worker.process.kill('SIGUSR1');
      }
      if (phase === 'starting' && slots.every((s) => s.ready)) {
        phase = 'running';
        o.onStarted(first!, slots.map((s) => s.worker!.process.pid!));
      } else if (phase === 'running') {
        logger.info({ worker: slot.index, workerPid: worker.process.pid }, 'worker replaced');
      }
    };

    const onExit = (slot: Slot, worker: Worker, code: number | null, signal: string | null) => {
      relay.onExit(worker);
      if (slot.worker !== worker) return;
      const wasReady = slot.ready;
      slot.worker = undefined;
      slot.ready = false;
      const about = { worker: slot.index, workerPid: worker.process.pid, code, signal };
      if (phase === 'stopping') {
        if (slots.every((s) => s.worker === undefined)) finish();
        return;
      }
      if (phase === 'starting') {
        logger.error(about, 'worker failed to start; stopping');
        exitCode = 1;
        return stop();
      }
      const now = Date.now();
      slot.restarts = slot.restarts.filter((t) => now - t < RESTART_WINDOW_MS);
      if (slot.restarts.length >= MAX_RESTARTS) {
        logger.error({ ...about, restarts: slot.restarts.length }, 'worker keeps exiting; stopping');
        exitCode = 1;
        return stop();
      }
      slot.restarts.push(now);
      const delay = Math.min(BACKOFF_FIRST_MS * 2 ** (slot.restarts.length - 1), BACKOFF_MAX_MS);
      logger.warn({ ...about, ready: wasReady, restartInMs: delay }, 'worker exited unexpectedly; replacing it');
      slot.restartTimer = setTimeout(() => fork(slot), delay);
    };

    const reload = () => {
      if (phase === 'stopping') return;
      logger.info({ workers: slots.filter((s) => s.worker).length }, 'SIGHUP: reloading every worker');
      for (const s of slots) {
        if (s.worker && s.ready) s.worker.process.kill('SIGHUP');
        else s.reloadPending = true; // starting, or waiting to be replaced: it reads the file once it serves
      }
    };

    const reopenLogs = () => {
      if (phase === 'stopping') return;
      logger.info({ workers: slots.filter((s) => s.worker).length }, 'SIGUSR1: every worker reopens its access logs');
      for (const s of slots) {
        if (s.worker && s.ready) s.worker.process.kill('SIGUSR1');
        else s.reopenPending = true;
      }
    };

    const stop = (signal?: string) => {
      if (phase === 'stopping') return;
      phase = 'stopping';
      if (signal) logger.info({ signal }, 'stopping: workers finish in-flight requests');
      for (const s of slots) {
        clearTimeout(s.restartTimer);
        s.restartTimer = undefined;
        // A worker that has not installed its handlers yet dies of the default action: also a stop.
        s.worker?.process.kill('SIGTERM');
      }
      killTimer = setTimeout(() => {
        for (const s of slots) {
          if (!s.worker) continue;
          logger.warn({ worker: s.index, workerPid: s.worker.process.pid }, 'worker did not stop in time; killing it');
          s.worker.process.kill('SIGKILL');
        }
      }, o.shutdownTimeout + KILL_MARGIN_MS);
      if (slots.every((s) => s.worker === undefined)) finish();
    };

    // Kept until the process exits: without a listener a late signal would kill it before the pid file is removed.
    process.on('SIGHUP', reload);
    process.on('SIGUSR1', reopenLogs);
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));

    const finish = () => {
      clearTimeout(killTimer);
      if (exitCode === 0) logger.info('stopped');
      resolve(exitCode);
    };

    for (const slot of slots) fork(slot);
  });
}
