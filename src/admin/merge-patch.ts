/**
 * JSON Merge Patch (RFC 7396 §2): `patch` applied to `target`. An object
 * patch merges key by key, `null` removing a key; anything else replaces
 * the target whole. Neither argument is changed. Keys are set as own data
 * properties, so a `__proto__` key in a parsed body is a key like any other.
 */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const result: Record<string, unknown> = {};
  if (isObject(target)) for (const [k, v] of Object.entries(target)) define(result, k, v);
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete result[k];
    else define(result, k, mergePatch(Object.prototype.hasOwnProperty.call(result, k) ? result[k] : undefined, v));
  }
  return result;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function define(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}
