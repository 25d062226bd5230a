import { z } from 'zod';
import { bool, listenAddress } from '../values.js';

const token = z.string('must be a string of at least 16 characters').min(16, 'must be at least 16 characters');

/**
 * `admin:`, the admin API. `token` is required when `listen` is not a
 * loopback address (checked in references.ts); clients send it as
 * `Authorization: Bearer TOKEN`. `apiKey` is the older name of `token`,
 * still accepted as an alias (setting both is an error); the parsed config
 * carries `token` only.
 */
export const adminSchema = z
  .strictObject({
    listen: listenAddress,
    token: token.optional(),
    /** Deprecated alias of `token`. */
    apiKey: token.optional(),
    /**
     * Whether a change made through the admin API is written back to the
     * config file (atomically: temp file, fsync, rename). With `false` the
     * API is read-only and every write answers 403 CONFIG_READ_ONLY.
     */
    writeBack: bool.default(true),
    /** Serve the profiling endpoints (/debug/profile, /debug/heap); 404 when off. */
    diagnostics: bool.default(false),
  })
  .superRefine((a, ctx) => {
    if (a.token !== undefined && a.apiKey !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['apiKey'], message: 'is the older name of token: set only token' });
    }
  })
  .transform(({ apiKey, token, ...rest }) => ({ ...rest, ...(token ?? apiKey) !== undefined ? { token: (token ?? apiKey)! } : {} }));

export type AdminConfig = z.output<typeof adminSchema>;
