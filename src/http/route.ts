import type { RouteConfig } from '../config/schema.js';
import type { MiddlewareChain } from '../middlewares/chain.js';
import type { Upstream } from '../upstream/upstream.js';
import type { DirectResponse } from './respond.js';
import type { RequestContext } from './context.js';
import type { UpstreamPolicies } from './exchange/policies.js';

/** A compiled route: what the router returns for a matching request. */
export interface RouteRuntime {
  readonly name: string;
  readonly config: RouteConfig;
  readonly chain: MiddlewareChain;
  /** Send the inbound Host upstream (true) or the target's address (false). */
  readonly preserveHost: boolean;
  /** Exactly one of `upstream`, `respond` and `endpoint` is set. */
  readonly upstream: Upstream | undefined;
  /** Circuit breaker, retries and passive health for `upstream`, composed at compile time; null when none applies (exchange/policies.ts). */
  readonly policies: UpstreamPolicies | null;
  readonly respond: DirectResponse | undefined;
  /** A handler that answers the request itself (e.g. the token endpoint); it writes the response. */
  readonly endpoint: ((ctx: RequestContext) => void | Promise<void>) | undefined;
}
