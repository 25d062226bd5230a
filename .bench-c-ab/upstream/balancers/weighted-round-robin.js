/**
 * Smooth weighted round-robin, as nginx: on each pick every target's current
 * value grows by its weight, the largest (first in config order on ties) is
 * chosen and loses the total weight. Over every sum(weights) consecutive picks
 * each target is chosen exactly `weight` times, interleaved rather than bunched.
 */
export const weightedRoundRobin = (targets) => {
    const n = targets.length;
    if (n === 0)
        return () => undefined;
    if (n === 1) {
        const only = targets[0];
        return () => only;
    }
    const weights = new Float64Array(n);
    const current = new Float64Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) {
        weights[i] = targets[i].weight;
        total += weights[i];
    }
    return () => {
        let best = 0;
        let bestValue = -Infinity;
        for (let i = 0; i < n; i++) {
            const c = current[i] + weights[i];
            current[i] = c;
            if (c > bestValue) {
                bestValue = c;
                best = i;
            }
        }
        current[best] = bestValue - total;
        return targets[best];
    };
};
//# sourceMappingURL=weighted-round-robin.js.map