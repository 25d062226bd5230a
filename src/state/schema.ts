import { z } from 'zod';

/** `state:` — where limits and counters live. */
export const stateSchema = z
  .discriminatedUnion('store', [
    z.strictObject({ store: z.literal('memory') }),
    z.strictObject({
      store: z.literal('redis'),
      url: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'),
      keyPrefix: z.string().default('portico:'),
    }),
  ])
  .default({ store: 'memory' });

export type StateConfig = z.output<typeof stateSchema>;
