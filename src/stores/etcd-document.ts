import type { Logger } from '../observability/logger.js';
import { acquireEtcd, type EtcdHandle } from './etcd-client.js';
import { EtcdWatch } from './etcd-watch.js';
import type { DocumentStore, PutOutcome, StoredText, StoreWatchHandlers } from './document-store.js';

export interface EtcdDocumentOptions {
  readonly endpoints: readonly string[];
  /** The key holding the document: `${prefix}/config`. */
  readonly key: string;
  /** Longest wait for a connection or one request (ms). */
  readonly timeout: number;
}

/**
 * A config document in one etcd key (v3 API). Its revision is the key's
 * ModRevision; a compare-and-set write is a transaction on it (RFC-like
 * optimistic concurrency: `If(mod_revision == N) Then(put)`).
 */
export class EtcdDocumentStore implements DocumentStore {
  readonly origin: string;
  private readonly etcd: EtcdHandle;
  private watcher: EtcdWatch | undefined;

  constructor(
    readonly options: EtcdDocumentOptions,
    readonly logger: Logger,
  ) {
    this.etcd = acquireEtcd(options.endpoints, options.timeout);
    this.origin = `etcd://${this.etcd.hosts}${options.key}`;
  }

  async get(): Promise<StoredText | undefined> {
    const res = await this.etcd.bounded(`a read of ${this.options.key}`, () => this.etcd.client.get(this.options.key).exec());
    const kv = res.kvs[0];
    return kv === undefined ? undefined : { text: kv.value.toString('utf8'), revision: String(kv.mod_revision) };
  }

  async put(text: string, ifRevision: string | null | undefined): Promise<PutOutcome> {
    const { client } = this.etcd;
    const key = this.options.key;
    if (ifRevision === undefined) {
      const res = await this.etcd.bounded(`a write of ${key}`, () => client.put(key).value(text).exec());
      return { ok: true, revision: String(res.header.revision) };
    }
    const res = await this.etcd.bounded(`a write of ${key}`, () =>
      (ifRevision === null ? client.if(key, 'Create', '==', 0) : client.if(key, 'Mod', '==', Number(ifRevision))).then(client.put(key).value(text)).commit(),
    );
    if (res.succeeded) return { ok: true, revision: String(res.header.revision) };
    const now = await this.get().catch(() => undefined);
    return { ok: false, reason: 'stale', revision: now?.revision };
  }

  watch(handlers: StoreWatchHandlers): void {
    if (this.watcher !== undefined) return;
    this.watcher = new EtcdWatch(this.etcd, { key: this.options.key }, handlers);
    this.watcher.start();
  }

  close(): Promise<void> {
    this.watcher?.close();
    this.etcd.release();
    return Promise.resolve();
  }
}
