/**
 * A service's registration in a discovery registry (an ephemeral ZooKeeper
 * znode, an etcd key held by a lease), kept alive until `close()`.
 *
 * Contract for every registry:
 * - `register…()` resolves once the entry exists (rejects when the registry
 *   cannot be reached within its timeout, or the entry cannot be made);
 * - while open, the entry is kept: re-made after a ZooKeeper session
 *   expiry or a lost etcd lease, as soon as the registry answers again;
 * - `pause()` removes the entry (the service is down) and `resume()`
 *   makes it again, the connection staying open;
 * - `close()` removes the entry (best effort, bounded by the timeout) and
 *   closes the connection; it never rejects.
 */
export interface Registration {
  /** Where the entry lives: `zookeeper://127.0.0.1:2181/real_server/127.0.0.1:2003`. */
  readonly origin: string;
  /** Whether the entry exists now, as far as this process knows. */
  registered(): boolean;
  pause(): Promise<void>;
  resume(): Promise<void>;
  close(): Promise<void>;
  /** Called with each change of `registered()` (for the CLI's log lines). */
  onChange: ((registered: boolean, why: string) => void) | undefined;
}

/** What a service registers: its address, an optional weight, in what registry. */
export interface RegistrationSpec {
  /** `host:port` others reach the service at. */
  readonly address: string;
  /** 1 when absent. */
  readonly weight?: number;
  /** Longest wait for the registry (ms); default 5000. */
  readonly timeout?: number;
}
