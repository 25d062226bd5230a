import { Etcd3 } from 'etcd3';
import { StoreUnavailableError } from './document-store.js';

/**
 * One Etcd3 client per endpoints list, shared by reference count: the
 * config source, discovery and registrations of one process use a single
 * connection. Every call goes through `bounded()`, so it settles within the
 * timeout even while etcd3 retries internally (cockatiel).
 */
export interface SharedEtcd {
  readonly client: Etcd3;
  readonly timeoutMs: number;
  /** Runs `call` and rejects with StoreUnavailableError once `timeoutMs` passes. */
  bounded<T>(what: string, call: () => Promise<T>): Promise<T>;
  /** Lets go of this reference; the client closes with the last one. */
  release(): void;
}

interface Entry {
  client: Etcd3;
  refs: number;
}

const clients = new Map<string, Entry>();

export function acquireEtcd(endpoints: readonly string[], timeoutMs: number): SharedEtcd {
  const name = endpoints.join(',');
  let entry = clients.get(name);
  if (entry === undefined) {
    entry = {
      client: new Etcd3({
        hosts: [...endpoints],
        dialTimeout: timeoutMs,
        // A channel of its own: grpc-js's global subchannel pool would keep
        // the sockets of a closed client open until its 10 s sweep.
        grpcOptions: { 'grpc.use_local_subchannel_pool': 1 },
        defaultCallOptions: (context) => (context.isStream ? {} : { deadline: new Date(Date.now() + timeoutMs) }),
      }),
      refs: 0,
    };
    clients.set(name, entry);
  }
  entry.refs++;
  const held = entry;
  let released = false;
  return {
    client: held.client,
    timeoutMs,
    bounded: (what, call) => bounded(what, timeoutMs, call),
    release: () => {
      if (released) return;
      released = true;
      held.refs--;
      if (held.refs === 0) {
        if (clients.get(name) === held) clients.delete(name);
        held.client.close();
      }
    },
  };
}

function bounded<T>(what: string, timeoutMs: number, call: () => Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new StoreUnavailableError(`etcd did not answer ${what} within ${timeoutMs} ms`)), timeoutMs);
    let started: Promise<T>;
    try {
      started = call();
    } catch (err) {
      clearTimeout(timer);
      reject(unavailable(what, err));
      return;
    }
    started.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(unavailable(what, err));
      },
    );
  });
}

function unavailable(what: string, err: unknown): StoreUnavailableError {
  if (err instanceof StoreUnavailableError) return err;
  return new StoreUnavailableError(`etcd ${what} failed: ${err instanceof Error ? err.message : String(err)}`);
}
