import type { Logger } from '../observability/logger.js';
import type { DocumentStore, PutOutcome, StoredText, StoreWatchHandlers } from './document-store.js';

export interface ZookeeperDocumentOptions {
  /** host:port of each server. */
  readonly servers: readonly string[];
  /** Session timeout asked of the ensemble (ms). */
  readonly sessionTimeout: number;
  /** The znode holding the document: `${path}/config`. */
  readonly path: string;
  /** Longest wait for a connection or one request (ms). */
  readonly timeout: number;
}

/** SKELETON: implemented in its own change. */
export class ZookeeperDocumentStore implements DocumentStore {
  readonly origin: string;
  constructor(
    readonly options: ZookeeperDocumentOptions,
    readonly logger: Logger,
  ) {
    this.origin = `zookeeper://${options.servers[0]}${options.path}`;
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
