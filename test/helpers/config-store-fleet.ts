import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { adminRequest } from './admin.js';
import { runCli, startCli, stopAfter, type Running } from './cli.js';
import { send, type Reply } from './http.js';
import { waitFor } from './wait.js';

/**
 * A fleet of real `portico start` processes sharing one config store (etcd
 * or ZooKeeper): each has its own local file (its listener and admin API on
 * port 0) and the same `configSource`.
 */
export interface StoreUnderTest {
  /** The `configSource:` block, as YAML flow text. */
  configSource: string;
  /** The URL `portico config push --to` takes. */
  url: string;
  /** Writes raw text to the document key with the store's own tool (etcdctl, zkCli.sh). */
  writeRaw(text: string): Promise<void>;
}

export interface Instance {
  run: Running;
  file: string;
  web: string;
  admin: string;
}

/** The local part of an instance's config: its listener and admin API; the shared sections live in the store. */
export function localConfig(store: StoreUnderTest, extra = ''): string {
  return `configSource: ${store.configSource}
listeners:
  - { name: web, protocol: http, listen: 127.0.0.1:0 }
admin: { listen: 127.0.0.1:0 }
${extra}`;
}

/** Starts an instance on a local file in `dir` named `name`.yaml (its cache beside it). */
export async function startInstance(t: TestContext, dir: string, name: string, store: StoreUnderTest, extra = ''): Promise<Instance> {
  const file = join(dir, `${name}.yaml`);
  if (!existsSync(file)) writeFileSync(file, localConfig(store, extra));
  const run = await startCli(file);
  stopAfter(t, run.child, run.exited);
  return { run, file, web: run.urls.web!, admin: run.admin! };
}

/** `portico config push` of a shared-sections document, checked against an instance's local file. */
export async function push(store: StoreUnderTest, dir: string, shared: string, local: string): Promise<{ code: number | null; stderr: string }> {
  const doc = join(dir, `shared-${Date.now()}-${Math.random().toString(16).slice(2)}.yaml`);
  writeFileSync(doc, shared);
  const r = await runCli(['config', 'push', '--to', store.url, '--local', local, doc], { timeoutMs: 20_000 });
  return { code: r.code, stderr: r.stderr };
}

/** A route answering `body` directly on `path`: a change to look for on every instance. */
export function respondRoute(name: string, path: string, body: string): Record<string, unknown> {
  return { name, listener: 'web', match: { path }, respond: { status: 200, body } };
}

export function sharedDoc(routes: Record<string, unknown>[]): string {
  return `# shared by the fleet\nroutes:\n${routes.map((r) => `  - ${JSON.stringify(r)}`).join('\n')}\n`;
}

/** Polls GET `path` every 10 ms until it answers `status` with `body` (10 s at most); resolves with the ms it took. */
export async function until(base: string, path: string, status: number, body?: string, timeoutMs = 10_000): Promise<number> {
  const t0 = performance.now();
  await waitFor(
    async () => {
      const r = await send(base, { path });
      return r.status === status && (body === undefined || r.body === body);
    },
    `GET ${path} → ${status}${body ? ` ${body}` : ''} on ${base}`,
    timeoutMs,
    10,
  );
  return performance.now() - t0;
}

/** One admin API request to an instance (a JSON body). */
export function api(admin: string, method: string, path: string, body?: unknown): Promise<Reply & { json: any }> {
  return adminRequest(admin, method, path, body);
}

/** Log lines of an instance whose `msg` matches. */
export function logged(i: Instance, msg: RegExp): Record<string, unknown>[] {
  return i.run.logs.filter((l) => typeof l.msg === 'string' && msg.test(l.msg));
}

/** The instance's cache file holds the store's document (written atomically after each applied one). */
export function cacheOf(i: Instance): { text: string; revision: string } {
  const f = join(i.file, '..', `.${i.file.split('/').pop()}.store-cache.json`);
  return JSON.parse(readFileSync(f, 'utf8')) as { text: string; revision: string };
}

/** What /ready says. */
export async function ready(i: Instance): Promise<{ status: number; body: any }> {
  const r = await api(i.admin, 'GET', '/ready');
  return { status: r.status, body: r.json };
}

export function metric(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

export { assert };
