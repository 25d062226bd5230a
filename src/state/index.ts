import type { Logger } from 'pino';
import { DEFAULT_TIME_ZONE, type StateConfig } from '../config/schemas/state.js';
import type { StateStore } from './store.js';
import { MemoryStore } from './memory.js';
import { RedisStore } from './redis.js';
import { FallbackStore } from './fallback.js';

/**
 * Builds the store a `state:` section asks for: the in-process store, or
 * Redis with the in-process store as its fallback. Never blocks: a Redis
 * connection is opened in the background and the memory store answers
 * until it is ready.
 */
export function createStateStore(config: StateConfig, logger: Logger): StateStore {
  const timeZone = config.timeZone ?? DEFAULT_TIME_ZONE;
  switch (config.store) {
    case 'memory':
      return new MemoryStore({ timeZone });
    case 'redis': {
      const redis = new RedisStore({ url: config.url, keyPrefix: config.keyPrefix, timeoutMs: config.timeout, timeZone });
      return new FallbackStore(redis, logger, { timeZone });
    }
  }
}

export type { StateStore, TokenBucketResult } from './store.js';
export { MemoryStore } from './memory.js';
