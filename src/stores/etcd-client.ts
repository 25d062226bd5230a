import { ExponentialBackoff, handleWhen, noop, retry } from 'cockatiel';
import { Etcd3, isRecoverableError } from 'etcd3';
import { StoreUnavailableError } from './document-store.js';

/**
 * One etcd3 client per endpoints list in a process, shared by the config
 * source, discovery and registrations that name the same cluster, and
 * closed when the last of them lets go.
 *
 * Every call goes through `bounded`: etcd3 retries a failed call and waits
 * for a connection, so a call while etcd is down would otherwise take as
 * long as its retries; here it rejects with StoreUnavailableError after
 * `timeout` ms. Watch streams reconnect on their own with a backoff of
 * 100 ms doubling to 2 s (etcd3's default grows to 30 s: a fleet would
 * take that long to see a returning store).
 */
export interface EtcdHandle {
  readonly client: Etcd3;
  readonly timeout: number;
  /** `host:port,host:port`, for origins. */
  readonly hosts: string;
  /** Runs one call, bounded by the timeout. */
  bounded<T>(what: string, call: () => Promise<T>): Promise<T>;
  /** Lets go of the client (closed with the last handle). */
  release(): void;
}

const shared = new Map<string, { client: Etcd3; users: number }>();

export function acquireEtcd(endpoints: readonly string[], timeout: number): EtcdHandle {
  const key = `${endpoints.join(',')}|${timeout}`;
  let entry = shared.get(key);
  if (entry === undefined) {
    const client = new Etcd3({
      hosts: [...endpoints],
      dialTimeout: timeout,
      // Unary calls end at the deadline; streams (watches, keepalives) live on.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
      faultHandling: {
        // One try per host per call: `bounded` is the retry budget the caller sees.
        host: () => noop,
        global: retry(handleWhen(isRecoverableError), { maxAttempts: 1 }),
        // etcd3 takes the factory and calls next() itself (its typing names the product).
        watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 2000 }) as never,
      },
    });
    entry = { client, users: 0 };
    shared.set(key, entry);
  }
  entry.users++;
  const e = entry;
  let released = false;
  return {
    client: e.client,
    timeout,
    hosts: endpoints.map((u) => u.replace(/^https?:\/\//, '').replace(/\/$/, '')).join(','),
    bounded: (what, call) => bounded(what, call, timeout),
    release: () => {
      if (released) return;
      released = true;
      if (--e.users > 0) return;
      shared.delete(key);
      e.client.close();
    },
  };
}

/** `call()`, or StoreUnavailableError once `ms` passed or when it fails for want of etcd. */
export function bounded<T>(what: string, call: () => Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new StoreUnavailableError(`etcd did not answer ${what} within ${ms} ms`)), ms);
    let p: Promise<T>;
    try {
      p = call();
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: Error) => {
        clearTimeout(timer);
        reject(err instanceof StoreUnavailableError ? err : new StoreUnavailableError(`etcd ${what}: ${err.message}`));
      },
    );
  });
}
