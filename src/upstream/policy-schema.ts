import { z } from 'zod';

/** Upstream `healthCheck:` (active and passive). */
export const healthCheckSchema = z.strictObject({}).passthrough();
/** Upstream `circuitBreaker:` (Hystrix semantics). */
export const circuitBreakerSchema = z.strictObject({}).passthrough();
/** Route or upstream `retries:`. */
export const retriesSchema = z.strictObject({}).passthrough();
