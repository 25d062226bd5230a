import type http from 'node:http';

/** An admin API error body: `{ error, code, … }`, `code` stable for scripts (see docs/admin-api.md). */
export interface AdminError {
  readonly status: number;
  readonly code: string;
  readonly error: string;
  /** More fields of the body: `errors`, `referencedBy`. */
  readonly details?: Record<string, unknown>;
}

export function adminError(status: number, code: string, error: string, details?: Record<string, unknown>): AdminError {
  return { status, code, error, ...(details !== undefined ? { details } : {}) };
}

export function isAdminError(v: unknown): v is AdminError {
  return typeof v === 'object' && v !== null && 'status' in v && 'code' in v && 'error' in v && typeof (v as AdminError).code === 'string';
}

/** Writes `body` as JSON (never cached). */
export function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

export function fail(res: http.ServerResponse, e: AdminError, headers: Record<string, string> = {}): void {
  json(res, e.status, { error: e.error, code: e.code, ...e.details }, headers);
}

/** 405 with `Allow`. */
export function methodNotAllowed(res: http.ServerResponse, method: string | undefined, path: string, allow: readonly string[]): void {
  fail(res, adminError(405, 'METHOD_NOT_ALLOWED', `${method ?? '?'} is not allowed on ${path} (use ${allow.join(', ')})`), { allow: allow.join(', ') });
}
