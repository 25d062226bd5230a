import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isMap, parseDocument } from 'yaml';
import { formatConfigErrors, type ConfigError } from '../config/errors.js';
import { readConfigMapping, validateConfig } from '../config/load.js';
import { configSourceSchema } from '../config/schemas/stores.js';
import { createLogger } from '../observability/logger.js';
import { checkConfigFiles } from '../sources/check-files.js';
import { checkStoredShape, mergeDocuments, SHARED_SECTIONS } from '../sources/shared-sections.js';
import { StoreUnavailableError, type DocumentStore } from '../stores/document-store.js';
import { openDocumentStore } from '../stores/open.js';
import { parseStoreUrl, STORE_URL_FORMS, type StoreLocation } from '../stores/store-url.js';

export const CONFIG_USAGE = `Usage: portico config push [--to STORE] [--local CONFIG] [--if-revision REV] FILE
       portico config pull [--from STORE | -c CONFIG] [-o OUT]

Moves the shared sections of a config (${SHARED_SECTIONS.join(', ')}) into and
out of a config store. STORE is ${STORE_URL_FORMS}
(prefix or path /portico by default); the document is kept at PREFIX/config.

push  validates FILE, then stores its shared sections (comments kept). FILE is
      a whole config (its listeners are what the routes are checked against),
      or a document of shared sections only, checked against --local CONFIG.
      Without --to, the store is FILE's (or CONFIG's) configSource.
      --if-revision stores only if the document is still at REV (0: absent).
pull  prints the stored document (or writes it to OUT). The store is --from,
      or CONFIG's configSource.

Exit 0 done; 1 invalid document, store unreachable or revision changed; 2 bad usage.
`;

class Usage extends Error {}

/** `portico config push|pull`. */
export async function runConfig(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        to: { type: 'string' },
        from: { type: 'string' },
        local: { type: 'string' },
        'if-revision': { type: 'string' },
        config: { type: 'string', short: 'c' },
        output: { type: 'string', short: 'o' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    return usage((err as Error).message.split('. To specify')[0]!);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(CONFIG_USAGE);
    return 0;
  }
  const [action, ...files] = positionals;
  try {
    if (action === 'push') return await push(files, values);
    if (action === 'pull') return await pull(files, values);
    return usage(action === undefined ? 'config needs push or pull' : `unknown config action "${action}": push or pull`);
  } catch (err) {
    if (err instanceof Usage) return usage(err.message);
    if (err instanceof StoreUnavailableError) return fail(`the store cannot be reached: ${err.message}`);
    throw err;
  }
}

type Values = Record<string, string | boolean | undefined>;

async function push(files: string[], values: Values): Promise<number> {
  if (files.length !== 1) throw new Usage('push needs one FILE');
  if (values.from !== undefined || values.output !== undefined || values.config !== undefined) throw new Usage('push takes --to, --local and --if-revision');
  const file = files[0]!;
  const doc = readDocument(file);
  if ('errors' in doc) return invalid(file, doc.errors);
  const sharedOnly = checkStoredShape(doc.raw).length === 0;
  let whole = doc.raw;
  let localFile: string | undefined;
  if (sharedOnly) {
    localFile = values.local as string | undefined;
    if (localFile === undefined) throw new Usage(`${file} holds only shared sections: give --local CONFIG, the config its routes' listeners are in`);
    const local = readDocument(localFile);
    if ('errors' in local) return invalid(localFile, local.errors);
    whole = mergeDocuments(local.raw, doc.raw);
  } else if (values.local !== undefined) {
    throw new Usage(`${file} is a whole config: --local is only for a document of shared sections`);
  }
  const loaded = validateConfig(whole);
  if (!loaded.ok) return invalid(file, loaded.errors);
  const fileErrors = checkConfigFiles(loaded.config);
  if (fileErrors.length > 0) return invalid(file, fileErrors);
  const location = storeOf(values.to as string | undefined, whole, localFile ?? file);
  const store = open(location);
  try {
    const ifText = values['if-revision'] as string | undefined;
    const ifRevision = ifText === undefined ? undefined : ifText === '0' ? null : ifText;
    const put = await store.put(sharedText(file, doc.text), ifRevision);
    if (!put.ok) return fail(`${store.origin} is at revision ${put.revision ?? '0'}, not ${ifText}: pull it again`);
    process.stderr.write(`portico: pushed ${file} to ${store.origin} (revision ${put.revision})\n`);
    return 0;
  } finally {
    await store.close();
  }
}

async function pull(files: string[], values: Values): Promise<number> {
  if (files.length > 0) throw new Usage(`pull takes no FILE (got "${files[0]}"): use -o OUT`);
  if (values.to !== undefined || values.local !== undefined || values['if-revision'] !== undefined) throw new Usage('pull takes --from, -c and -o');
  if ((values.from === undefined) === (values.config === undefined)) throw new Usage('pull needs --from STORE or -c CONFIG (one of them)');
  let raw: Record<string, unknown> = {};
  if (values.config !== undefined) {
    const doc = readDocument(values.config as string);
    if ('errors' in doc) return invalid(values.config as string, doc.errors);
    raw = doc.raw;
  }
  const store = open(storeOf(values.from as string | undefined, raw, values.config as string | undefined));
  try {
    const stored = await store.get();
    if (stored === undefined) return fail(`${store.origin} holds no document`);
    const out = values.output as string | undefined;
    const text = stored.text.endsWith('\n') ? stored.text : `${stored.text}\n`;
    if (out === undefined) process.stdout.write(text);
    else writeFileSync(out, text);
    process.stderr.write(`portico: pulled ${store.origin} (revision ${stored.revision})${out === undefined ? '' : ` to ${out}`}\n`);
    return 0;
  } finally {
    await store.close();
  }
}

/** The store named by `url`, else by the document's `configSource`. */
function storeOf(url: string | undefined, raw: Record<string, unknown>, file: string | undefined): StoreLocation {
  if (url !== undefined) {
    const loc = parseStoreUrl(url);
    if ('error' in loc) throw new Usage(loc.error);
    return loc;
  }
  const parsed = raw.configSource === undefined ? undefined : configSourceSchema.safeParse(raw.configSource);
  const source = parsed?.success ? parsed.data : undefined;
  if (source === undefined || source.type === 'file') throw new Usage(`name the store with ${file === undefined ? '--from' : '--to/--from'} (${file ?? 'the config'} has no configSource of type etcd or zookeeper)`);
  return source.type === 'etcd' ? { type: 'etcd', endpoints: source.endpoints, prefix: source.prefix } : { type: 'zookeeper', servers: source.servers, path: source.path };
}

function open(loc: StoreLocation): DocumentStore {
  const logger = createLogger('silent');
  return loc.type === 'etcd'
    ? openDocumentStore({ type: 'etcd', endpoints: [...loc.endpoints], prefix: loc.prefix, timeout: 5000 }, logger)
    : openDocumentStore({ type: 'zookeeper', servers: [...loc.servers], path: loc.path, timeout: 5000, sessionTimeout: 10_000 }, logger);
}

/** The file's shared sections as text: its YAML with every other section removed (comments kept), or JSON. */
function sharedText(file: string, text: string): string {
  const shared = new Set<string>(SHARED_SECTIONS);
  if (file.toLowerCase().endsWith('.json')) {
    const raw = JSON.parse(text) as Record<string, unknown>;
    return `${JSON.stringify(Object.fromEntries(Object.entries(raw).filter(([k]) => shared.has(k))), null, 2)}\n`;
  }
  const doc = parseDocument(text, { uniqueKeys: true, merge: true });
  if (isMap(doc.contents)) doc.contents.items = doc.contents.items.filter((pair) => shared.has(String((pair.key as { value?: unknown } | null)?.value ?? pair.key)));
  return doc.toString({ lineWidth: 0 });
}

function readDocument(file: string): { raw: Record<string, unknown>; text: string } | { errors: ConfigError[] } {
  const read = readConfigMapping(file);
  return 'error' in read ? { errors: [read.error] } : read;
}

function invalid(file: string, errors: ConfigError[]): number {
  process.stderr.write(`portico: ${file}: invalid config\n${formatConfigErrors(file, errors)}\n`);
  return 1;
}

function fail(why: string): number {
  process.stderr.write(`portico: ${why}\n`);
  return 1;
}

function usage(reason: string): number {
  process.stderr.write(`portico: ${reason}\n\n${CONFIG_USAGE}`);
  return 2;
}
