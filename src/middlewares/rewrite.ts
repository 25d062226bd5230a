import type { RequestContext, Middleware } from '../snapshot/snapshot.js';

export interface RewriteOptions {
  /** The route's `match.pathPrefix` when `stripPrefix: true`. */
  stripPrefix?: string;
  /** Applied in order, each to the result of the one before. */
  rules: readonly { pattern: string; replacement: string }[];
}

/**
 * URL rewrite: strips the matched path prefix (`/users/42` → `/42` for
 * prefix `/users`), then applies each regex rule with `$1`-style
 * replacements. The query string is kept as sent.
 */
export function rewrite(options: RewriteOptions): Middleware {
  const prefix = options.stripPrefix?.replace(/\/+$/, '');
  const rules = options.rules.map((r) => ({ re: new RegExp(r.pattern), replacement: r.replacement }));
  return {
    name: 'rewrite',
    onRequest(ctx: RequestContext): void {
      let path = ctx.upstreamPath;
      if (prefix) {
        path = path.length > prefix.length ? path.slice(prefix.length) : '/';
        if (path.charCodeAt(0) !== 47) path = '/' + path;
      }
      for (const { re, replacement } of rules) path = path.replace(re, replacement);
      ctx.upstreamPath = path.charCodeAt(0) === 47 ? path : '/' + path;
    },
  };
}
