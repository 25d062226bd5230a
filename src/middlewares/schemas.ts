import type { z } from 'zod';
import { rateLimitSchema } from './rate-limit.js';
import { basicAuthOptions } from './basic-auth.js';
import { faultInjectionOptions } from './fault-injection.js';
import { ipRestrictionOptions } from './ip-restriction.js';
import { jwtAuthOptions } from './jwt-auth.js';
import { keyAuthOptions } from './key-auth.js';
import { mtlsAuthOptions } from './mtls-auth.js';

/**
 * Option schemas of the middlewares a route can list under `middlewares:`,
 * by name. Each entry is `{ <name>: <options> }`. The runtime factories
 * are in registry.ts; the two maps have the same keys.
 */
export const MIDDLEWARE_SCHEMAS: Record<string, z.ZodType> = {
  'rate-limit': rateLimitSchema,
  'jwt-auth': jwtAuthOptions,
  'key-auth': keyAuthOptions,
  'basic-auth': basicAuthOptions,
  'mtls-auth': mtlsAuthOptions,
  'ip-restriction': ipRestrictionOptions,
  'fault-injection': faultInjectionOptions,
};
