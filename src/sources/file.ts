import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConfigError } from '../config/errors.js';
import { loadConfigText, readConfigText, type LoadResult } from '../config/load.js';
import type { Logger } from '../observability/logger.js';
import { checkConfigFiles } from './check-files.js';
import { readYaml } from '../config/yaml-document.js';
import { errorLines, type ConfigSource, type ConfigSubscriber, type SourceHealth, type StoredDocument, type WriteOutcome } from './config-source.js';
import { renderDocument } from './document-text.js';
import { notWritable, writeFileAtomically } from './atomic-write.js';

/** A watched file is read again this long after the last change event… */
const DEBOUNCE_MS = 150;
/** …then re-read every SETTLE_MS until two reads agree, for at most SETTLE_TRIES reads. */
const SETTLE_MS = 100;
const SETTLE_TRIES = 20;

/**
 * Reads, parses (YAML, of which JSON is a subset), interpolates and validates
 * a config file, then checks the files it names. Never throws: every problem
 * comes back as a ConfigError.
 */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  const text = readConfigText(file);
  if (typeof text !== 'string') return { ok: false, errors: [text] };
  const loaded = loadConfigText(text, env);
  if (!loaded.ok) return loaded;
  // What start will load (certificates, keys, CA and log files) is checked too, as `nginx -t` does.
  const fileErrors = checkConfigFiles(loaded.config);
  return fileErrors.length > 0 ? { ok: false, errors: fileErrors } : loaded;
}


/** A document's revision at the file source: the first 16 hex digits of the SHA-256 of its text. */
export function textRevision(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/**
 * The file config source (a ConfigSource): reads the document and hands it
 * to its subscriber on `reload()` (SIGHUP) and, with `watch: true`, when the
 * file changes.
 *
 * Contract: `reload()` never rejects and never ends the process. Whatever
 * fails (reading, parsing, validating, the files the config names,
 * compiling, binding) is logged once with its reason and the running
 * snapshot keeps serving. A watched file is applied only once it has
 * settled (two reads SETTLE_MS apart agree), so a half-written file or a
 * truncate-then-write is never applied half-read; an empty document is
 * refused by validation (a config needs a listener).
 */
export class FileSource implements ConfigSource {
  readonly file: string;
  readonly origin: string;
  private readonly logger: Logger;
  private subscriber: ConfigSubscriber | undefined;
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private closed = false;
  /** The revision of the text this source last had applied. */
  private applied: string | undefined;
  /** Why the last read or reload failed; cleared by the next one that works. */
  private lastError: string | undefined;
  /** Reloads and writes run one at a time, in order. */
  private queue: Promise<unknown> = Promise.resolve();
  /**
   * Called for each document refused before it reaches the subscriber
   * (unreadable, invalid, naming files that fail their checks), e.g. to
   * count it as a refused reload; the subscriber's own refusals are its own.
   */
  onInvalid: ((errors: readonly ConfigError[]) => void) | undefined;

  constructor(file: string, logger: Logger) {
    this.file = resolve(file);
    this.origin = `file:${this.file}`;
    this.logger = logger;
  }

  subscribe(subscriber: ConfigSubscriber): void {
    this.subscriber = subscriber;
  }

  reload(reason: string): Promise<boolean> {
    return this.serialized(() => this.reloadNow(reason));
  }

  /**
   * Records that the file's current text is what runs (the CLI applied it
   * itself at start), so /ready reports its revision and a change event for
   * that same text applies nothing.
   */
  adopt(): void {
    const text = readConfigText(this.file);
    if (typeof text === 'string') this.applied = textRevision(text);
  }

  health(): SourceHealth {
    return { origin: this.origin, state: this.lastError === undefined ? 'ok' : 'error', revision: this.applied, ...(this.lastError !== undefined ? { error: this.lastError } : {}) };
  }

  async read(): Promise<StoredDocument | ConfigError> {
    const text = readConfigText(this.file);
    if (typeof text !== 'string') return text;
    const parsed = readYaml(text);
    if (!parsed.ok) return { path: '(document)', ...parsed.problem };
    const raw = parsed.data ?? {};
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { path: '(root)', message: 'the stored document is not a mapping' };
    return { raw: raw as Record<string, unknown>, revision: textRevision(text) };
  }

  write(raw: Record<string, unknown>, ifRevision: string | undefined, reason: string): Promise<WriteOutcome> {
    return this.serialized(() => this.writeNow(raw, ifRevision, reason));
  }

  /**
   * Validate, apply, then store: the file is replaced only once the new
   * document runs, and if storing fails the previous text is applied again.
   */
  private async writeNow(raw: Record<string, unknown>, ifRevision: string | undefined, reason: string): Promise<WriteOutcome> {
    const text = readConfigText(this.file);
    if (typeof text !== 'string') return { ok: false, reason: 'failed', error: text.message };
    const revision = textRevision(text);
    if (ifRevision !== undefined && ifRevision !== revision) {
      return { ok: false, reason: 'stale', error: `the config is at revision ${revision}, not ${ifRevision}: read it again and retry` };
    }
    const readOnly = notWritable(this.file);
    if (readOnly !== undefined) return { ok: false, reason: 'read-only', error: readOnly };
    const nextText = renderDocument(this.file, text, raw);
    const loaded = loadConfigText(nextText);
    if (!loaded.ok) return { ok: false, reason: 'invalid', error: 'the document is not a valid config', errors: loaded.errors };
    const fileErrors = checkConfigFiles(loaded.config);
    if (fileErrors.length > 0) return { ok: false, reason: 'invalid', error: 'the document names files that cannot be used', errors: fileErrors };
    if (this.closed || this.subscriber === undefined) return { ok: false, reason: 'refused', error: 'the gateway is stopping' };
    const nextRevision = textRevision(nextText);
    const applied = await this.subscriber({ config: loaded.config, revision: nextRevision, origin: this.origin, reason });
    if (!applied.ok) return { ok: false, reason: 'refused', error: applied.error };
    try {
      writeFileAtomically(this.file, nextText);
    } catch (err) {
      const why = `cannot write ${this.file}: ${(err as Error).message}`;
      const previous = loadConfigText(text);
      if (previous.ok) await this.subscriber({ config: previous.config, revision, origin: this.origin, reason: `${reason} (rolled back)` });
      this.logger.error({ file: this.file, reason, error: why }, 'config change not stored; the previous config was applied again');
      return { ok: false, reason: 'failed', error: why };
    }
    this.applied = nextRevision;
    this.lastError = undefined;
    this.setWatch(loaded.config.watch);
    this.logger.info({ file: this.file, reason, revision: nextRevision }, 'config changed and written back');
    return { ok: true, revision: nextRevision, version: applied.version };
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async reloadNow(reason: string): Promise<boolean> {
    const log = this.logger;
    try {
      const text = reason === 'file changed' ? await this.readSettled() : readConfigText(this.file);
      if (this.closed) return false;
      if (typeof text !== 'string') return this.invalid(reason, [text]);
      const revision = textRevision(text);
      // A change event for the text last applied (late or repeated events of one save) applies nothing; SIGHUP always does.
      if (reason === 'file changed' && revision === this.applied) return true;
      const loaded = loadConfigText(text);
      if (!loaded.ok) return this.invalid(reason, loaded.errors);
      const fileErrors = checkConfigFiles(loaded.config);
      if (fileErrors.length > 0) return this.invalid(reason, fileErrors);
      if (this.subscriber === undefined) return false;
      const result = await this.subscriber({ config: loaded.config, revision, origin: this.origin, reason });
      if (!result.ok) return this.refuse(reason, [{ path: '(apply)', message: result.error }]);
      this.applied = revision;
      this.lastError = undefined;
      this.setWatch(loaded.config.watch);
      return true;
    } catch (err) {
      // Not expected (every step above reports rather than throws), but a reload must never end the process.
      this.lastError = (err as Error).message;
      log.error({ file: this.file, reason, error: (err as Error).message }, 'config rejected; keeping the running config');
      return false;
    }
  }

  /** Refuses a document that never reached the subscriber (see `onInvalid`). */
  private invalid(reason: string, errors: readonly ConfigError[]): false {
    this.onInvalid?.(errors);
    return this.refuse(reason, errors);
  }

  private refuse(reason: string, errors: readonly ConfigError[]): false {
    const lines = errorLines(this.file, errors);
    this.lastError = lines.join('; ');
    this.logger.error({ file: this.file, reason, errors: lines }, 'config rejected; keeping the running config');
    return false;
  }

  /** The file's text once two reads SETTLE_MS apart agree (or the last read, or why it cannot be read). */
  private async readSettled(): Promise<string | ConfigError> {
    let last = readConfigText(this.file);
    for (let i = 0; i < SETTLE_TRIES; i++) {
      await sleep(SETTLE_MS);
      const next = readConfigText(this.file);
      if (typeof next === 'string' && next === last) return next;
      last = next;
    }
    return typeof last === 'string' ? { path: '(file)', message: `${this.file} kept changing for ${(SETTLE_MS * SETTLE_TRIES) / 1000} s; not applied` } : last;
  }

  /** Watches the file's directory (editors often replace a file rather than write it in place). */
  setWatch(on: boolean): void {
    if (!on || this.closed) {
      this.watcher?.close();
      this.watcher = undefined;
      return;
    }
    if (this.watcher) return;
    const name = basename(this.file);
    try {
      this.watcher = watch(dirname(this.file), (_event, changed) => {
        if (changed !== null && changed !== name) return;
        clearTimeout(this.debounce);
        this.debounce = setTimeout(() => void this.reload('file changed'), DEBOUNCE_MS);
      });
    } catch (err) {
      this.logger.error({ file: this.file, error: (err as Error).message }, 'cannot watch the config file; reload with SIGHUP');
      return;
    }
    // A watcher error (the folder removed, too many watches) is logged, not thrown.
    this.watcher.on('error', (err) => this.logger.error({ file: this.file, error: err.message }, 'config file watch failed; reload with SIGHUP'));
    this.watcher.unref();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.debounce);
    this.setWatch(false);
  }
}
