/**
 * Power of two choices: draws two distinct targets uniformly at random and
 * returns the one with the lower (inflight + 1) * max(ewmaMs, 1) / weight
 * (the first drawn on a tie).
 */
export const p2c = (targets, rnd = Math.random) => {
    const n = targets.length;
    if (n === 0)
        return () => undefined;
    if (n === 1) {
        const only = targets[0];
        return () => only;
    }
    return () => {
        const i = Math.min(Math.floor(rnd() * n), n - 1);
        let j = Math.min(Math.floor(rnd() * (n - 1)), n - 2);
        if (j >= i)
            j++;
        const a = targets[i];
        const b = targets[j];
        const scoreA = ((a.inflight + 1) * Math.max(a.ewmaMs, 1)) / a.weight;
        const scoreB = ((b.inflight + 1) * Math.max(b.ewmaMs, 1)) / b.weight;
        return scoreB < scoreA ? b : a;
    };
};
//# sourceMappingURL=p2c.js.map