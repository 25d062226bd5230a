import net from 'node:net';
import { parseHostPort } from '../net/address.js';
import { registerEtcd, type EtcdRegistry } from './register-etcd.js';
import { registerZookeeper, type ZookeeperRegistry } from './register-zookeeper.js';
import type { Registration } from './registration.js';

/** How to tell whether the registered service is up: an HTTP GET (2xx/3xx is up) or a TCP connect to its address. */
export type ServiceCheck = { readonly http: string } | { readonly tcp: true };

export interface RegisterServiceOptions {
  /** `host:port` the gateway reaches the service at. */
  readonly address: string;
  readonly weight?: number;
  /** Exactly one registry. */
  readonly zookeeper?: ZookeeperRegistry;
  readonly etcd?: EtcdRegistry;
  /** Longest wait for the registry (ms); default 5000. */
  readonly timeout?: number;
  /** While the check fails (`fall` times in a row), the entry is removed; it comes back after `rise` passes. */
  readonly healthCheck?: ServiceCheck & { readonly interval?: number; readonly timeout?: number; readonly rise?: number; readonly fall?: number };
  /** Told of each change: registered or not, and why. */
  readonly onChange?: (registered: boolean, why: string) => void;
}

/** A running registration (see registerService). */
export interface ServiceRegistration {
  readonly origin: string;
  /** Whether the entry exists now. */
  registered(): boolean;
  /** Removes the entry and stops checking; never rejects. */
  close(): Promise<void>;
}

/**
 * Registers a service for discovery and keeps the registration alive (a
 * ZooKeeper ephemeral node re-made after a session expiry, an etcd key
 * whose lease is kept alive) until `close()`. With `healthCheck`, the entry
 * exists only while the service passes it. Resolves once the entry was
 * made (or, when the first check fails, made and removed again); rejects
 * when the registry cannot be reached within the timeout.
 *
 * ```ts
 * const reg = await registerService({ address: '127.0.0.1:2003', zookeeper: { servers: ['127.0.0.1:2181'], path: '/real_server' } });
 * process.on('SIGTERM', () => void reg.close());
 * ```
 */
export async function registerService(options: RegisterServiceOptions): Promise<ServiceRegistration> {
  if ((options.zookeeper === undefined) === (options.etcd === undefined)) throw new TypeError('registerService needs exactly one of zookeeper and etcd');
  if (parseHostPort(options.address) === undefined) throw new TypeError(`address "${options.address}" is not host:port`);
  const spec = { address: options.address, weight: options.weight ?? 1, timeout: options.timeout ?? 5000 };
  const hc = options.healthCheck;
  const firstUp = hc === undefined ? true : await passes(hc, options.address);
  const reg: Registration = options.zookeeper !== undefined ? await registerZookeeper(options.zookeeper, spec) : await registerEtcd(options.etcd!, spec);
  reg.onChange = options.onChange;
  options.onChange?.(true, 'registered');
  if (hc === undefined) return { origin: reg.origin, registered: () => reg.registered(), close: () => reg.close() };

  const rise = hc.rise ?? 1;
  const fall = hc.fall ?? 2;
  let up = firstUp;
  let streak = 0;
  let closed = false;
  if (!up) await reg.pause().then(() => options.onChange?.(false, 'the first health check failed'));
  const tick = async (): Promise<void> => {
    const ok = await passes(hc, options.address);
    if (closed) return;
    streak = ok === up ? 0 : streak + 1;
    if (!ok && up && streak >= fall) {
      up = false;
      streak = 0;
      await reg.pause().catch(() => undefined);
      options.onChange?.(false, `the health check failed ${fall} times`);
    } else if (ok && !up && streak >= rise) {
      up = true;
      streak = 0;
      await reg.resume().catch(() => undefined);
      options.onChange?.(true, `the health check passed ${rise} times`);
    }
  };
  let running = Promise.resolve();
  const timer = setInterval(() => {
    running = running.then(tick);
  }, hc.interval ?? 2000);
  return {
    origin: reg.origin,
    registered: () => reg.registered(),
    close: async () => {
      closed = true;
      clearInterval(timer);
      await running;
      await reg.close();
    },
  };
}

/** One health check of the service; never rejects. */
function passes(check: ServiceCheck & { readonly timeout?: number }, address: string): Promise<boolean> {
  const timeout = check.timeout ?? 1000;
  if ('http' in check) {
    return fetch(check.http, { signal: AbortSignal.timeout(timeout), redirect: 'manual' }).then(
      async (res) => {
        await res.body?.cancel();
        return res.status >= 200 && res.status < 400;
      },
      () => false,
    );
  }
  const hp = parseHostPort(address)!;
  return new Promise((resolve) => {
    const s = net.connect({ host: hp.host, port: hp.port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeout);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}
