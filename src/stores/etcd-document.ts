import type { Watcher } from 'etcd3';
import type { Logger } from '../observability/logger.js';
import type { DocumentStore, PutOutcome, StoredText, StoreWatchHandlers } from './document-store.js';
import { acquireEtcd, type SharedEtcd } from './etcd-client.js';
import { EtcdKeyWatch } from './etcd-watch.js';

export interface EtcdDocumentOptions {
  readonly endpoints: readonly string[];
  /** The key holding the document: `${prefix}/config`. */
  readonly key: string;
  /** Longest wait for a connection or one request (ms). */
  readonly timeout: number;
}

/**
 * The config document in one etcd key. The revision is the key's
 * mod_revision. Compare-and-set is a txn: `If mod_revision == N` (a
 * revision), `If create_revision == 0` (null: absent). The watch is an
 * EtcdKeyWatch (an etcd watch for speed, a probe for outages, wipes and
 * compactions).
 */
export class EtcdDocumentStore implements DocumentStore {
  readonly origin: string;
  #etcd: SharedEtcd | undefined;
  #watch: EtcdKeyWatch | undefined;
  constructor(
    readonly options: EtcdDocumentOptions,
    readonly logger: Logger,
  ) {
    this.origin = `etcd://${options.endpoints[0]!.replace(/^https?:\/\//, '').replace(/\/$/, '')}${options.key}`;
  }

  #client(): SharedEtcd {
    this.#etcd ??= acquireEtcd(this.options.endpoints, this.options.timeout);
    return this.#etcd;
  }

  async get(): Promise<StoredText | undefined> {
    const etcd = this.#client();
    const res = await etcd.bounded('get', () => etcd.client.get(this.options.key).exec());
    const kv = res.kvs[0];
    if (kv === undefined) return undefined;
    return { text: kv.value.toString('utf8'), revision: kv.mod_revision };
  }

  async put(text: string, ifRevision: string | null | undefined): Promise<PutOutcome> {
    const etcd = this.#client();
    const key = this.options.key;
    if (ifRevision === undefined) {
      const res = await etcd.bounded('put', () => etcd.client.put(key).value(text).exec());
      return { ok: true, revision: res.header.revision };
    }
    const cmp = ifRevision === null ? etcd.client.if(key, 'Create', '==', 0) : etcd.client.if(key, 'Mod', '==', ifRevision);
    const res = await etcd.bounded('put', () => cmp.then(etcd.client.put(key).value(text)).else(etcd.client.get(key)).commit());
    if (res.succeeded) return { ok: true, revision: res.header.revision };
    const kv = res.responses[0]?.response_range?.kvs[0];
    return { ok: false, reason: 'stale', revision: kv?.mod_revision };
  }

  watch(handlers: StoreWatchHandlers): void {
    if (this.#watch !== undefined) return;
    this.#watch = new EtcdKeyWatch(this.#client(), this.options.key, false, this.logger, this.origin, {
      onChange: () => handlers.onChange(),
      onConnection: (up, reason) => handlers.onConnection(up, reason),
    });
  }

  close(): Promise<void> {
    this.#watch?.close();
    this.#watch = undefined;
    this.#etcd?.release();
    this.#etcd = undefined;
    return Promise.resolve();
  }
}

export type { Watcher };
