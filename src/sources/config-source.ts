import type { ConfigError } from '../config/errors.js';
import type { Config } from '../config/schema.js';

/**
 * Config sources (DESIGN.md, Layers): where config documents come from — a
 * file today; etcd, ZooKeeper or the admin API later. A source reads,
 * validates and checks a document, then hands it to its subscriber; it never
 * applies anything itself. The CLI wires a source to the gateway
 * (`source.subscribe((doc) => gateway.apply(doc.config))`).
 */

/** One version of a config document, as a source delivers it. */
export interface ConfigDocument {
  /** The validated config: schema, references and the files it names all checked. */
  readonly config: Config;
  /**
   * Identifies this version at its source, so two deliveries can be told
   * apart or recognised as the same: a content hash for a file, a
   * ModRevision for etcd, a zxid for ZooKeeper.
   */
  readonly revision: string;
  /** Where it came from, for logs: `file:/etc/portico/portico.yaml`. */
  readonly origin: string;
  /** Why it was read: `SIGHUP`, `file changed`, … */
  readonly reason: string;
}

/** What the subscriber did with a document: applied it (as snapshot `version`), or refused it with a reason (the running config keeps serving). */
export type ApplyOutcome = { readonly ok: true; readonly version?: number } | { readonly ok: false; readonly error: string };

/** The document as its source stores it: raw (`${ENV}` placeholders kept, defaults not filled in), and its revision. */
export interface StoredDocument {
  readonly raw: Record<string, unknown>;
  readonly revision: string;
}

/**
 * What a write did. Refusals leave both the stored document and the running
 * config as they were:
 * - `stale`: the stored revision is no longer the one the writer expected;
 * - `read-only`: this source does not take writes (with the reason);
 * - `invalid`: the document fails validation (`errors`, each with its path);
 * - `refused`: it validated but could not be applied (a port in use…);
 * - `failed`: it was applied but could not be stored, so it was rolled back.
 */
export type WriteOutcome =
  | { readonly ok: true; readonly revision: string; readonly version: number | undefined }
  | { readonly ok: false; readonly reason: 'stale' | 'read-only' | 'refused' | 'failed'; readonly error: string }
  | { readonly ok: false; readonly reason: 'invalid'; readonly error: string; readonly errors: readonly ConfigError[] };

/**
 * A source's state, for /ready: `ok`; `error`: its last document was refused
 * (or is missing) and the last good config serves; `degraded`: a store
 * cannot be reached and the last good config serves.
 */
export interface SourceHealth {
  readonly origin: string;
  readonly state: 'ok' | 'error' | 'degraded';
  /** The revision last applied. */
  readonly revision: string | undefined;
  /** Why the last read, reload or write failed (state `error`). */
  readonly error?: string;
}

/** Receives each valid document; must not reject (a refusal is `{ ok: false }`). */
export type ConfigSubscriber = (doc: ConfigDocument) => Promise<ApplyOutcome>;

/**
 * A config source.
 *
 * - `subscribe` sets the one subscriber; documents read before it are not delivered.
 * - `reload(reason)` reads the document again and, when it is valid, delivers it.
 *   It resolves true only when the subscriber applied it; it never rejects.
 *   A document that cannot be read or is invalid, or that the subscriber
 *   refuses, is logged once with every reason by the source and not retried
 *   until the next change or reload.
 * - `read()` is the stored document now (the admin API's GET /config).
 * - `write(raw, ifRevision, reason)` replaces the stored document: it
 *   validates `raw`, delivers it to the subscriber and stores it only once
 *   it applied, all or nothing. With `ifRevision`, it refuses (`stale`)
 *   unless the stored revision is still that one. Writes and reloads are
 *   serialized, so of writes racing on one revision exactly one wins.
 * - `health()` says whether the last read, reload or write worked.
 * - `close()` stops watching; nothing is delivered after it.
 */
export interface ConfigSource {
  readonly origin: string;
  subscribe(subscriber: ConfigSubscriber): void;
  reload(reason: string): Promise<boolean>;
  read(): Promise<StoredDocument | ConfigError>;
  write(raw: Record<string, unknown>, ifRevision: string | undefined, reason: string): Promise<WriteOutcome>;
  health(): SourceHealth;
  close(): void;
}

/** Config errors of a refused document, one per line, as a source logs them. */
export function errorLines(origin: string, errors: readonly ConfigError[]): string[] {
  return errors.map((e) => (e.line !== undefined ? `${origin}:${e.line}:${e.column ?? 1}: ${e.message}` : `${e.path}: ${e.message}`));
}
