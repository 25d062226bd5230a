import { createHash } from 'node:crypto';
import { random } from './random.js';
/** Ring points per unit of weight (ketama's 160: 40 md5 digests of 4 points). */
export const POINTS_PER_WEIGHT = 160;
/**
 * Fast non-cryptographic 32-bit hash of a string: FNV-1a over UTF-16 code
 * units, then murmur3's fmix32 finalizer for avalanche. Returns an unsigned
 * 32-bit integer.
 */
export function hash32(s) {
    let h = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) {
        h ^= s.charCodeAt(i);
        h = Math.imul(h, 0x01000193);
    }
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h >>> 0;
}
/**
 * Consistent hashing on a ketama-style ring: each target owns
 * POINTS_PER_WEIGHT * weight points, derived only from its address and
 * weight, so adding or removing a target moves only the keys that land on
 * that target's points. A key maps to the first point >= hash32(key),
 * wrapping. Without a key (undefined or '') the pick is weighted random.
 */
export const consistentHash = (targets, rnd = Math.random) => {
    const n = targets.length;
    if (n === 0)
        return () => undefined;
    if (n === 1) {
        const only = targets[0];
        return () => only;
    }
    const digestsOf = (weight) => Math.max(1, Math.round((POINTS_PER_WEIGHT * weight) / 4));
    let size = 0;
    for (const t of targets)
        size += 4 * digestsOf(t.weight);
    const rawPoints = new Uint32Array(size);
    const rawOwners = new Uint32Array(size);
    let p = 0;
    for (let ti = 0; ti < n; ti++) {
        const t = targets[ti];
        const digests = digestsOf(t.weight);
        for (let i = 0; i < digests; i++) {
            const d = createHash('md5').update(`${t.address}-${i}`).digest();
            for (let k = 0; k < 4; k++) {
                rawPoints[p] = d.readUInt32LE(k * 4);
                rawOwners[p] = ti;
                p++;
            }
        }
    }
    // Equal points are ordered by address so the ring does not depend on config order.
    const order = Array.from({ length: size }, (_, i) => i);
    order.sort((x, y) => {
        const dp = rawPoints[x] - rawPoints[y];
        if (dp !== 0)
            return dp;
        const ax = targets[rawOwners[x]].address;
        const ay = targets[rawOwners[y]].address;
        return ax < ay ? -1 : ax > ay ? 1 : 0;
    });
    const points = new Uint32Array(size);
    const owners = new Uint32Array(size);
    for (let i = 0; i < size; i++) {
        points[i] = rawPoints[order[i]];
        owners[i] = rawOwners[order[i]];
    }
    const fallback = random(targets, rnd);
    return (key) => {
        if (key === undefined || key === '')
            return fallback();
        const h = hash32(key);
        let lo = 0;
        let hi = size;
        while (lo < hi) {
            const mid = (lo + hi) >>> 1;
            if (points[mid] < h)
                lo = mid + 1;
            else
                hi = mid;
        }
        return targets[owners[lo === size ? 0 : lo]];
    };
};
//# sourceMappingURL=consistent-hash.js.map