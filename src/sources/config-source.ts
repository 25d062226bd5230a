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

/** What the subscriber did with a document: applied it, or refused it with a reason (the running config keeps serving). */
export type ApplyOutcome = { readonly ok: true } | { readonly ok: false; readonly error: string };

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
 * - `close()` stops watching; nothing is delivered after it.
 */
export interface ConfigSource {
  readonly origin: string;
  subscribe(subscriber: ConfigSubscriber): void;
  reload(reason: string): Promise<boolean>;
  close(): void;
}

/** Config errors of a refused document, one per line, as a source logs them. */
export function errorLines(origin: string, errors: readonly ConfigError[]): string[] {
  return errors.map((e) => (e.line !== undefined ? `${origin}:${e.line}:${e.column ?? 1}: ${e.message}` : `${e.path}: ${e.message}`));
}
