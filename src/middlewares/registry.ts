import type { Logger } from 'pino';
import type { RouteConfig } from '../config/schema.js';
import type { ConsumerRegistry } from '../consumers/consumer.js';
import type { StateStore } from '../state/store.js';
import type { Middleware } from './middleware.js';
import { rateLimit } from './rate-limit.js';
import { basicAuth } from './basic-auth.js';
import { faultInjection } from './fault-injection.js';
import { ipRestriction } from './ip-restriction.js';
import type { JwksCache } from '../runtime/jwks-cache.js';
import { jwtAuth } from './jwt-auth.js';
import { keyAuth } from './key-auth.js';
import { mtlsAuth } from './mtls-auth.js';

/** What a middleware factory may use when a snapshot is compiled. */
export interface MiddlewareCompileContext {
  readonly route: RouteConfig;
  readonly state: StateStore;
  readonly consumers: ConsumerRegistry;
  readonly logger: Logger;
  /** Remote JWKS key sets kept across reloads (a middleware compiled without one fetches its own). */
  readonly jwks?: JwksCache;
}

/** Builds one middleware instance from its validated options (see schemas.ts). */
export type MiddlewareFactory = (options: never, ctx: MiddlewareCompileContext) => Middleware;

/** Runtime factories by middleware name; the same keys as MIDDLEWARE_SCHEMAS. */
export const MIDDLEWARE_FACTORIES: Record<string, MiddlewareFactory> = {
  'rate-limit': rateLimit as MiddlewareFactory,
  'jwt-auth': jwtAuth as MiddlewareFactory,
  'key-auth': keyAuth as MiddlewareFactory,
  'basic-auth': basicAuth as MiddlewareFactory,
  'mtls-auth': mtlsAuth as MiddlewareFactory,
  'ip-restriction': ipRestriction as MiddlewareFactory,
  'fault-injection': faultInjection as MiddlewareFactory,
};

/** Middlewares that identify a consumer; the compiler adds consumer quotas right after them (compile.ts). */
export const AUTH_MIDDLEWARES: ReadonlySet<string> = new Set(['jwt-auth', 'key-auth', 'basic-auth', 'mtls-auth']);
