import { configSchema } from './schema.js';

/**
 * "Did you mean" for an unknown config key. The schema is walked along the
 * path of the object the key was written in (through optional, default,
 * pipe, array, record and union wrappers) to the object schemas that can
 * stand there; when a union leaves several (the listener kinds), those that
 * hold most of the object's other keys are kept. The closest of their keys
 * within a small edit distance is suggested.
 */

type Def = Record<string, unknown>;

function defOf(schema: unknown): Def | undefined {
  return (schema as { _zod?: { def?: Def } } | null)?._zod?.def;
}

/** The key sets of the object schemas reachable at `path` from `schema`. */
function objectsAt(schema: unknown, path: readonly PropertyKey[], depth = 0): Set<string>[] {
  const def = defOf(schema);
  if (def === undefined || depth > 64) return [];
  switch (def.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'catch':
    case 'nonoptional':
      return objectsAt(def.innerType, path, depth + 1);
    case 'pipe':
      return [...objectsAt(def.in, path, depth + 1), ...objectsAt(def.out, path, depth + 1)];
    case 'lazy':
      return typeof def.getter === 'function' ? objectsAt((def.getter as () => unknown)(), path, depth + 1) : [];
    case 'union':
      return (def.options as unknown[]).flatMap((o) => objectsAt(o, path, depth + 1));
    case 'intersection':
      return [...objectsAt(def.left, path, depth + 1), ...objectsAt(def.right, path, depth + 1)];
  }
  if (path.length === 0) return def.type === 'object' ? [new Set(Object.keys(def.shape as object))] : [];
  const [head, ...rest] = path;
  if (def.type === 'object') {
    const field = (def.shape as Record<PropertyKey, unknown>)[head!];
    return field === undefined ? [] : objectsAt(field, rest, depth + 1);
  }
  if (def.type === 'array') return objectsAt(def.element, rest, depth + 1);
  if (def.type === 'record') return objectsAt(def.valueType, rest, depth + 1);
  return [];
}

/**
 * The known key closest to `key`, for an unknown key written at `path` in
 * an object whose other keys are `siblings`; undefined when none is close.
 */
export function suggestKey(key: string, path: readonly PropertyKey[], siblings: readonly string[]): string | undefined {
  let best = -1;
  let candidates: Set<string>[] = [];
  for (const set of objectsAt(configSchema, path)) {
    let score = 0;
    for (const s of siblings) if (s !== key && set.has(s)) score++;
    if (score > best) {
      best = score;
      candidates = [set];
    } else if (score === best) {
      candidates.push(set);
    }
  }
  const lower = key.toLowerCase();
  const limit = Math.max(1, Math.floor(key.length / 3));
  let suggestion: string | undefined;
  let distance = Infinity;
  for (const set of candidates) {
    for (const known of set) {
      const d = editDistance(lower, known.toLowerCase());
      if (d <= limit && d < distance) {
        distance = d;
        suggestion = known;
      }
    }
  }
  return suggestion;
}

/** Optimal string alignment distance (Levenshtein with adjacent transpositions). */
export function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return Math.abs(a.length - b.length);
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array<number>(rows * cols).fill(0);
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[(i - 1) * cols + j]! + 1, d[i * cols + j - 1]! + 1, d[(i - 1) * cols + j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[(i - 2) * cols + j - 2]! + 1);
      d[i * cols + j] = v;
    }
  }
  return d[rows * cols - 1]!;
}
