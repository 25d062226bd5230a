/**
 * A config document held in a store (etcd, ZooKeeper) under one key, as
 * text (YAML or JSON), with a revision that changes with every write.
 */
export interface StoredText {
  readonly text: string;
  /**
   * Opaque; differs after every write of the key (etcd: its ModRevision;
   * ZooKeeper: its mzxid). Given back as `ifRevision` for compare-and-set.
   */
  readonly revision: string;
}

/** A write's result: stored (with the new revision), or refused because the key is no longer at `ifRevision`. */
export type PutOutcome = { readonly ok: true; readonly revision: string } | { readonly ok: false; readonly reason: 'stale'; readonly revision: string | undefined };

/** The store could not be reached, or did not answer within its timeout. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
}

/** Told of what happens to a watched key. */
export interface StoreWatchHandlers {
  /**
   * The key may have changed: the caller reads it again with get(). Also
   * called after every re-arm (a reconnect, a ZooKeeper session expiry, an
   * etcd compaction), since changes in between are not seen.
   */
  onChange(): void;
  /** Each change of reachability: up = the store answers; `reason` says why it does not. */
  onConnection(up: boolean, reason?: string): void;
}

/**
 * One key of a store holding a config document. Contract:
 * - `get()` resolves with the document, or undefined when the key does not
 *   exist; rejects with StoreUnavailableError when the store cannot answer
 *   within the timeout (never hangs longer).
 * - `put(text, ifRevision)`: with `ifRevision` a revision, writes only if
 *   the key is still at it; with null, only if the key does not exist;
 *   with undefined, unconditionally (creating parents as needed). Rejects
 *   with StoreUnavailableError as get() does.
 * - `watch(handlers)` starts watching the key (once); keeps re-arming
 *   itself until close(); never throws.
 * - `close()` stops the watch and lets go of the connection; never rejects.
 */
export interface DocumentStore {
  /** For logs and /ready: `etcd://127.0.0.1:2379/portico/config`. */
  readonly origin: string;
  get(): Promise<StoredText | undefined>;
  put(text: string, ifRevision: string | null | undefined): Promise<PutOutcome>;
  watch(handlers: StoreWatchHandlers): void;
  close(): Promise<void>;
}
