import type { Target } from '../target.js';
import type { BalancerName } from '../../config/schemas/upstream-policy.js';
import type { BalancerFactory, Picker } from './balancer.js';
import { consistentHash } from './consistent-hash.js';
import { leastConnections } from './least-connections.js';
import { p2c } from './p2c.js';
import { random } from './random.js';
import { roundRobin } from './round-robin.js';
import { weightedRoundRobin } from './weighted-round-robin.js';

export { hash32 } from './consistent-hash.js';
export type { BalancerFactory, Picker } from './balancer.js';

const FACTORIES: Readonly<Record<BalancerName, BalancerFactory>> = {
  random,
  'round-robin': roundRobin,
  'weighted-round-robin': weightedRoundRobin,
  'consistent-hash': consistentHash,
  'least-connections': leastConnections,
  p2c,
};

/** Builds the picker for `name` over a fixed target list; `random` returns [0, 1) and may be seeded. */
export function createPicker(
  name: BalancerName,
  targets: readonly Target[],
  random?: () => number,
): Picker {
  return FACTORIES[name](targets, random);
}
