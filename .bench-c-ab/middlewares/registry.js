import { rateLimit } from './rate-limit.js';
import { basicAuth } from './basic-auth.js';
import { faultInjection } from './fault-injection.js';
import { ipRestriction } from './ip-restriction.js';
import { jwtAuth } from './jwt-auth.js';
import { keyAuth } from './key-auth.js';
/** Runtime factories by middleware name; the same keys as MIDDLEWARE_SCHEMAS. */
export const MIDDLEWARE_FACTORIES = {
    'rate-limit': rateLimit,
    'jwt-auth': jwtAuth,
    'key-auth': keyAuth,
    'basic-auth': basicAuth,
    'ip-restriction': ipRestriction,
    'fault-injection': faultInjection,
};
/** Middlewares that identify a consumer; the compiler adds consumer quotas right after them (compile.ts). */
export const AUTH_MIDDLEWARES = new Set(['jwt-auth', 'key-auth', 'basic-auth', 'mtls-auth']);
//# sourceMappingURL=registry.js.map