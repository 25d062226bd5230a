import type { RouteConfig } from '../config/schema.js';
import type { MiddlewareChain } from '../middlewares/chain.js';
import type { Upstream } from '../upstream/upstream.js';
import type { DirectResponse } from './respond.js';

/** A compiled route: what the router returns for a matching request. */
export interface RouteRuntime {
  readonly name: string;
  readonly config: RouteConfig;
  readonly chain: MiddlewareChain;
  /** Send the inbound Host upstream (true) or the target's address (false). */
  readonly preserveHost: boolean;
  /** Exactly one of `upstream` and `respond` is set. */
  readonly upstream: Upstream | undefined;
  readonly respond: DirectResponse | undefined;
}
