import { acquireZookeeper, CreateMode, ZK, zkCode, type SharedZookeeper } from '../stores/zookeeper-client.js';
import type { Registration, RegistrationSpec } from './registration.js';

/** Where a ZooKeeper registration goes: an ephemeral child `host:port` of `path`. */
export interface ZookeeperRegistry {
  readonly servers: readonly string[];
  readonly path: string;
  /** Session timeout asked of the ensemble (ms); default 10000. */
  readonly sessionTimeout?: number;
}

interface ZkStat {
  ephemeralOwner: Buffer;
}

/**
 * Registers `spec.address` as the EPHEMERAL znode `path/host:port` (data JSON
 * {"address","weight"}), making `path` (persistent) first if missing.
 * A node already there that is not owned by this session (a previous
 * session of this service not yet expired, or a stale entry for the same
 * address) is deleted and made again: the address is the identity, and
 * waiting for the old session to expire would hide a live service for up
 * to a session timeout. Re-made after a session expiry.
 */
export async function registerZookeeper(where: ZookeeperRegistry, spec: RegistrationSpec): Promise<Registration> {
  const timeout = spec.timeout ?? 5000;
  const zk = acquireZookeeper(where.servers, where.sessionTimeout ?? 10_000, timeout);
  const reg = new ZookeeperRegistration(zk, where, spec);
  try {
    await reg.make();
  } catch (err) {
    reg.dispose();
    throw err;
  }
  return reg;
}

class ZookeeperRegistration implements Registration {
  readonly origin: string;
  onChange: ((registered: boolean, why: string) => void) | undefined;
  private readonly node: string;
  private readonly data: Buffer;
  private present = false;
  private paused = false;
  private closed = false;
  private readonly unlisten: () => void;

  constructor(
    private readonly zk: SharedZookeeper,
    where: ZookeeperRegistry,
    spec: RegistrationSpec,
  ) {
    this.node = `${where.path.replace(/\/+$/, '')}/${spec.address}`;
    this.origin = `zookeeper://${where.servers[0]}${this.node}`;
    this.data = Buffer.from(JSON.stringify({ address: spec.address, weight: spec.weight ?? 1 }));
    this.unlisten = zk.listen({
      onNewSession: () => {
        this.set(false, 'the ZooKeeper session expired');
        if (!this.paused && !this.closed) this.remake();
      },
      onDisconnected: (reason) => {
        if (reason.includes('expired')) this.set(false, reason);
      },
    });
  }

  private remake(): void {
    this.make().catch(() => {
      if (!this.paused && !this.closed) setTimeout(() => this.remake(), 500).unref();
    });
  }

  private set(v: boolean, why: string): void {
    if (this.present === v) return;
    this.present = v;
    this.onChange?.(v, why);
  }

  async make(): Promise<void> {
    const parent = this.node.slice(0, this.node.lastIndexOf('/'));
    if (parent !== '') await this.zk.call((c, cb) => c.mkdirp(parent, CreateMode.PERSISTENT, (e) => cb(e)));
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await this.zk.call((c, cb) => c.create(this.node, this.data, CreateMode.EPHEMERAL, (e) => cb(e)));
        this.set(true, 'registered');
        return;
      } catch (err) {
        if (zkCode(err) !== ZK.NODE_EXISTS) throw err;
      }
      const stat = await this.zk
        .call<ZkStat | undefined>((c, cb) => c.exists(this.node, (e, s) => cb(e, s as unknown as ZkStat | undefined)))
        .catch(() => undefined);
      const ours = this.zk.client.getSessionId();
      if (stat && ours && stat.ephemeralOwner.equals(ours)) {
        this.set(true, 'registered');
        return;
      }
      await this.zk.call((c, cb) => c.remove(this.node, -1, (e) => cb(zkCode(e) === ZK.NO_NODE ? null : e))).catch(() => undefined);
    }
    throw new Error(`${this.node} exists and could not be replaced`);
  }

  registered(): boolean {
    return this.present;
  }

  private async remove(): Promise<void> {
    await this.zk.call((c, cb) => c.remove(this.node, -1, (e) => cb(zkCode(e) === ZK.NO_NODE ? null : e)));
    this.set(false, 'removed');
  }

  async pause(): Promise<void> {
    this.paused = true;
    await this.remove();
  }

  async resume(): Promise<void> {
    this.paused = false;
    await this.make();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.remove().catch(() => undefined);
    this.dispose();
  }

  dispose(): void {
    this.unlisten();
    this.zk.release();
  }
}
