export const BALANCERS = [
    'random',
    'round-robin',
    'weighted-round-robin',
    'consistent-hash',
    'least-connections',
    'p2c',
];
//# sourceMappingURL=balancer.js.map