import cluster from 'node:cluster';
import type { ListenerConfig } from '../config/schema.js';
import type { PortSharing } from './port-sharing.js';

/**
 * The worker's side of `workers: N` (the primary is supervisor.ts). A worker
 * is `portico start` run again by node:cluster with the same arguments; the
 * primary tells it, through its environment, which slot it fills and how
 * to bind, and the worker reports on its IPC channel once it serves.
 */

/** Environment set by the primary on each worker. */
export const WORKER_ENV = { index: 'PORTICO_WORKER_INDEX', sharing: 'PORTICO_PORT_SHARING' } as const;

/** A listener as announced in the "portico started" log line: name and URL. */
export interface ListenerUrl {
  name: string;
  protocol: ListenerConfig['protocol'];
  url: string;
}

/** Sent by a worker once its gateway serves its config. */
export interface ReadyMessage {
  type: 'portico:ready';
  listeners: ListenerUrl[];
  /** The admin API's URL (only the worker in slot 0 serves it). */
  admin?: string;
}

export interface WorkerIdentity {
  /** The slot, 0..N-1; a restarted worker keeps its predecessor's. */
  index: number;
  sharing: PortSharing;
  /** Only slot 0 binds the admin API (one process answers it). */
  admin: boolean;
}

/** This process's slot when it is a Portico worker; undefined in any other process. */
export function workerIdentity(): WorkerIdentity | undefined {
  if (!cluster.isWorker) return undefined;
  const index = Number(process.env[WORKER_ENV.index]);
  const sharing = process.env[WORKER_ENV.sharing] === 'reuse-port' ? 'reuse-port' : 'cluster';
  if (!Number.isInteger(index) || index < 0) return undefined;
  return { index, sharing, admin: index === 0 };
}

export function reportReady(listeners: ListenerUrl[], admin: string | undefined): void {
  const message: ReadyMessage = { type: 'portico:ready', listeners, ...(admin !== undefined ? { admin } : {}) };
  // With a callback: a failed send (the primary gone) is not emitted as an 'error' that would end this process.
  process.send?.(message, undefined, undefined, () => undefined);
}

export function isReadyMessage(m: unknown): m is ReadyMessage {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'portico:ready';
}
