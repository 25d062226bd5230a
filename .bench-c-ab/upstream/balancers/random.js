/**
 * Weighted random: each pick returns a target with probability
 * weight / sum(weights), independently of earlier picks.
 */
export const random = (targets, rnd = Math.random) => {
    const n = targets.length;
    if (n === 0)
        return () => undefined;
    if (n === 1) {
        const only = targets[0];
        return () => only;
    }
    const cumulative = new Float64Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) {
        total += targets[i].weight;
        cumulative[i] = total;
    }
    const last = n - 1;
    return () => {
        const r = rnd() * total;
        let lo = 0;
        let hi = last;
        while (lo < hi) {
            const mid = (lo + hi) >>> 1;
            if (cumulative[mid] > r)
                hi = mid;
            else
                lo = mid + 1;
        }
        return targets[lo];
    };
};
//# sourceMappingURL=random.js.map