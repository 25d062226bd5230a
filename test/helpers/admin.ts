import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatHostPort } from '../../src/net/address.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger, type Logger } from '../../src/observability/logger.js';
import { FileSource, loadConfigFile } from '../../src/sources/file.js';
import { send, type Reply } from './http.js';

export interface FileGateway {
  gateway: Gateway;
  source: FileSource;
  /** The config file (in a temporary folder removed by close). */
  file: string;
  url(listener?: string): string;
  admin(): string;
  /** One admin API request: a JSON body unless `body` is a string (sent as is). */
  api(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Reply & { json: any }>;
  close(): Promise<void>;
}

/** One admin API request to `base`: a JSON body unless `body` is a string (sent as is); the answer with its body parsed as JSON where it is. */
export async function adminRequest(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply & { json: any }> {
  const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  const h: Record<string, string> = { ...(text !== undefined && typeof body !== 'string' ? { 'content-type': 'application/json' } : {}), ...headers };
  const r = await send(base, { method, path, headers: h, ...(text !== undefined ? { body: text } : {}) });
  let json: unknown;
  try {
    json = JSON.parse(r.body);
  } catch {
    json = undefined;
  }
  return { ...r, json };
}

/**
 * A real gateway served from a config FILE, as `portico start` runs it: the
 * file source attached, so admin API changes are written back to the file.
 * `text` is the file's YAML (or JSON with `name` ending in .json).
 */
export async function startFromFile(text: string, name = 'portico.yaml', logger: Logger = createLogger('silent')): Promise<FileGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'portico-admin-'));
  const file = join(dir, name);
  writeFileSync(file, text);
  const loaded = loadConfigFile(file);
  if (!loaded.ok) throw new Error(`invalid test config: ${JSON.stringify(loaded.errors)}`);
  const gateway = new Gateway(logger);
  const applied = await gateway.apply(loaded.config);
  if (!applied.ok) throw new Error(applied.error);
  const source = new FileSource(file, logger);
  gateway.attachSource(source);
  source.adopt();
  const admin = () => `http://${formatHostPort(gateway.adminAddress()!)}`;
  return {
    gateway,
    source,
    file,
    url(listener = 'web') {
      const a = gateway.listenerAddress(listener);
      if (!a) throw new Error(`no listener ${listener}`);
      return `http://${formatHostPort(a)}`;
    },
    admin,
    api: (method, path, body, headers = {}) => adminRequest(admin(), method, path, body, headers),
    async close() {
      source.close();
      await gateway.stop(1000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
