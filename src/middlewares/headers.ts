import type { HeaderRulesConfig } from '../config/schema.js';
import type { RequestContext, ResponseHead, Middleware } from '../snapshot/snapshot.js';

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
      ctx.upstreamHeaders = applyRules(ctx.upstreamHeaders, req);
    };
  }
  if (res) {
    mw.onResponse = (_ctx, head) => {
      head.headers = applyRules(head.headers, res);
    };
  }
  return mw;
}

/** Returns a new flat header list with `rules` applied: drop, then set, then add. */
function applyRules(list: string[], rules: CompiledRules): string[] {
  const out: string[] = [];
  for (let i = 0; i < list.length; i += 2) {
    if (!rules.drop.has(list[i]!.toLowerCase())) out.push(list[i]!, list[i + 1]!);
  }
  for (const [k, v] of rules.set) out.push(k, v);
  for (const [k, v] of rules.add) out.push(k, v);
  return out;
}
