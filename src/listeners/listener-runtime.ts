import type tls from 'node:tls';
import type { HttpListenerConfig } from '../config/schema.js';
import type { L4ListenerRuntime } from '../l4/listener-runtime.js';
import type { IpSet } from '../net/ip-set.js';
import type { Router } from '../http/router.js';
import type { RouteRuntime } from '../http/route.js';
import type { AccessLog } from '../observability/access-log.js';
import type { Stats } from '../observability/stats.js';

/** A listener's TLS settings as compiled (certificates read from their files at compile time). */
export interface ListenerTls {
  /** Options for the node:tls server template: SNICallback, client-certificate settings, versions. */
  serverOptions(): tls.TlsOptions;
  /** Each certificate's names, expiry and default flag (admin status). */
  describe(): { names: string[]; validTo: string; default: boolean }[];
}

/** An HTTP listener (`http`, `https`) as compiled into a snapshot: its router and per-listener settings. */
export interface ListenerRuntime {
  readonly kind: 'http';
  readonly name: string;
  readonly config: HttpListenerConfig;
  readonly router: Router<RouteRuntime>;
  readonly trustedProxies: IpSet;
  readonly accessLog: AccessLog | null;
  readonly stats: Stats;
  /** The listener terminates TLS (X-Forwarded-Proto: https). */
  readonly tls: boolean;
  /** Certificates and client-certificate settings; null for a cleartext listener. */
  readonly certificates: ListenerTls | null;
}

/** Any compiled listener: HTTP, or connection-level (l4/listener-runtime.ts). */
export type AnyListenerRuntime = ListenerRuntime | L4ListenerRuntime;
