import { rateLimitSchema } from './rate-limit.js';
import { basicAuthOptions } from './basic-auth.js';
import { faultInjectionOptions } from './fault-injection.js';
import { ipRestrictionOptions } from './ip-restriction.js';
import { jwtAuthOptions } from './jwt-auth.js';
import { keyAuthOptions } from './key-auth.js';
/**
 * Option schemas of the middlewares a route can list under `middlewares:`,
 * by name. Each entry is `{ <name>: <options> }`. The runtime factories
 * are in registry.ts; the two maps have the same keys.
 */
export const MIDDLEWARE_SCHEMAS = {
    'rate-limit': rateLimitSchema,
    'jwt-auth': jwtAuthOptions,
    'key-auth': keyAuthOptions,
    'basic-auth': basicAuthOptions,
    'ip-restriction': ipRestrictionOptions,
    'fault-injection': faultInjectionOptions,
};
//# sourceMappingURL=schemas.js.map