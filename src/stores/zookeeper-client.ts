import zookeeper from 'node-zookeeper-client';
import { StoreUnavailableError } from './document-store.js';

/** What a user of a shared session is told. */
export interface ZookeeperListener {
  /** Connected (again) on the same session: one-shot watches may have missed events: re-arm. */
  onConnected?(): void;
  /** Lost the connection; the session may still be alive. */
  onDisconnected?(reason: string): void;
  /** The session expired and a new one was made: re-arm watches, re-make ephemeral nodes. */
  onNewSession?(): void;
}

/**
 * One node-zookeeper-client session per servers list, shared and
 * reference-counted. After an 'expired' event the old client is dead:
 * a new one is made and listeners are told (onNewSession).
 */
export class SharedZookeeper {
  client: zookeeper.Client;
  connected = false;
  private refs = 0;
  private closed = false;
  private readonly listeners = new Set<ZookeeperListener>();
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly key: string,
    readonly servers: readonly string[],
    readonly sessionTimeout: number,
    readonly timeoutMs: number,
  ) {
    this.client = this.make(false);
  }

  private make(renewed: boolean): zookeeper.Client {
    const client = zookeeper.createClient(this.servers.join(','), { sessionTimeout: this.sessionTimeout, spinDelay: 200, retries: 0 });
    client.on('connected', () => {
      if (client !== this.client) return;
      this.connected = true;
      for (const w of [...this.waiters]) w();
      for (const l of [...this.listeners]) (renewed ? l.onNewSession : l.onConnected)?.call(l);
      renewed = false;
    });
    client.on('disconnected', () => {
      if (client !== this.client) return;
      this.connected = false;
      for (const l of [...this.listeners]) l.onDisconnected?.(`lost the connection to ZooKeeper ${this.servers.join(',')}`);
    });
    client.on('expired', () => {
      if (client !== this.client || this.closed) return;
      this.connected = false;
      client.close();
      for (const l of [...this.listeners]) l.onDisconnected?.('the ZooKeeper session expired');
      this.client = this.make(true);
    });
    client.connect();
    return client;
  }

  /** Resolves when connected; rejects with StoreUnavailableError after the timeout. */
  ready(): Promise<zookeeper.Client> {
    if (this.connected) return Promise.resolve(this.client);
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve(this.client);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(done);
        reject(new StoreUnavailableError(`ZooKeeper ${this.servers.join(',')} did not answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.waiters.add(done);
    });
  }

  /**
   * Runs one request on the connected client, bounded by the timeout
   * (node-zookeeper-client queues requests while disconnected).
   */
  async call<T>(op: (client: zookeeper.Client, cb: (err: unknown, value?: T) => void) => void): Promise<T> {
    const started = Date.now();
    const client = await this.ready();
    const left = Math.max(1, this.timeoutMs - (Date.now() - started));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new StoreUnavailableError(`ZooKeeper ${this.servers.join(',')} did not answer within ${this.timeoutMs} ms`)), left);
      op(client, (err, value) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(value as T);
      });
    });
  }

  listen(l: ZookeeperListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  retain(): void {
    this.refs++;
  }

  /** Drops one reference; the last one closes the client. */
  release(): void {
    if (--this.refs > 0) return;
    this.closed = true;
    sessions.delete(this.key);
    this.client.close();
  }
}

const sessions = new Map<string, SharedZookeeper>();

/** The shared session for these servers (made on first use); call release() once done. */
export function acquireZookeeper(servers: readonly string[], sessionTimeout: number, timeoutMs: number): SharedZookeeper {
  const key = `${servers.join(',')}|${sessionTimeout}`;
  let s = sessions.get(key);
  if (!s) {
    s = new SharedZookeeper(key, servers, sessionTimeout, timeoutMs);
    sessions.set(key, s);
  }
  s.retain();
  return s;
}

/** The code of a ZooKeeper error (zookeeper.Exception), or undefined. */
export function zkCode(err: unknown): number | undefined {
  return err instanceof zookeeper.Exception ? err.getCode() : undefined;
}

export const ZK = zookeeper.Exception;
export const CreateMode = zookeeper.CreateMode;
