/**
 * Picks the target with the smallest inflight / weight. The scan starts just
 * after the previous choice, so targets that tie are taken in rotation.
 */
export const leastConnections = (targets) => {
    const n = targets.length;
    if (n === 0)
        return () => undefined;
    if (n === 1) {
        const only = targets[0];
        return () => only;
    }
    let start = 0;
    return () => {
        let best = start;
        let bestTarget = targets[start];
        let i = start;
        for (let k = 1; k < n; k++) {
            i = i + 1 === n ? 0 : i + 1;
            const t = targets[i];
            // t.inflight / t.weight < best.inflight / best.weight, without division.
            if (t.inflight * bestTarget.weight < bestTarget.inflight * t.weight) {
                best = i;
                bestTarget = t;
            }
        }
        start = best + 1 === n ? 0 : best + 1;
        return bestTarget;
    };
};
//# sourceMappingURL=least-connections.js.map