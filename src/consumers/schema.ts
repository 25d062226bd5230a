import { z } from 'zod';

/** `consumers[]` — tenants/apps that call through the gateway. */
export const consumerSchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$/, 'must be 1-128 letters, digits, "_", ".", "@" or "-"'),
  secret: z.string().min(1).optional(),
  routes: z.array(z.string()).optional(),
});

/** A route's `token-endpoint:` (OAuth 2.0 client credentials, RFC 6749 §4.4). */
export const tokenEndpointSchema = z.strictObject({
  signingKey: z.string().min(16, 'must be at least 16 characters'),
});

export type ConsumerConfig = z.output<typeof consumerSchema>;
export type TokenEndpointConfig = z.output<typeof tokenEndpointSchema>;
