/** A route's `respond:` answer, serialized once at compile time. */
export interface DirectResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export function compileDirectResponse(cfg: { status: number; headers: Record<string, string>; body: unknown }): DirectResponse {
  const isText = typeof cfg.body === 'string';
  const body = Buffer.from(isText ? (cfg.body as string) : JSON.stringify(cfg.body));
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(cfg.headers)) headers[k.toLowerCase()] = v;
  if (cfg.status === 204 || cfg.status === 304) return { status: cfg.status, headers, body: Buffer.alloc(0) };
  headers['content-type'] ??= isText ? 'text/plain; charset=utf-8' : 'application/json';
  headers['content-length'] = String(body.length);
  return { status: cfg.status, headers, body };
}
