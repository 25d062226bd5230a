import type { DiscoveredTarget } from './entry.js';

/**
 * What a discovery backend reports: the whole set it sees now (entries it
 * could not read are `skipped`, each with its reason), or that it cannot
 * see the set (the store or DNS is unreachable, the name does not resolve).
 */
export type DiscoveryUpdate =
  | { readonly ok: true; readonly targets: readonly DiscoveredTarget[]; readonly skipped: readonly SkippedEntry[] }
  | { readonly ok: false; readonly error: string };

/** A registry entry that is not a target (a malformed address, bad JSON…): left out, and shown on /status. */
export interface SkippedEntry {
  /** The znode, key or record it came from. */
  readonly entry: string;
  readonly reason: string;
}

/**
 * One kind of service discovery (ZooKeeper, etcd, DNS). Contract:
 * - `start(onUpdate)` begins watching or resolving and calls `onUpdate`
 *   with the full current set after every change it sees, and with
 *   `{ ok: false }` whenever it loses sight of the set (then again with the
 *   set once it sees it again: after a reconnect, a session expiry, a
 *   compaction). It never throws and never calls `onUpdate` after `close()`.
 * - Guards (keeping the last set on failure, holding an empty answer) are
 *   not its job: DiscoveredTargets does them for every backend.
 */
export interface DiscoveryBackend {
  /** `zookeeper`, `etcd`, `dns`. */
  readonly type: string;
  /** What it watches, for logs and /status: `zookeeper://127.0.0.1:2181/real_server`. */
  readonly origin: string;
  start(onUpdate: (update: DiscoveryUpdate) => void): void;
  close(): void;
}
