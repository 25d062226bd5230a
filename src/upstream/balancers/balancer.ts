import type { Target } from '../target.js';

/**
 * Picks one target for one request or connection.
 *
 * A picker is built once per target set (at compile time, or when health
 * changes the set) and never edited: a new target set gets a new picker.
 * `key` is the hash key (client IP, URI, header or cookie value) for
 * consistent-hash, and is ignored by the other algorithms. Returns
 * `undefined` only when there are no targets.
 */
export type Picker = (key?: string) => Target | undefined;

/** Builds a picker for a fixed list of targets. `random` returns [0, 1) and may be seeded in tests. */
export type BalancerFactory = (targets: readonly Target[], random?: () => number) => Picker;
