import type { StoreConfigSource } from '../config/schemas/stores.js';
import type { Logger } from '../observability/logger.js';
import type { DocumentStore } from './document-store.js';
import { EtcdDocumentStore } from './etcd-document.js';
import { ZookeeperDocumentStore } from './zookeeper-document.js';

/** The key (etcd) or znode (ZooKeeper) under the prefix that holds the document. */
export const DOCUMENT_KEY = 'config';

/** Opens the store a `configSource` names, at its document key. */
export function openDocumentStore(source: StoreConfigSource, logger: Logger): DocumentStore {
  switch (source.type) {
    case 'etcd':
      return new EtcdDocumentStore({ endpoints: source.endpoints, key: `${source.prefix}/${DOCUMENT_KEY}`, timeout: source.timeout }, logger);
    case 'zookeeper':
      return new ZookeeperDocumentStore({ servers: source.servers, path: `${source.path}/${DOCUMENT_KEY}`, timeout: source.timeout, sessionTimeout: source.sessionTimeout }, logger);
  }
}
