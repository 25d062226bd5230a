import type { Watcher } from 'etcd3';
import type { EtcdHandle } from './etcd-client.js';

export interface EtcdWatchHandlers {
  /** Something under the watched key or prefix changed, or the watch was re-made (read again). */
  onChange(): void;
  /** etcd reachability changed (told once each way). */
  onConnection(up: boolean, reason?: string): void;
}

/**
 * A watch on one key or one prefix that keeps itself alive until `close()`.
 *
 * etcd3 re-attaches a watch after a lost stream from the last revision it
 * saw; that misses nothing after a plain restart, but after a compaction
 * etcd cancels the watch, and after a restart with a wiped data folder the
 * revisions start again from 1, so a watch from an old revision would see
 * nothing until the counter caught up. So after every loss the watch is
 * made anew from the current revision and `onChange` is called: the caller
 * reads the current state, and nothing in between is missed.
 */
export class EtcdWatch {
  private watcher: Watcher | undefined;
  private down = false;
  private closed = false;
  private rearm: NodeJS.Timeout | undefined;

  constructor(
    private readonly etcd: EtcdHandle,
    private readonly target: { readonly key: string } | { readonly prefix: string },
    private readonly handlers: EtcdWatchHandlers,
  ) {}

  start(): void {
    this.arm();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.rearm);
    const w = this.watcher;
    this.watcher = undefined;
    void w?.cancel().catch(() => undefined);
  }

  /**
   * Attaches a watcher at once (etcd3 connects it in the background and
   * reconnects it with its backoff); its first `connected` means the store
   * answers. The watcher object is always held here, so close() detaches it
   * whatever state it is in (an orphaned watcher would keep etcd3 retrying).
   */
  private arm(): void {
    if (this.closed) return;
    const builder = this.etcd.client.watch();
    const w = ('key' in this.target ? builder.key(this.target.key) : builder.prefix(this.target.prefix)).watcher();
    this.watcher = w;
    let connected = false;
    w.on('connected', () => {
      if (!connected) {
        connected = true;
        this.setUp();
        this.handlers.onChange();
      } else if (this.down) {
        // Back after a loss: a fresh watch from now (see the class comment), then read again.
        this.replace();
      }
    });
    w.on('put', () => this.handlers.onChange());
    w.on('delete', () => this.handlers.onChange());
    w.on('disconnected', (err) => this.setDown(err.message));
    // etcd cancelled the watch (compacted past its revision…): make a new one.
    w.on('error', () => this.replace());
  }

  private replace(): void {
    const w = this.watcher;
    this.watcher = undefined;
    void w?.cancel().catch(() => undefined);
    this.again(0);
  }

  private again(ms: number): void {
    if (this.closed) return;
    clearTimeout(this.rearm);
    this.rearm = setTimeout(() => this.arm(), ms);
    this.rearm.unref();
  }

  private setDown(reason: string): void {
    if (this.down || this.closed) return;
    this.down = true;
    this.handlers.onConnection(false, reason);
  }

  private setUp(): void {
    if (!this.down) return;
    this.down = false;
    this.handlers.onConnection(true);
  }
}
