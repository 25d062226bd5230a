import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { readYaml } from './yaml-document.js';
import { suggestKey } from './did-you-mean.js';
import { interpolate, type InterpolationError } from './interpolate.js';
import { configSchema, type Config } from './schema.js';
import type { ConfigError } from './errors.js';
import { checkNames, checkReferences } from './references.js';
import { resolveCertificates } from './certificates.js';

export type LoadResult = { ok: true; config: Config } | { ok: false; errors: ConfigError[] };

/** A config file's text, or the error that says why it cannot be read. */
export function readConfigText(file: string): string | ConfigError {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'is a directory' : e.code === 'EACCES' ? 'permission denied' : e.message;
    return { path: '(file)', message: `cannot read ${file}: ${why}` };
  }
}

/** A config file read and parsed, not validated: its text and its top-level mapping, or why it is neither. */
export function readConfigMapping(file: string): { text: string; raw: Record<string, unknown> } | { error: ConfigError } {
  const text = readConfigText(file);
  if (typeof text !== 'string') return { error: text };
  const parsed = readYaml(text);
  if (!parsed.ok) return { error: { path: '(document)', ...parsed.problem } };
  const raw = parsed.data ?? {};
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { error: { path: '(root)', message: `${file} is not a mapping of keys such as listeners, upstreams, routes` } };
  return { text, raw: raw as Record<string, unknown> };
}

export function loadConfigText(text: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  const read = readYaml(text);
  if (!read.ok) return { ok: false, errors: [{ path: '(document)', ...read.problem }] };
  return validateConfig(read.data ?? {}, env);
}

/** Validates an already parsed document (the admin API and other sources use this). */
export function validateConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env): LoadResult {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return { ok: false, errors: [{ path: '(root)', message: 'must be a mapping of keys such as listeners, upstreams, routes' }] };
  }
  const envErrors: InterpolationError[] = [];
  const interpolated = interpolate(raw, env, envErrors);
  if (envErrors.length > 0) return { ok: false, errors: envErrors };

  const parsed = configSchema.safeParse(interpolated);
  const nameErrors = checkNames(interpolated);
  if (!parsed.success) {
    const errors = formatIssues(parsed.error.issues, interpolated);
    const seen = new Set(errors.map((e) => e.path));
    return { ok: false, errors: [...errors, ...nameErrors.filter((e) => !seen.has(e.path))] };
  }
  const refErrors = [...nameErrors, ...resolveCertificates(parsed.data), ...checkReferences(parsed.data)];
  if (parsed.data.listeners.length === 0) {
    // An empty or comment-only file (a truncate-then-write caught half way) must never be applied as "serve nothing".
    refErrors.push({ path: 'listeners', message: 'a config needs at least one listener (an empty or comment-only document is refused)' });
  }
  if (refErrors.length > 0) return { ok: false, errors: refErrors };
  return { ok: true, config: parsed.data };
}

/**
 * Reads and validates another document kind (the agent's) the way the
 * gateway's is: YAML with alias limits, `${ENV}` interpolation, the
 * schema, and every error with its path.
 */
export function loadDocument<S extends z.ZodType>(text: string, schema: S, env: NodeJS.ProcessEnv = process.env): { ok: true; value: z.output<S> } | { ok: false; errors: ConfigError[] } {
  const read = readYaml(text);
  if (!read.ok) return { ok: false, errors: [{ path: '(document)', ...read.problem }] };
  const raw = read.data ?? {};
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { ok: false, errors: [{ path: '(root)', message: 'must be a mapping' }] };
  const envErrors: InterpolationError[] = [];
  const interpolated = interpolate(raw, env, envErrors);
  if (envErrors.length > 0) return { ok: false, errors: envErrors };
  const parsed = schema.safeParse(interpolated);
  if (!parsed.success) return { ok: false, errors: formatIssues(parsed.error.issues, interpolated) };
  return { ok: true, value: parsed.data };
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out || '(root)';
}

function formatIssues(issues: readonly z.core.$ZodIssue[], input: unknown): ConfigError[] {
  const errors: ConfigError[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const where = valueAt(input, issue.path);
        const hint = suggestKey(key, issue.path, where !== null && typeof where === 'object' ? Object.keys(where) : []);
        errors.push({ path: formatPath([...issue.path, key]), message: hint === undefined ? 'unknown key' : `unknown key (did you mean "${hint}"?)` });
      }
    } else if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      // Report the branch that got furthest: the one with the deepest issue path.
      // Paths inside a branch are relative to the union.
      const best = issue.errors.reduce((a, b) => (depth(b) > depth(a) ? b : a));
      const nested = formatIssues(best.map((i) => ({ ...i, path: [...issue.path, ...i.path] })), input);
      errors.push(...(depth(best) > 0 ? nested : [{ path: formatPath(issue.path), message: issue.message }]));
    } else if (issue.code === 'invalid_key') {
      // A record key that failed its own check: say why, under the key's path.
      for (const inner of issue.issues) errors.push({ path: formatPath(issue.path), message: inner.message });
    } else if (issue.code === 'invalid_type' && valueAt(input, issue.path) === undefined) {
      errors.push({ path: formatPath(issue.path), message: 'is required' });
    } else {
      errors.push({ path: formatPath(issue.path), message: issue.message });
    }
  }
  return errors;
}

/** The value at a path of the (interpolated) document, or undefined. */
function valueAt(doc: unknown, path: readonly PropertyKey[]): unknown {
  let v = doc;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

function depth(issues: readonly z.core.$ZodIssue[]): number {
  return issues.reduce((d, i) => Math.max(d, i.path.length, i.code === 'unrecognized_keys' ? i.path.length + 1 : 0), 0);
}
