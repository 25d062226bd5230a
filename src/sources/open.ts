import { resolve } from 'node:path';
import type { ConfigError } from '../config/errors.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import { openDocumentStore } from '../stores/open.js';
import { FileSource } from './file.js';
import { defaultCacheFile } from './store-cache.js';
import { StoreSource } from './store.js';

/** The source `configSource:` names, with the config to start from. */
export type OpenedSource =
  | { readonly ok: true; readonly kind: 'file'; readonly source: FileSource; readonly config: Config }
  | { readonly ok: true; readonly kind: 'store'; readonly source: StoreSource; readonly config: Config; readonly from: 'store' | 'cache' | 'file'; readonly note: string }
  | { readonly ok: false; readonly errors: ConfigError[] };

/**
 * Opens the config source of `file`'s `configSource:` (already validated as
 * `config`): the file itself, or a store whose document is read now (from
 * the cache while the store is down). Nothing is applied or watched yet.
 */
export async function openConfigSource(file: string, config: Config, logger: Logger): Promise<OpenedSource> {
  const cs = config.configSource;
  if (cs.type === 'file') return { ok: true, kind: 'file', source: new FileSource(file, logger), config };
  const store = openDocumentStore(cs, logger);
  const source = new StoreSource(resolve(file), store, cs.cache === undefined ? defaultCacheFile(file) : resolve(cs.cache), logger);
  const initial = await source.initial();
  if (!initial.ok) {
    source.close();
    return { ok: false, errors: initial.errors };
  }
  return { ok: true, kind: 'store', source, config: initial.config, from: initial.from, note: initial.note };
}
