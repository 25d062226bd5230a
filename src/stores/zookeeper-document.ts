import type { Logger } from '../observability/logger.js';
import { StoreUnavailableError, type DocumentStore, type PutOutcome, type StoredText, type StoreWatchHandlers } from './document-store.js';
import { acquireZookeeper, CreateMode, ZK, zkCode, type SharedZookeeper } from './zookeeper-client.js';

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

/** ZooKeeper's default jute.maxbuffer: a znode's data is refused above it. */
export const ZK_MAX_DATA = 1024 * 1024 - 1024;

interface ZkStat {
  mzxid: Buffer;
  version: number;
}

/** The document at znode `path`; revision = the node's mzxid (hex). */
export class ZookeeperDocumentStore implements DocumentStore {
  readonly origin: string;
  private readonly zk: SharedZookeeper;
  private unlisten: (() => void) | undefined;
  private closed = false;
  constructor(
    readonly options: ZookeeperDocumentOptions,
    readonly logger: Logger,
  ) {
    this.origin = `zookeeper://${options.servers[0]}${options.path}`;
    this.zk = acquireZookeeper(options.servers, options.sessionTimeout, options.timeout);
  }

  private async read(): Promise<{ data: Buffer | undefined; stat: ZkStat } | undefined> {
    try {
      return await this.zk.call<{ data: Buffer | undefined; stat: ZkStat }>((c, cb) => c.getData(this.options.path, (err, data, stat) => cb(err, { data, stat: stat as unknown as ZkStat })));
    } catch (err) {
      if (zkCode(err) === ZK.NO_NODE) return undefined;
      throw unavailable(err);
    }
  }

  async get(): Promise<StoredText | undefined> {
    const r = await this.read();
    return r && { text: r.data ? r.data.toString('utf8') : '', revision: r.stat.mzxid.toString('hex') };
  }

  async put(text: string, ifRevision: string | null | undefined): Promise<PutOutcome> {
    const data = Buffer.from(text, 'utf8');
    if (data.length > ZK_MAX_DATA) throw new Error(`the document is ${data.length} bytes: ZooKeeper refuses znode data over ${ZK_MAX_DATA} bytes (jute.maxbuffer)`);
    const path = this.options.path;
    try {
      if (ifRevision === null) {
        // Create-only: the parents are made first (mkdirp keeps existing ones), so only the node itself can conflict.
        const parent = path.slice(0, path.lastIndexOf('/'));
        if (parent !== '') await this.zk.call((c, cb) => c.mkdirp(parent, CreateMode.PERSISTENT, (e) => cb(e)));
        await this.zk.call((c, cb) => c.create(path, data, CreateMode.PERSISTENT, (e) => cb(e)));
      } else {
        const cur = await this.read();
        if (ifRevision !== undefined) {
          if (!cur || cur.stat.mzxid.toString('hex') !== ifRevision) return { ok: false, reason: 'stale', revision: cur?.stat.mzxid.toString('hex') };
        }
        if (cur) {
          await this.zk.call((c, cb) => c.setData(path, data, ifRevision === undefined ? -1 : cur.stat.version, (e) => cb(e)));
        } else {
          await this.zk.call((c, cb) => c.mkdirp(path, data, CreateMode.PERSISTENT, (e) => cb(e)));
          // mkdirp leaves an existing node's data alone: set it in case it raced.
          await this.zk.call((c, cb) => c.setData(path, data, -1, (e) => cb(e)));
        }
      }
    } catch (err) {
      const code = zkCode(err);
      if (code === ZK.NODE_EXISTS || code === ZK.BAD_VERSION || code === ZK.NO_NODE) {
        const now = await this.read();
        return { ok: false, reason: 'stale', revision: now?.stat.mzxid.toString('hex') };
      }
      throw unavailable(err);
    }
    const after = await this.read();
    return { ok: true, revision: after ? after.stat.mzxid.toString('hex') : '' };
  }

  watch(handlers: StoreWatchHandlers): void {
    if (this.unlisten || this.closed) return;
    const arm = () => {
      if (this.closed) return;
      const client = this.zk.client;
      // exists() leaves a watch whether or not the node exists (getData fails on an absent node).
      client.exists(
        this.options.path,
        () => {
          if (this.closed || client !== this.zk.client) return;
          arm();
          handlers.onChange();
        },
        () => undefined,
      );
    };
    let down = false;
    this.unlisten = this.zk.listen({
      onConnected: () => {
        if (down) handlers.onConnection(true);
        down = false;
        arm();
        handlers.onChange();
      },
      onNewSession: () => {
        if (down) handlers.onConnection(true);
        down = false;
        arm();
        handlers.onChange();
      },
      onDisconnected: (reason) => {
        if (!down) handlers.onConnection(false, reason);
        down = true;
      },
    });
    if (this.zk.connected) arm();
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.unlisten?.();
    this.zk.release();
    return Promise.resolve();
  }
}

function unavailable(err: unknown): Error {
  if (err instanceof StoreUnavailableError) return err;
  return new StoreUnavailableError(`ZooKeeper: ${err instanceof Error ? err.message : String(err)}`);
}
