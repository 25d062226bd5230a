/** Plain rotation in config order, ignoring weights. */
export const roundRobin = (targets) => {
    const n = targets.length;
    if (n === 0)
        return () => undefined;
    if (n === 1) {
        const only = targets[0];
        return () => only;
    }
    let next = 0;
    return () => {
        const t = targets[next];
        next = next + 1 === n ? 0 : next + 1;
        return t;
    };
};
//# sourceMappingURL=round-robin.js.map