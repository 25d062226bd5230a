import type { ConfigError } from '../config/errors.js';
import { readConfigMapping, validateConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { readYaml } from '../config/yaml-document.js';
import type { Logger } from '../observability/logger.js';
import { StoreUnavailableError, type DocumentStore, type StoredText } from '../stores/document-store.js';
import { checkConfigFiles } from './check-files.js';
import { errorLines, type ConfigSource, type ConfigSubscriber, type SourceHealth, type StoredDocument, type WriteOutcome } from './config-source.js';
import { renderDocument } from './document-text.js';
import { checkStoredShape, mergeDocuments, storedPart } from './shared-sections.js';
import { readCache, writeCache } from './store-cache.js';

/** The revision the admin API sees while the store holds no document (etcd and ZooKeeper never use 0 for a key that exists). */
export const ABSENT_REVISION = '0';

type Raw = Record<string, unknown>;

/** How often an unreachable store is read again. */
const RETRY_MS = 2_000;

/** Reloads the watch causes: the same text as what runs applies nothing (SIGHUP and writes elsewhere always apply). */
const WATCH_REASONS: ReadonlySet<string> = new Set(['store changed', 'store reachable again']);

/** What `initial()` found to start from. */
export type InitialDocument =
  | { readonly ok: true; readonly config: Config; readonly from: 'store' | 'cache' | 'file'; readonly revision: string; readonly note: string }
  | { readonly ok: false; readonly errors: ConfigError[] };

/**
 * The config source of `configSource: etcd | zookeeper`: the local file
 * (listeners, admin, log…) merged with the store's document (upstreams,
 * routes, consumers, certificates; see shared-sections.ts), watched.
 *
 * Contract, on top of ConfigSource's:
 * - Every store change goes through validate → subscriber (compile, swap);
 *   a document that fails is refused with its reasons, logged once, and
 *   the running config keeps serving.
 * - Losing the store never stops traffic: the last applied document keeps
 *   serving, health turns `degraded`, one log line each way, and when the
 *   store answers again the document is read again (a change missed while
 *   away is applied then).
 * - A deleted document (or a store that lost its data) is not applied as
 *   "no routes": the last good config keeps serving and health says why.
 * - Each applied store document is written to the cache file, atomically;
 *   a start while the store is down uses it (`initial()`).
 */
export class StoreSource implements ConfigSource {
  readonly origin: string;
  private subscriber: ConfigSubscriber | undefined;
  /** The store text last applied (undefined: none yet, the file's own sections run) and its revision. */
  private applied: StoredText | undefined;
  private reachable = true;
  /** Why the store is unreachable, since when. */
  private down: { reason: string; since: string } | undefined;
  /** Why the last document was refused, or is missing; cleared by the next applied one. */
  private lastError: string | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private cacheWarned = false;
  /** While the store is unreachable: reads it again every RETRY_MS (besides the store's own reconnects). */
  private retry: NodeJS.Timeout | undefined;
  /** Each refused document, before or at apply (metrics). */
  onInvalid: ((errors: readonly ConfigError[]) => void) | undefined;

  constructor(
    /** The local config file (absolute). */
    readonly file: string,
    private readonly store: DocumentStore,
    private readonly cacheFile: string,
    private readonly logger: Logger,
  ) {
    this.origin = store.origin;
  }

  subscribe(subscriber: ConfigSubscriber): void {
    this.subscriber = subscriber;
  }

  /**
   * The config to start with (the caller applies it, then calls `watch()`):
   * the store's document merged with the file; while the store cannot be
   * reached, the cached one; with no document in the store yet, the file's
   * own sections. Fails when the store is down and there is no usable cache,
   * or when the document is invalid.
   */
  async initial(): Promise<InitialDocument> {
    const local = this.readLocal();
    if ('errors' in local) return { ok: false, errors: local.errors };
    let stored: StoredText | undefined;
    let from: 'store' | 'cache' = 'store';
    let note: string;
    try {
      stored = await this.store.get();
      note = stored === undefined ? `${this.origin} holds no document yet: serving the sections of ${this.file}` : `shared config read from ${this.origin} (revision ${stored.revision})`;
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err;
      const cached = readCache(this.cacheFile, this.origin);
      if ('error' in cached) return { ok: false, errors: [{ path: 'configSource', message: `cannot reach ${this.origin} (${err.message}) and ${cached.error}: start once with the store reachable` }] };
      this.markDown(err.message);
      stored = { text: cached.text, revision: cached.revision };
      from = 'cache';
      note = `${this.origin} is unreachable (${err.message}): starting from the cached document of ${cached.savedAt} (revision ${cached.revision}, ${this.cacheFile})`;
    }
    const built = this.build(local.raw, stored);
    if (!built.ok) return { ok: false, errors: built.errors.map((e) => ({ ...e, message: `${e.message} (in ${stored === undefined ? this.file : this.origin})` })) };
    this.applied = stored;
    return { ok: true, config: built.config, from: stored === undefined ? 'file' : from, revision: stored?.revision ?? ABSENT_REVISION, note };
  }

  /** Starts watching the store, and caches the initial document when it came from the store (call it once that applied). */
  watch(): void {
    if (this.applied !== undefined && this.reachable) this.remember(this.applied);
    this.store.watch({
      onChange: () => void this.reload('store changed'),
      onConnection: (up, reason) => {
        if (up) this.markUp(true);
        else this.markDown(reason ?? 'unreachable');
      },
    });
  }

  reload(reason: string): Promise<boolean> {
    return this.serialized(() => this.reloadNow(reason));
  }

  health(): SourceHealth {
    const state = this.down !== undefined ? 'degraded' : this.lastError !== undefined ? 'error' : 'ok';
    const error = this.down !== undefined ? `${this.origin} is unreachable since ${this.down.since} (${this.down.reason}); serving the last good config` : this.lastError;
    return { origin: this.origin, state, revision: this.applied?.revision ?? ABSENT_REVISION, ...(error !== undefined ? { error } : {}) };
  }

  async read(): Promise<StoredDocument | ConfigError> {
    const local = this.readLocal();
    if ('errors' in local) return local.errors[0]!;
    let stored = this.applied;
    try {
      stored = await this.store.get();
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err;
      // Unreachable: the document that runs.
    }
    const storedRaw = stored === undefined ? undefined : this.parseStored(stored.text);
    if (storedRaw !== undefined && 'errors' in storedRaw) return storedRaw.errors[0]!;
    return { raw: mergeDocuments(local.raw, storedRaw?.raw), revision: stored?.revision ?? ABSENT_REVISION };
  }

  write(raw: Raw, ifRevision: string | undefined, reason: string): Promise<WriteOutcome> {
    return this.serialized(() => this.writeNow(raw, ifRevision, reason));
  }

  close(): void {
    this.closed = true;
    clearInterval(this.retry);
    void this.store.close();
  }

  /** Validate, apply, then store with compare-and-set; if storing fails, the previous document is applied again. */
  private async writeNow(raw: Raw, ifRevision: string | undefined, reason: string): Promise<WriteOutcome> {
    const local = this.readLocal();
    if ('errors' in local) return { ok: false, reason: 'failed', error: local.errors[0]!.message };
    const split = storedPart(raw, local.raw);
    if (!split.ok) {
      return { ok: false, reason: 'read-only', error: `${split.sections.join(', ')} ${split.sections.length === 1 ? 'comes' : 'come'} from ${this.file}, not from ${this.origin}: change ${split.sections.length === 1 ? 'it' : 'them'} there` };
    }
    let current: StoredText | undefined;
    try {
      current = await this.store.get();
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err;
      return { ok: false, reason: 'failed', error: `cannot reach ${this.origin}: ${err.message}` };
    }
    const currentRevision = current?.revision ?? ABSENT_REVISION;
    if (ifRevision !== undefined && ifRevision !== currentRevision) {
      return { ok: false, reason: 'stale', error: `the config is at revision ${currentRevision}, not ${ifRevision}: read it again and retry` };
    }
    const text = renderDocument(current !== undefined && current.text.trimStart().startsWith('{') ? 'config.json' : 'config.yaml', current?.text ?? '', split.stored);
    const next: StoredText = { text, revision: currentRevision };
    const built = this.build(local.raw, next);
    if (!built.ok) return { ok: false, reason: 'invalid', error: 'the document is not a valid config', errors: built.errors };
    if (this.closed || this.subscriber === undefined) return { ok: false, reason: 'refused', error: 'the gateway is stopping' };
    const applied = await this.subscriber({ config: built.config, revision: currentRevision, origin: this.origin, reason });
    if (!applied.ok) return { ok: false, reason: 'refused', error: applied.error };
    let why: string;
    try {
      const put = await this.store.put(text, current === undefined ? null : current.revision);
      if (put.ok) {
        this.remember({ text, revision: put.revision });
        this.logger.info({ store: this.origin, reason, revision: put.revision }, 'config changed and stored');
        return { ok: true, revision: put.revision, version: applied.version };
      }
      why = `${this.origin} changed while this write was applied (now at revision ${put.revision ?? ABSENT_REVISION}): read it again and retry`;
    } catch (err) {
      why = `cannot store the document in ${this.origin}: ${(err as Error).message}`;
    }
    // Not stored: run what the store holds (or held) again.
    const previous = this.applied === undefined ? this.build(local.raw, undefined) : this.build(local.raw, this.applied);
    if (previous.ok) await this.subscriber({ config: previous.config, revision: this.applied?.revision ?? ABSENT_REVISION, origin: this.origin, reason: `${reason} (rolled back)` });
    this.logger.error({ store: this.origin, reason, error: why }, 'config change not stored; the previous config was applied again');
    return { ok: false, reason: why.includes('changed while') ? 'stale' : 'failed', error: why };
  }

  private async reloadNow(reason: string): Promise<boolean> {
    try {
      const local = this.readLocal();
      if ('errors' in local) return this.refuse(reason, local.errors, this.file);
      let stored: StoredText | undefined;
      try {
        stored = await this.store.get();
      } catch (err) {
        if (!(err instanceof StoreUnavailableError)) throw err;
        this.markDown(err.message);
        return false;
      }
      if (this.closed) return false;
      this.markUp(false);
      if (stored === undefined) {
        if (this.applied === undefined) return true;
        // Deleted, or a store that lost its data: keep serving (see the class contract).
        const why = `the document at ${this.origin} is missing (deleted, or the store lost its data); serving the last good config (revision ${this.applied.revision}): restore it with portico config push`;
        if (this.lastError !== why) this.logger.error({ store: this.origin, reason }, why);
        this.lastError = why;
        return false;
      }
      // A watch event for what runs (our own write, a re-armed watch) applies nothing; SIGHUP always does (the file may have changed).
      if (WATCH_REASONS.has(reason) && this.applied !== undefined && this.applied.text === stored.text) {
        // The store holds what runs again (after a refused or deleted document): nothing to apply, nothing wrong.
        this.applied = stored;
        this.lastError = undefined;
        return true;
      }
      const built = this.build(local.raw, stored);
      if (!built.ok) {
        this.onInvalid?.(built.errors);
        return this.refuse(reason, built.errors, this.origin);
      }
      if (this.subscriber === undefined) return false;
      const result = await this.subscriber({ config: built.config, revision: stored.revision, origin: this.origin, reason });
      if (!result.ok) return this.refuse(reason, [{ path: '(apply)', message: result.error }], this.origin);
      this.remember(stored);
      this.logger.info({ store: this.origin, reason, revision: stored.revision }, 'config applied from the store');
      return true;
    } catch (err) {
      // Not expected (every step reports rather than throws), but a reload must never end the process.
      this.lastError = (err as Error).message;
      this.logger.error({ store: this.origin, reason, error: (err as Error).message }, 'config rejected; keeping the running config');
      return false;
    }
  }

  /** The local file's document, parsed (not validated: it is validated merged). */
  private readLocal(): { raw: Raw } | { errors: ConfigError[] } {
    const read = readConfigMapping(this.file);
    return 'error' in read ? { errors: [read.error] } : read;
  }

  private parseStored(text: string): { raw: Raw } | { errors: ConfigError[] } {
    const parsed = readYaml(text);
    if (!parsed.ok) return { errors: [{ path: '(document)', ...parsed.problem }] };
    const raw = parsed.data ?? {};
    const shape = checkStoredShape(raw);
    return shape.length > 0 ? { errors: shape } : { raw: raw as Raw };
  }

  /** The merged document, validated and its files checked. */
  private build(local: Raw, stored: StoredText | undefined): { ok: true; config: Config } | { ok: false; errors: ConfigError[] } {
    const storedRaw = stored === undefined ? undefined : this.parseStored(stored.text);
    if (storedRaw !== undefined && 'errors' in storedRaw) return { ok: false, errors: storedRaw.errors };
    const loaded = validateConfig(mergeDocuments(local, storedRaw?.raw));
    if (!loaded.ok) return loaded;
    const fileErrors = checkConfigFiles(loaded.config);
    return fileErrors.length > 0 ? { ok: false, errors: fileErrors } : loaded;
  }

  /** Records an applied store document and caches it. */
  private remember(stored: StoredText): void {
    this.applied = stored;
    this.lastError = undefined;
    try {
      writeCache(this.cacheFile, { origin: this.origin, revision: stored.revision, text: stored.text, savedAt: new Date().toISOString() });
      this.cacheWarned = false;
    } catch (err) {
      if (!this.cacheWarned) this.logger.warn({ cache: this.cacheFile, error: (err as Error).message }, 'cannot write the config cache; a start while the store is down will fail');
      this.cacheWarned = true;
    }
  }

  private refuse(reason: string, errors: readonly ConfigError[], where: string): false {
    const lines = errorLines(where, errors);
    this.lastError = lines.join('; ');
    this.logger.error({ store: this.origin, reason, errors: lines }, 'config rejected; keeping the running config');
    return false;
  }

  private markDown(reason: string): void {
    if (!this.reachable) return;
    this.reachable = false;
    this.down = { reason, since: new Date().toISOString() };
    this.logger.warn({ store: this.origin, error: reason, revision: this.applied?.revision }, 'config store unreachable; serving the last good config');
    clearInterval(this.retry);
    let trying = false;
    this.retry = setInterval(() => {
      // One read at a time: a read may take the whole timeout while the store is down.
      if (this.closed || trying) return;
      trying = true;
      void this.reload('store reachable again').finally(() => (trying = false));
    }, RETRY_MS);
    this.retry.unref();
  }

  /** The store answers again: logged once; `reread` reads the document again (a change may have been missed). */
  private markUp(reread: boolean): void {
    if (this.reachable) return;
    this.reachable = true;
    clearInterval(this.retry);
    const since = this.down?.since;
    this.down = undefined;
    this.logger.info({ store: this.origin, downSince: since }, 'config store reachable again');
    if (reread) void this.reload('store reachable again');
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

