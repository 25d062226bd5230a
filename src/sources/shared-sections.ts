import { isDeepStrictEqual } from 'node:util';
import type { ConfigError } from '../config/errors.js';

/**
 * With a config store (`configSource: etcd | zookeeper`), the config is two
 * documents: the store's, shared by every instance, holds these sections;
 * the local file holds the rest (listeners, admin, log, workers, state…),
 * which differ per instance (ports, paths) or are read at start only.
 */
export const SHARED_SECTIONS = ['upstreams', 'routes', 'consumers', 'certificates'] as const;
const SHARED: ReadonlySet<string> = new Set(SHARED_SECTIONS);

type Raw = Record<string, unknown>;

/**
 * The document that runs: the local file's, with each section the store's
 * document has replaced by the store's (a section the store lacks comes
 * from the file, so a file can seed an empty store; see docs/config-stores.md).
 */
export function mergeDocuments(local: Raw, stored: Raw | undefined): Raw {
  const out: Raw = { ...local };
  if (stored !== undefined) for (const k of SHARED_SECTIONS) if (Object.hasOwn(stored, k)) out[k] = stored[k];
  return out;
}

/** Errors of a store document that holds more than the shared sections, or is not a mapping. */
export function checkStoredShape(stored: unknown): ConfigError[] {
  if (stored === null || typeof stored !== 'object' || Array.isArray(stored)) {
    return [{ path: '(root)', message: `the stored document must be a mapping of ${SHARED_SECTIONS.join(', ')}` }];
  }
  return Object.keys(stored)
    .filter((k) => !SHARED.has(k))
    .map((k) => ({ path: k, message: `is not kept in the config store (only ${SHARED_SECTIONS.join(', ')}): set it in the local file` }));
}

/**
 * Splits a whole document (an admin API write) into what goes to the store:
 * every shared section (one the document drops is stored empty, so it does
 * not come back from the file). Refuses, naming them, local sections that
 * differ from the file's: those are changed in the file, not through the store.
 */
export function storedPart(next: Raw, local: Raw): { ok: true; stored: Raw } | { ok: false; sections: string[] } {
  const keys = new Set([...Object.keys(next), ...Object.keys(local)]);
  const differ = [...keys].filter((k) => !SHARED.has(k) && !isDeepStrictEqual(next[k], local[k]));
  if (differ.length > 0) return { ok: false, sections: differ.sort() };
  const stored: Raw = {};
  for (const k of SHARED_SECTIONS) {
    if (Object.hasOwn(next, k)) stored[k] = next[k];
    else if (Object.hasOwn(local, k)) stored[k] = [];
  }
  return { ok: true, stored };
}
