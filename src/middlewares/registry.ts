import type { Logger } from 'pino';
import type { RouteConfig } from '../config/schema.js';
import type { ConsumerRegistry } from '../consumers/consumer.js';
import type { StateStore } from '../state/store.js';
import type { Middleware } from './middleware.js';

/** What a middleware factory may use when a snapshot is compiled. */
export interface MiddlewareCompileContext {
  readonly route: RouteConfig;
  readonly state: StateStore;
  readonly consumers: ConsumerRegistry;
  readonly logger: Logger;
}

/** Builds one middleware instance from its validated options (see schemas.ts). */
export type MiddlewareFactory = (options: never, ctx: MiddlewareCompileContext) => Middleware;

/** Runtime factories by middleware name; the same keys as MIDDLEWARE_SCHEMAS. */
export const MIDDLEWARE_FACTORIES: Record<string, MiddlewareFactory> = {};
