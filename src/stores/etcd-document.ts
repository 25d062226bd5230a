import type { Logger } from '../observability/logger.js';
import type { DocumentStore, PutOutcome, StoredText, StoreWatchHandlers } from './document-store.js';

export interface EtcdDocumentOptions {
  readonly endpoints: readonly string[];
  /** The key holding the document: `${prefix}/config`. */
  readonly key: string;
  /** Longest wait for a connection or one request (ms). */
  readonly timeout: number;
}

/** SKELETON: implemented in its own change. */
export class EtcdDocumentStore implements DocumentStore {
  readonly origin: string;
  constructor(
    readonly options: EtcdDocumentOptions,
    readonly logger: Logger,
  ) {
    this.origin = `etcd://${options.endpoints[0]!.replace(/^https?:\/\//, '').replace(/\/$/, '')}${options.key}`;
  }
  get(): Promise<StoredText | undefined> {
    throw new Error('not built yet');
  }
  put(_text: string, _ifRevision: string | null | undefined): Promise<PutOutcome> {
    throw new Error('not built yet');
  }
  watch(_handlers: StoreWatchHandlers): void {
    throw new Error('not built yet');
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
