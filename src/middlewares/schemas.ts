import type { z } from 'zod';

/**
 * Option schemas of the middlewares a route can list under `middlewares:`,
 * by name. Each entry is `{ <name>: <options> }`. The runtime factories
 * are in registry.ts; the two maps have the same keys.
 */
export const MIDDLEWARE_SCHEMAS: Record<string, z.ZodType> = {};
