import type { DiscoveryConfig } from '../config/schemas/discovery.js';
import type { Logger } from '../observability/logger.js';
import { acquireEtcd, type SharedEtcd } from '../stores/etcd-client.js';
import { EtcdKeyWatch } from '../stores/etcd-watch.js';
import type { DiscoveryBackend, DiscoveryUpdate, SkippedEntry } from './backend.js';
import { parseDiscoveredEntry, type DiscoveredTarget } from './entry.js';

/** Longest wait for etcd per request (ms). */
const TIMEOUT_MS = 5_000;
/** Changes arriving within this long are read once (ms). */
const DEBOUNCE_MS = 50;

/**
 * Targets under an etcd prefix: every key `prefix/<name>`, its value parsed
 * by parseDiscoveredEntry(<last key segment>, value). Watched by an
 * EtcdKeyWatch; after each change (bursts within DEBOUNCE_MS read once), a
 * reconnect, a compaction or a wipe, the whole prefix is read again and
 * reported. `{ ok: false }` when etcd does not answer.
 */
export class EtcdDiscovery implements DiscoveryBackend {
  readonly type = 'etcd';
  readonly origin: string;
  #etcd: SharedEtcd | undefined;
  #watch: EtcdKeyWatch | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #reading = false;
  #again = false;
  #onUpdate: ((update: DiscoveryUpdate) => void) | undefined;

  constructor(
    readonly config: Extract<DiscoveryConfig, { type: 'etcd' }>,
    readonly logger: Logger,
  ) {
    this.origin = `etcd://${config.endpoints[0]!.replace(/^https?:\/\//, '').replace(/\/$/, '')}${config.prefix}`;
  }

  start(onUpdate: (update: DiscoveryUpdate) => void): void {
    if (this.#onUpdate !== undefined || this.#closed) return;
    this.#onUpdate = onUpdate;
    this.#etcd = acquireEtcd(this.config.endpoints, TIMEOUT_MS);
    this.#watch = new EtcdKeyWatch(this.#etcd, `${this.config.prefix}/`, true, this.logger, this.origin, {
      onChange: () => this.#soon(),
      onConnection: (up, reason) => {
        if (!up) this.#emit({ ok: false, error: `etcd unreachable: ${reason ?? 'unknown'}` });
      },
    });
  }

  #soon(): void {
    if (this.#closed || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#read();
    }, DEBOUNCE_MS);
  }

  async #read(): Promise<void> {
    if (this.#reading) {
      this.#again = true;
      return;
    }
    this.#reading = true;
    const etcd = this.#etcd!;
    const base = `${this.config.prefix}/`;
    try {
      const res = await etcd.bounded('list', () => etcd.client.getAll().prefix(base).exec());
      const targets: DiscoveredTarget[] = [];
      const skipped: SkippedEntry[] = [];
      for (const kv of res.kvs) {
        const key = kv.key.toString('utf8');
        const name = key.slice(key.lastIndexOf('/') + 1);
        const parsed = parseDiscoveredEntry(name, kv.value.toString('utf8'));
        if ('error' in parsed) skipped.push({ entry: key, reason: parsed.error });
        else targets.push(parsed);
      }
      this.#emit({ ok: true, targets, skipped });
    } catch (err) {
      this.#emit({ ok: false, error: err instanceof Error ? err.message : String(err) });
    } finally {
      this.#reading = false;
      if (this.#again) {
        this.#again = false;
        this.#soon();
      }
    }
  }

  #emit(update: DiscoveryUpdate): void {
    if (!this.#closed) this.#onUpdate?.(update);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#watch?.close();
    this.#etcd?.release();
  }
}
