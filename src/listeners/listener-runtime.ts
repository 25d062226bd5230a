import type { ListenerConfig } from '../config/schema.js';
import type { IpSet } from '../http/ip.js';
import type { Router } from '../http/router.js';
import type { RouteRuntime } from '../http/route.js';
import type { AccessLog } from '../observability/access-log.js';
import type { Stats } from '../observability/stats.js';

/** A listener as compiled into a snapshot: its router and per-listener settings. */
export interface ListenerRuntime {
  readonly name: string;
  readonly config: ListenerConfig;
  readonly router: Router<RouteRuntime>;
  readonly trustedProxies: IpSet;
  readonly accessLog: AccessLog | null;
  readonly stats: Stats;
  readonly tls: boolean;
}
