import { z } from 'zod';
import { duration } from '../values.js';

/** An IANA time zone name the runtime knows (checked with Intl), e.g. "UTC" or "Europe/Paris". */
const timeZone = z
  .string()
  .refine((tz) => {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: tz });
      return true;
    } catch {
      return false;
    }
  }, 'must be an IANA time zone name such as UTC, Europe/Paris or America/New_York')
  // Absent means UTC (applied by createStateStore), so `{ store: memory }` validates to itself.
  .optional();

/** `state:` — where limits and counters live. */
export const stateSchema = z
  .discriminatedUnion('store', [
    z.strictObject({ store: z.literal('memory'), timeZone }),
    z.strictObject({
      store: z.literal('redis'),
      url: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'),
      keyPrefix: z.string().default('portico:'),
      /** Longest wait for one Redis command before the in-process fallback answers. */
      timeout: duration(10, 5_000, '10ms to 5s').default(150),
      timeZone,
    }),
  ])
  .default({ store: 'memory' });

export type StateConfig = z.output<typeof stateSchema>;

/** The time zone of day-based counters when `state.timeZone` is absent. */
export const DEFAULT_TIME_ZONE = 'UTC';
