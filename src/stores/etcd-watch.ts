import type { Watcher } from 'etcd3';
import type { Logger } from '../observability/logger.js';
import type { SharedEtcd } from './etcd-client.js';

export interface EtcdWatchHandlers {
  /** The key (or prefix) may have changed: read it again. */
  onChange(): void;
  onConnection(up: boolean, reason?: string): void;
}

/** How often the probe reads the watched key or prefix (ms), at most. */
const PROBE_MS = 1_000;

/**
 * Watches one etcd key or prefix until close(); never throws. Two parts:
 * - an etcd watch (etcd3 Watcher) for prompt notice of each put/delete;
 *   on its `error` (e.g. the watch's revision was compacted) it is
 *   re-created and onChange() is called;
 * - a probe: a bounded range read (keys only) every PROBE_MS. A failed
 *   probe reports onConnection(false, reason) once; the next good one
 *   reports onConnection(true) and onChange(). It also sees what the watch
 *   cannot: the cluster's revision going backwards (etcd restarted with a
 *   wiped data folder: the watch would wait for revisions that come much
 *   later) and a changed set of mod_revisions (events missed); both re-arm
 *   the watch and call onChange().
 */
export class EtcdKeyWatch {
  #watcher: Watcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #up: boolean | undefined;
  #clusterRevision = 0n;
  #fingerprint: string | undefined;
  #arming = false;

  constructor(
    readonly etcd: SharedEtcd,
    readonly key: string,
    readonly prefix: boolean,
    readonly logger: Logger,
    readonly origin: string,
    readonly handlers: EtcdWatchHandlers,
  ) {
    void this.#probe();
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => void this.#probe(), Math.min(PROBE_MS, this.etcd.timeoutMs));
    this.#timer.unref();
  }

  async #probe(): Promise<void> {
    if (this.#closed) return;
    try {
      const client = this.etcd.client;
      const res = await this.etcd.bounded('watch probe', () => (this.prefix ? client.getAll().prefix(this.key).exec() : client.get(this.key).exec()));
      if (this.#closed) return;
      const revision = BigInt(res.header.revision);
      const fingerprint = res.kvs.map((kv) => `${kv.key.toString()}@${kv.mod_revision}`).join(',');
      const wiped = revision < this.#clusterRevision;
      const changed = this.#fingerprint !== undefined && fingerprint !== this.#fingerprint;
      this.#clusterRevision = revision;
      this.#fingerprint = fingerprint;
      if (this.#up !== true) {
        this.#up = true;
        this.handlers.onConnection(true);
        await this.#arm();
        this.handlers.onChange();
      } else if (wiped || changed) {
        if (wiped) this.logger.warn({ origin: this.origin }, 'etcd revision went backwards (data wiped?): watch re-armed');
        await this.#arm();
        this.handlers.onChange();
      }
    } catch (err) {
      if (this.#closed) return;
      if (this.#up !== false) {
        this.#up = false;
        const reason = err instanceof Error ? err.message : String(err);
        this.handlers.onConnection(false, reason);
      }
    } finally {
      this.#schedule();
    }
  }

  /** (Re-)creates the etcd watch from the current revision. */
  async #arm(): Promise<void> {
    if (this.#arming || this.#closed) return;
    this.#arming = true;
    try {
      this.#drop();
      const builder = this.prefix ? this.etcd.client.watch().prefix(this.key) : this.etcd.client.watch().key(this.key);
      // Attached at once and always held here (etcd3 connects it in the background): a watcher left
      // behind by a timed-out create() would keep etcd3 reconnecting, and the process from exiting.
      const watcher = builder.watcher();
      this.#watcher = watcher;
      watcher.on('put', () => this.#event());
      watcher.on('delete', () => this.#event());
      watcher.on('error', (err: Error) => {
        if (this.#watcher !== watcher) return;
        this.logger.warn({ origin: this.origin, error: err.message }, 'etcd watch error: re-arming');
        this.#drop();
        void this.#arm().then(() => {
          if (!this.#closed) this.handlers.onChange();
        });
      });
    } catch {
      // The probe reports the outage and re-arms once etcd answers.
      this.#up = undefined;
    } finally {
      this.#arming = false;
    }
  }

  #event(): void {
    if (!this.#closed) this.handlers.onChange();
  }

  #drop(): void {
    const w = this.#watcher;
    this.#watcher = undefined;
    if (w !== undefined) {
      w.removeAllListeners();
      w.on('error', () => {});
      void w.cancel().catch(() => {});
    }
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#drop();
  }
}
