import type { Logger } from 'pino';
import type { StateConfig } from './schema.js';
import type { StateStore } from './store.js';
import { MemoryStore } from './memory.js';

/** Builds the store a `state:` section asks for. */
export function createStateStore(config: StateConfig, _logger: Logger): StateStore {
  switch (config.store) {
    case 'memory':
      return new MemoryStore();
    case 'redis':
      throw new Error('state.store redis is not available yet');
  }
}

export type { StateStore } from './store.js';
