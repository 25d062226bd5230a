import type { Lease } from 'etcd3';
import { acquireEtcd } from '../stores/etcd-client.js';
import type { Registration, RegistrationSpec } from './registration.js';

/** Where an etcd registration goes: the key `prefix/host:port`, held by a lease. */
export interface EtcdRegistry {
  readonly endpoints: readonly string[];
  readonly prefix: string;
  /** The lease's TTL (ms, whole seconds at etcd); default 10000. */
  readonly ttl?: number;
}

/** Wait between attempts to re-make a lost entry (ms). */
const RETRY_MS = 500;

/**
 * Registers `spec.address` as the key `prefix/host:port`, value JSON
 * `{"address","weight"}`, attached to a lease of `ttl` that etcd3 keeps
 * alive. When etcd reports the lease lost (it expired while etcd was
 * unreachable, or etcd was wiped), a new lease is granted and the key put
 * again, retried every RETRY_MS until etcd answers. pause() revokes the
 * lease (the key goes with it); resume() grants a new one.
 */
export async function registerEtcd(where: EtcdRegistry, spec: RegistrationSpec): Promise<Registration> {
  const timeout = spec.timeout ?? 5_000;
  const ttlSeconds = Math.max(1, Math.round((where.ttl ?? 10_000) / 1000));
  const etcd = acquireEtcd(where.endpoints, timeout);
  const key = `${where.prefix}/${spec.address}`;
  const value = JSON.stringify({ address: spec.address, weight: spec.weight ?? 1 });
  const origin = `etcd://${where.endpoints[0]!.replace(/^https?:\/\//, '').replace(/\/$/, '')}${key}`;

  let lease: Lease | undefined;
  let registered = false;
  let wanted = true;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;

  const set = (now: boolean, why: string): void => {
    if (registered === now) return;
    registered = now;
    reg.onChange?.(now, why);
  };

  const drop = (): Lease | undefined => {
    const old = lease;
    lease = undefined;
    old?.removeAllListeners();
    old?.on('lost', () => {});
    return old;
  };

  const make = async (): Promise<void> => {
    drop()?.release();
    const l = etcd.client.lease(ttlSeconds);
    lease = l;
    l.on('lost', (err) => {
      if (lease !== l) return;
      drop()?.release();
      set(false, `lease lost: ${err.message}`);
      schedule();
    });
    try {
      await etcd.bounded('lease grant', () => l.grant());
      await etcd.bounded('put', () => l.put(key).value(value).exec());
    } catch (err) {
      if (lease === l) {
        drop();
        void l.revoke().catch(() => {});
      }
      throw err;
    }
    if (lease === l && wanted && !closed) set(true, 'registered');
  };

  const schedule = (): void => {
    if (closed || !wanted || retry !== undefined) return;
    retry = setTimeout(() => {
      retry = undefined;
      if (closed || !wanted || lease !== undefined) return;
      make().catch(() => schedule());
    }, RETRY_MS);
    retry.unref();
  };

  const unmake = async (): Promise<void> => {
    clearTimeout(retry);
    retry = undefined;
    const old = drop();
    // Both at once, so removing is bounded by one timeout, not two.
    await Promise.all([
      old === undefined ? undefined : etcd.bounded('lease revoke', () => old.revoke()).catch(() => {}),
      etcd.bounded('delete', () => etcd.client.delete().key(key).exec()).catch(() => {}),
    ]);
  };

  const reg: Registration = {
    origin,
    registered: () => registered,
    onChange: undefined,
    pause: async () => {
      wanted = false;
      await unmake();
      set(false, 'paused');
    },
    resume: async () => {
      if (closed || wanted) return;
      wanted = true;
      await make().catch((err: unknown) => {
        schedule();
        throw err;
      });
    },
    close: async () => {
      if (closed) return;
      closed = true;
      wanted = false;
      await unmake();
      set(false, 'closed');
      etcd.release();
    },
  };

  try {
    await make();
  } catch (err) {
    closed = true;
    etcd.release();
    throw err;
  }
  return reg;
}
