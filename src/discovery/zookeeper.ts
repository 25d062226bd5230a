import type { DiscoveryConfig } from '../config/schemas/discovery.js';
import type { Logger } from '../observability/logger.js';
import { acquireZookeeper, ZK, zkCode, type SharedZookeeper } from '../stores/zookeeper-client.js';
import type { DiscoveryBackend, DiscoveryUpdate, SkippedEntry } from './backend.js';
import { parseDiscoveredEntry, type DiscoveredTarget } from './entry.js';

/** Changes arriving within this window are read once. */
const DEBOUNCE_MS = 30;
/** Longest wait for one request while reading the set (ms). */
const REQUEST_TIMEOUT_MS = 5_000;
/** Retry delay after a failed read (path absent, error). */
const RETRY_MS = 500;

/**
 * Each child of `path` is a target: its name `host:port`, its data (optional)
 * `host:port`, `host:port weight` or JSON {"address","weight"}. The children
 * are watched (one-shot getChildren watches, re-armed on every read) and the
 * full set is read again after each change, reconnect and session expiry.
 */
export class ZookeeperDiscovery implements DiscoveryBackend {
  readonly type = 'zookeeper';
  readonly origin: string;
  private zk: SharedZookeeper | undefined;
  private unlisten: (() => void) | undefined;
  private onUpdate: ((u: DiscoveryUpdate) => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reading = false;
  private again = false;
  private closed = false;
  constructor(
    readonly config: Extract<DiscoveryConfig, { type: 'zookeeper' }>,
    readonly logger: Logger,
  ) {
    this.origin = `zookeeper://${config.servers[0]}${config.path}`;
  }

  start(onUpdate: (update: DiscoveryUpdate) => void): void {
    if (this.zk || this.closed) return;
    this.onUpdate = onUpdate;
    this.zk = acquireZookeeper(this.config.servers, this.config.sessionTimeout, REQUEST_TIMEOUT_MS);
    this.unlisten = this.zk.listen({
      onConnected: () => this.schedule(0),
      onNewSession: () => this.schedule(0),
      onDisconnected: (reason) => this.report({ ok: false, error: reason }),
    });
    this.schedule(0);
  }

  private report(u: DiscoveryUpdate): void {
    if (!this.closed) this.onUpdate?.(u);
  }

  /** When the pending read (timer) fires. */
  private due = 0;

  private schedule(ms: number): void {
    if (this.closed) return;
    // A read already due sooner stands; one due later is brought forward.
    if (this.timer !== undefined) {
      if (this.due <= Date.now() + ms) return;
      clearTimeout(this.timer);
    }
    this.due = Date.now() + ms;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.read();
    }, ms);
  }

  private async read(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = true;
    try {
      this.report(await this.readOnce());
    } catch (err) {
      this.report({ ok: false, error: describe(err, this.config.path) });
      // A missing path sets no child watch: exists() does, so its creation is seen at once (the retry stays as a backstop).
      if (zkCode(err) === ZK.NO_NODE && this.zk !== undefined) this.zk.client.exists(this.config.path, () => this.schedule(0), () => undefined);
      this.schedule(RETRY_MS);
    } finally {
      this.reading = false;
      if (this.again) {
        this.again = false;
        this.schedule(DEBOUNCE_MS);
      }
    }
  }

  private async readOnce(): Promise<DiscoveryUpdate> {
    const zk = this.zk!;
    const path = this.config.path;
    const children = await zk.call<string[]>((c, cb) =>
      c.getChildren(
        path,
        () => this.schedule(DEBOUNCE_MS),
        (e, kids) => cb(e, kids),
      ),
    );
    const targets: DiscoveredTarget[] = [];
    const skipped: SkippedEntry[] = [];
    const datas = await Promise.all(
      children.sort().map(async (name) => {
        try {
          return await zk.call<Buffer | undefined>((c, cb) => c.getData(`${path}/${name}`, (e, d) => cb(e, d)));
        } catch (err) {
          if (zkCode(err) === ZK.NO_NODE) return null; // left between the two reads
          throw err;
        }
      }),
    );
    children.forEach((name, i) => {
      const data = datas[i];
      if (data === null) return;
      const r = parseDiscoveredEntry(name, data?.toString('utf8'));
      if ('error' in r) skipped.push({ entry: `${path}/${name}`, reason: r.error });
      else targets.push(r);
    });
    return { ok: true, targets, skipped };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.unlisten?.();
    this.zk?.release();
  }
}

function describe(err: unknown, path: string): string {
  if (zkCode(err) === ZK.NO_NODE) return `the path ${path} does not exist`;
  return err instanceof Error ? err.message : String(err);
}
