import type { RequestContext, ResponseHead } from '../http/context.js';
import type { HeaderRulesConfig } from '../config/schema.js';
import type { Middleware } from './middleware.js';

interface CompiledRules {
  /** Lower-cased names removed before anything is added (`remove` and the names in `set`). */
  drop: Set<string>;
  set: [string, string][];
  add: [string, string][];
}

function compile(rules: HeaderRulesConfig | undefined): CompiledRules | undefined {
  if (!rules) return undefined;
  const set = Object.entries(rules.set ?? {});
  const add = Object.entries(rules.add ?? {});
  const drop = new Set([...(rules.remove ?? []), ...set.map(([k]) => k)].map((k) => k.toLowerCase()));
  if (set.length === 0 && add.length === 0 && drop.size === 0) return undefined;
  return { drop, set, add };
}

/**
 * Request and response header changes: `remove` deletes, `set` replaces
 * every existing value, `add` appends another value. Names are
 * case-insensitive; rules are compiled once.
 */
export function headers(request: HeaderRulesConfig | undefined, response: HeaderRulesConfig | undefined): Middleware | undefined {
  const req = compile(request);
  const res = compile(response);
  if (!req && !res) return undefined;
  const mw: { name: string; onRequest?: (ctx: RequestContext) => void; onResponse?: (ctx: RequestContext, head: ResponseHead) => void } = {
    name: 'headers',
  };
  if (req) {
    mw.onRequest = (ctx) => {
      const list = ctx.upstreamHeaders;
      const out: string[] = [];
      for (let i = 0; i < list.length; i += 2) {
        if (!req.drop.has(list[i]!.toLowerCase())) out.push(list[i]!, list[i + 1]!);
      }
      for (const [k, v] of req.set) out.push(k, v);
      for (const [k, v] of req.add) out.push(k, v);
      ctx.upstreamHeaders = out;
    };
  }
  if (res) {
    mw.onResponse = (_ctx, head) => {
      const h = head.headers;
      for (const name of res.drop) delete h[name];
      for (const [k, v] of res.set) h[k.toLowerCase()] = v;
      for (const [k, v] of res.add) {
        const key = k.toLowerCase();
        const prev = h[key];
        h[key] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
      }
    };
  }
  return mw;
}
