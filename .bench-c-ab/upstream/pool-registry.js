import { Pool } from 'undici';
/**
 * Keep-alive connection pools to targets, shared across snapshots so that a
 * reload does not drop warm connections: a pool is keyed by its target and
 * options, and `retain` (called after a swap) closes the pools the new
 * snapshot no longer uses. undici's `close` lets requests already in
 * flight on those pools finish first.
 */
export class PoolRegistry {
    pools = new Map();
    get(address, o) {
        const key = `${address}|${o.connectTimeout}|${o.responseTimeout}|${o.idleTimeout}|${o.maxConnections}`;
        let pool = this.pools.get(key);
        if (!pool) {
            pool = new Pool(`http://${address}`, {
                connections: o.maxConnections > 0 ? o.maxConnections : null,
                pipelining: 1,
                connectTimeout: o.connectTimeout,
                // Read buffer per upstream socket: a 64 KiB read must not stop and
                // restart the socket's reading (see listeners/http.ts for the other side).
                connect: { highWaterMark: 256 * 1024 },
                headersTimeout: o.responseTimeout,
                bodyTimeout: o.idleTimeout,
                keepAliveTimeout: o.idleTimeout || 60_000,
                keepAliveMaxTimeout: o.idleTimeout || 60_000,
                // Let the upstream's own Keep-Alive hint shorten our idle time, with a
                // margin so we never reuse a connection it is about to close.
                keepAliveTimeoutThreshold: 1000,
            });
            this.pools.set(key, pool);
        }
        return { key, pool };
    }
    /** Closes (gracefully) every pool whose key is not in `keep`. */
    async retain(keep) {
        const closing = [];
        for (const [key, pool] of this.pools) {
            if (keep.has(key))
                continue;
            this.pools.delete(key);
            closing.push(pool.close().catch(() => undefined));
        }
        await Promise.all(closing);
    }
    /** Closes every pool, aborting requests still in flight. */
    async destroy() {
        const all = [...this.pools.values()];
        this.pools.clear();
        await Promise.all(all.map((p) => p.destroy().catch(() => undefined)));
    }
}
//# sourceMappingURL=pool-registry.js.map