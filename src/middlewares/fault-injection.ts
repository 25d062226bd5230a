import type { FaultInjectionOptions } from '../config/schemas/middlewares.js';
import { GatewayError } from '../errors.js';
import type { RequestContext, Middleware } from '../snapshot/snapshot.js';

function hasHeader(raw: readonly string[], lower: string): boolean {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === lower.length && raw[i]!.toLowerCase() === lower) return true;
  return false;
}

/**
 * `fault-injection` (as in Envoy and APISIX): delays and/or aborts a share
 * of the requests. The delay comes first, then the abort, each decided
 * independently. An abort answers with the configured status and the
 * gateway's JSON error body (code FAULT_INJECTED).
 */
export function faultInjection(options: FaultInjectionOptions): Middleware {
  const { abort, delay, header } = options;
  const hit = (pct: number) => pct >= 100 || (pct > 0 && Math.random() * 100 < pct);
  const abortNow = () => {
    if (abort !== undefined && hit(abort.percent)) throw new GatewayError('FAULT_INJECTED', 'fault injected', { status: abort.status });
  };
  return {
    name: 'fault-injection',
    onRequest(ctx: RequestContext) {
      if (header !== undefined && !hasHeader(ctx.req.rawHeaders, header)) return;
      if (delay !== undefined && hit(delay.percent)) {
        return new Promise<void>((resolve) => setTimeout(resolve, delay.duration)).then(abortNow);
      }
      abortNow();
    },
  };
}
