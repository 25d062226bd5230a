import { closeSync, openSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { writeFileAtomically } from './atomic-write.js';

/** The last good store document, kept on disk for a start while the store is down. */
export interface CachedDocument {
  /** The store it came from (`etcd://…/portico/config`): a cache of another store is not used. */
  readonly origin: string;
  readonly revision: string;
  readonly text: string;
  /** When it was applied (ISO 8601). */
  readonly savedAt: string;
}

/** The default cache file: `.NAME.store-cache.json` beside the local config file. */
export function defaultCacheFile(configFile: string): string {
  const file = resolve(configFile);
  return join(dirname(file), `.${basename(file)}.store-cache.json`);
}

/**
 * Writes the cache atomically (a reader sees the old one or the new one),
 * readable by its owner only: the shared sections hold consumers' keys.
 * Throws with the system's reason.
 */
export function writeCache(file: string, doc: CachedDocument): void {
  // Made 0600 first: writeFileAtomically keeps an existing file's mode.
  closeSync(openSync(file, 'a', 0o600));
  writeFileAtomically(file, `${JSON.stringify(doc)}\n`);
}

/** The cached document of `origin`, or why there is none to use. */
export function readCache(file: string, origin: string): CachedDocument | { error: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { error: code === 'ENOENT' ? `no cached document at ${file}` : `cannot read the cache ${file}: ${(err as Error).message}` };
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { error: `the cache ${file} is not valid JSON` };
  }
  const c = v as Partial<CachedDocument> | null;
  if (c === null || typeof c !== 'object' || typeof c.text !== 'string' || typeof c.revision !== 'string' || typeof c.origin !== 'string' || typeof c.savedAt !== 'string') {
    return { error: `the cache ${file} is not a cached document` };
  }
  if (c.origin !== origin) return { error: `the cache ${file} holds a document of ${c.origin}, not ${origin}` };
  return c as CachedDocument;
}
