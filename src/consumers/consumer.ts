import type { ConsumerConfig } from './schema.js';

/** A compiled consumer (tenant/app). */
export interface Consumer {
  readonly id: string;
  readonly config: ConsumerConfig;
}

/** The consumers of one snapshot, by id. */
export class ConsumerRegistry {
  private readonly byId = new Map<string, Consumer>();

  constructor(configs: readonly ConsumerConfig[]) {
    for (const c of configs) this.byId.set(c.id, { id: c.id, config: c });
  }

  get(id: string): Consumer | undefined {
    return this.byId.get(id);
  }

  all(): IterableIterator<Consumer> {
    return this.byId.values();
  }
}
