import type http from 'node:http';
import type { ConfigSource, WriteOutcome } from '../sources/config-source.js';
import { validateConfig } from '../config/load.js';
import { checkConfigFiles } from '../sources/check-files.js';
import type { ConfigError } from '../config/errors.js';
import { adminError, fail, isAdminError, json, methodNotAllowed, type AdminError } from './reply.js';
import { readBody } from './request-body.js';
import { etagOf, ifMatch } from './etag.js';
import { mergePatch } from './merge-patch.js';
import { isDanglingReference, isResourceKind, referrersOf, RESOURCE_KINDS, validName, type ResourceKind } from './resource-kinds.js';

/** What the admin API needs to read and change the config. */
export interface ConfigAccess {
  readonly source: ConfigSource;
  /** Why writes are refused (`admin.writeBack: false`), read per request; undefined when they are taken. */
  readOnly(): string | undefined;
  /**
   * After a write applied in this process: makes every other worker load
   * the stored document (`workers: N`); resolves with why one refused, if one did.
   */
  afterWrite?(): Promise<string | undefined>;
}

/** A resource write retried this many times when another write got in between (only when the client sent no If-Match). */
const STALE_RETRIES = 3;

/**
 * The config endpoints: `/config`, `/config/validate` and the resources
 * (`/listeners`, `/routes`, `/upstreams`, `/consumers`, `/certificates`,
 * each with `/{name}`). Answers true when `path` is one of them.
 */
export function serveConfig(req: http.IncomingMessage, res: http.ServerResponse, path: string, access: ConfigAccess): boolean {
  if (path === '/config') {
    void wholeDocument(req, res, access).catch(() => internal(res));
    return true;
  }
  if (path === '/config/validate') {
    if (req.method !== 'POST') methodNotAllowed(res, req.method, path, ['POST']);
    else void validateOnly(req, res).catch(() => internal(res));
    return true;
  }
  const slash = path.indexOf('/', 1);
  const kind = slash < 0 ? path.slice(1) : path.slice(1, slash);
  if (!isResourceKind(kind)) return false;
  if (slash < 0) {
    void collection(req, res, kind, access).catch(() => internal(res));
    return true;
  }
  let name: string;
  try {
    name = decodeURIComponent(path.slice(slash + 1));
  } catch {
    fail(res, adminError(400, 'INVALID_NAME', 'the name is not valid percent-encoding'));
    return true;
  }
  if (!validName(kind, name)) {
    fail(res, adminError(400, 'INVALID_NAME', `not a valid ${RESOURCE_KINDS[kind].one} ${RESOURCE_KINDS[kind].key}: ${kind === 'consumers' ? '1-128 letters, digits, "_", ".", "@" or "-"' : '1-63 letters, digits, "_", "." or "-"'}, starting with a letter or digit`));
    return true;
  }
  void item(req, res, kind, name, access).catch(() => internal(res));
  return true;
}

function internal(res: http.ServerResponse): void {
  if (!res.headersSent) fail(res, adminError(500, 'INTERNAL', 'the config could not be read or changed'));
  else res.destroy();
}

/** The stored document and its revision, or why it cannot be read (500 SOURCE_UNAVAILABLE). */
async function readStored(access: ConfigAccess): Promise<{ raw: Record<string, unknown>; revision: string } | AdminError> {
  const doc = await access.source.read();
  if ('raw' in doc) return doc;
  return adminError(500, 'SOURCE_UNAVAILABLE', `the config cannot be read from ${access.source.origin}: ${doc.message}`);
}

/** GET /config (the raw document) and PUT /config (replace it whole). */
async function wholeDocument(req: http.IncomingMessage, res: http.ServerResponse, access: ConfigAccess): Promise<void> {
  if (req.method === 'GET' || req.method === 'HEAD') {
    const doc = await readStored(access);
    if (isAdminError(doc)) return fail(res, doc);
    return json(res, 200, doc.raw, { etag: etagOf(doc.revision) });
  }
  if (req.method !== 'PUT') return methodNotAllowed(res, req.method, '/config', ['GET', 'PUT']);
  const body = await readBody(req, { yaml: true });
  if (isAdminError(body)) return failBody(res, body);
  if (!isObject(body)) return fail(res, adminError(400, 'INVALID_CONFIG', 'the config document must be an object', { errors: [{ path: '(root)', message: 'must be a mapping of keys such as listeners, upstreams, routes' }] }));
  const refused = access.readOnly();
  if (refused !== undefined) return fail(res, adminError(403, 'CONFIG_READ_ONLY', refused));
  const doc = await readStored(access);
  if (isAdminError(doc)) return fail(res, doc);
  const cond = ifMatch(header(req, 'if-match'), doc.revision);
  if (cond.kind === 'stale') return fail(res, stale(doc.revision), { etag: etagOf(doc.revision) });
  const outcome = await access.source.write(body, cond.kind === 'match' ? cond.revision : undefined, 'admin API: PUT /config');
  const done = await finishWrite(outcome, access);
  if (isAdminError(done)) return fail(res, done);
  json(res, 200, { revision: done.revision, version: done.version ?? null }, { etag: etagOf(done.revision) });
}

/** POST /config/validate: every error of a document, nothing applied. */
async function validateOnly(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const body = await readBody(req, { yaml: true });
  if (isAdminError(body)) return failBody(res, body);
  const loaded = validateConfig(body);
  const errors = loaded.ok ? checkConfigFiles(loaded.config) : loaded.errors;
  json(res, 200, { valid: errors.length === 0, errors: errors.map(plainError) });
}

/** GET /KIND (list) and POST /KIND (create). */
async function collection(req: http.IncomingMessage, res: http.ServerResponse, kind: ResourceKind, access: ConfigAccess): Promise<void> {
  if (req.method === 'GET' || req.method === 'HEAD') {
    const doc = await readStored(access);
    if (isAdminError(doc)) return fail(res, doc);
    return json(res, 200, { items: section(doc.raw, kind) }, { etag: etagOf(doc.revision) });
  }
  if (req.method !== 'POST') return methodNotAllowed(res, req.method, `/${kind}`, ['GET', 'POST']);
  const body = await readBody(req);
  if (isAdminError(body)) return failBody(res, body);
  const { key, one } = RESOURCE_KINDS[kind];
  if (!isObject(body)) return fail(res, notAnObject(kind));
  const name = body[key];
  if (typeof name !== 'string' || !validName(kind, name)) return fail(res, adminError(400, 'INVALID_NAME', `the body needs a valid "${key}" for the new ${one}`));
  await change(req, res, access, `admin API: POST /${kind}`, (raw) => {
    const list = section(raw, kind);
    if (list.some((x) => x[key] === name)) return adminError(409, 'ALREADY_EXISTS', `a ${one} with ${key} "${name}" already exists (PUT /${kind}/${name} replaces it)`);
    return { next: withSection(raw, kind, [...list, body]), status: 201, body, location: `/${kind}/${encodeURIComponent(name)}` };
  });
}

/** GET, PUT, PATCH and DELETE /KIND/{name}. */
async function item(req: http.IncomingMessage, res: http.ServerResponse, kind: ResourceKind, name: string, access: ConfigAccess): Promise<void> {
  const { key, one } = RESOURCE_KINDS[kind];
  const notFound = () => adminError(404, 'RESOURCE_NOT_FOUND', `no ${one} with ${key} "${name}"`);
  if (req.method === 'GET' || req.method === 'HEAD') {
    const doc = await readStored(access);
    if (isAdminError(doc)) return fail(res, doc);
    const found = section(doc.raw, kind).find((x) => x[key] === name);
    if (found === undefined) return fail(res, notFound());
    return json(res, 200, found, { etag: etagOf(doc.revision) });
  }
  if (req.method === 'DELETE') {
    return change(req, res, access, `admin API: DELETE /${kind}/${name}`, (raw) => {
      const list = section(raw, kind);
      if (!list.some((x) => x[key] === name)) return notFound();
      const referrers = referrersOf(raw, kind, name);
      if (referrers.length > 0) {
        const who = referrers.map((r) => `${RESOURCE_KINDS[r.kind].one} "${r.name}" (${r.path})`).join(', ');
        return adminError(409, 'IN_USE', `${one} "${name}" is used by ${who}: change or delete those first`, { referencedBy: referrers });
      }
      return { next: withSection(raw, kind, list.filter((x) => x[key] !== name)), status: 200, body: { deleted: name } };
    });
  }
  if (req.method !== 'PUT' && req.method !== 'PATCH') return methodNotAllowed(res, req.method, `/${kind}/${name}`, ['GET', 'PUT', 'PATCH', 'DELETE']);
  const patching = req.method === 'PATCH';
  const body = await readBody(req, { mergePatch: patching });
  if (isAdminError(body)) return failBody(res, body);
  if (!isObject(body)) return fail(res, notAnObject(kind));
  if (body[key] !== undefined && body[key] !== name) {
    return fail(res, adminError(400, 'NAME_MISMATCH', `the body's ${key} "${String(body[key]).slice(0, 64)}" is not the ${key} in the URL ("${name}"): a ${one}'s ${key} cannot be changed (create the new one, then delete the old)`));
  }
  await change(req, res, access, `admin API: ${req.method} /${kind}/${name}`, (raw) => {
    const list = section(raw, kind);
    const at = list.findIndex((x) => x[key] === name);
    if (patching && at < 0) return notFound();
    const next = patching ? (mergePatch(list[at], body) as Record<string, unknown>) : { [key]: name, ...body };
    if (next[key] !== name) return adminError(400, 'NAME_MISMATCH', `a ${one}'s ${key} cannot be removed or changed by a patch`);
    const updated = at < 0 ? [...list, next] : list.map((x, i) => (i === at ? next : x));
    return { next: withSection(raw, kind, updated), status: at < 0 ? 201 : 200, body: next, ...(at < 0 ? { location: `/${kind}/${encodeURIComponent(name)}` } : {}) };
  });
}

interface Planned {
  next: Record<string, unknown>;
  status: number;
  body: unknown;
  location?: string;
}

/**
 * Read, change, write: `plan` computes the new document from the stored
 * one. With `If-Match` the write is conditional on that revision (412 when
 * stale); without, a write that lost a race with another is planned again
 * on the newer document, a few times.
 */
async function change(req: http.IncomingMessage, res: http.ServerResponse, access: ConfigAccess, reason: string, plan: (raw: Record<string, unknown>) => Planned | AdminError): Promise<void> {
  const refused = access.readOnly();
  if (refused !== undefined) return fail(res, adminError(403, 'CONFIG_READ_ONLY', refused));
  const conditional = header(req, 'if-match');
  for (let attempt = 0; ; attempt++) {
    const doc = await readStored(access);
    if (isAdminError(doc)) return fail(res, doc);
    const cond = ifMatch(conditional, doc.revision);
    if (cond.kind === 'stale') return fail(res, stale(doc.revision), { etag: etagOf(doc.revision) });
    const planned = plan(doc.raw);
    if (isAdminError(planned)) return fail(res, planned, { etag: etagOf(doc.revision) });
    const outcome = await access.source.write(planned.next, doc.revision, reason);
    if (!outcome.ok && outcome.reason === 'stale' && cond.kind === 'any' && attempt < STALE_RETRIES) continue;
    const done = await finishWrite(outcome, access);
    if (isAdminError(done)) return fail(res, done);
    return json(res, planned.status, planned.body, { etag: etagOf(done.revision), ...(planned.location !== undefined ? { location: planned.location } : {}), 'x-portico-config-version': String(done.version ?? '') });
  }
}

/** A write's outcome as an answer; after a write that applied here, the other workers follow. */
async function finishWrite(outcome: WriteOutcome, access: ConfigAccess): Promise<{ revision: string; version: number | undefined } | AdminError> {
  if (!outcome.ok) {
    switch (outcome.reason) {
      case 'stale':
        return adminError(412, 'PRECONDITION_FAILED', outcome.error);
      case 'read-only':
        return adminError(403, 'CONFIG_READ_ONLY', outcome.error);
      case 'invalid': {
        const errors = outcome.errors.map(plainError);
        const dangling = errors.length > 0 && errors.every((e) => isDanglingReference(e.message));
        return dangling
          ? adminError(409, 'DANGLING_REFERENCE', `the change would leave a reference to something that does not exist: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, { errors })
          : adminError(400, 'INVALID_CONFIG', `the change makes the config invalid: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, { errors });
      }
      case 'refused':
        return adminError(409, 'APPLY_FAILED', `the change could not be applied; the running config is unchanged: ${outcome.error}`);
      case 'failed':
        return adminError(500, 'WRITE_FAILED', `the change could not be stored, so it was undone: ${outcome.error}`);
    }
  }
  const others = await access.afterWrite?.();
  if (others !== undefined) return adminError(500, 'PROPAGATION_FAILED', `the change is stored and applied here, but ${others}`);
  return { revision: outcome.revision, version: outcome.version };
}

function failBody(res: http.ServerResponse, e: AdminError): void {
  // A body that was not read whole leaves the connection unusable.
  fail(res, e, e.status === 413 || e.code === 'BAD_REQUEST' ? { connection: 'close' } : {});
}

function stale(current: string): AdminError {
  return adminError(412, 'PRECONDITION_FAILED', `If-Match does not name the current revision ${etagOf(current)}: read the config again and retry`);
}

function notAnObject(kind: ResourceKind): AdminError {
  return adminError(400, 'INVALID_CONFIG', `the body must be a JSON object: one ${RESOURCE_KINDS[kind].one}`, { errors: [{ path: '(body)', message: 'must be an object' }] });
}

function plainError(e: ConfigError): { path: string; message: string } {
  return { path: e.path, message: e.message };
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function section(raw: Record<string, unknown>, kind: ResourceKind): Record<string, unknown>[] {
  const v = raw[kind];
  return Array.isArray(v) ? (v.filter((x) => isObject(x)) as Record<string, unknown>[]) : [];
}

function withSection(raw: Record<string, unknown>, kind: ResourceKind, list: Record<string, unknown>[]): Record<string, unknown> {
  return { ...raw, [kind]: list };
}
