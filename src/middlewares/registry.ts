import type { MiddlewareFactory } from '../snapshot/snapshot.js';
import { rateLimit } from './rate-limit.js';
import { basicAuth } from './basic-auth.js';
import { faultInjection } from './fault-injection.js';
import { ipRestriction } from './ip-restriction.js';
import { jwtAuth } from './jwt-auth.js';
import { keyAuth } from './key-auth.js';
import { mtlsAuth } from './mtls-auth.js';

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

/** Middlewares that identify a consumer; the compiler adds consumer quotas right after them (snapshot/compile.ts). */
export const AUTH_MIDDLEWARES: ReadonlySet<string> = new Set(['jwt-auth', 'key-auth', 'basic-auth', 'mtls-auth']);
