import { createAdminServer } from './admin/server.js';
import { compile } from './config/compile.js';
import { formatHostPort } from './config/address.js';
import { createHttpServer, updateHttpServer } from './listeners/http.js';
import { AccessLogRegistry } from './observability/access-log.js';
import { PoolRegistry } from './upstream/pool-registry.js';
import { swapUpstreams } from './upstream/upstream.js';
import { Stats } from './observability/stats.js';
import { createStateStore } from './state/index.js';
/**
 * The running gateway: the current snapshot, the sockets bound for it, and
 * what snapshots share (connection pools, access-log files).
 *
 * `apply` builds new, then swaps: it compiles the config and binds any new
 * addresses first; only if all of that succeeds is the snapshot swapped in.
 * Listeners whose address did not change keep their sockets; requests in
 * flight finish on the snapshot they started with.
 */
export class Gateway {
    snapshot;
    bindings = new Map();
    admin;
    pools = new PoolRegistry();
    accessLogs = new AccessLogRegistry();
    /** The state store and the `state:` config it was built from (kept across reloads while that is unchanged). */
    state;
    /** Request statistics, kept across reloads (see observability/stats.ts). */
    stats = new Stats(() => this.state?.store);
    version = 0;
    stopping = false;
    queue = Promise.resolve();
    logger;
    constructor(logger) {
        this.logger = logger;
    }
    get current() {
        if (!this.snapshot)
            throw new Error('gateway has no snapshot yet');
        return this.snapshot;
    }
    /** Applies a validated config. Calls are serialized. */
    apply(config) {
        const run = this.queue.then(() => this.applyNow(config));
        this.queue = run.catch(() => undefined);
        return run;
    }
    async applyNow(config) {
        if (this.stopping)
            return { ok: false, error: 'gateway is stopping' };
        let next;
        const stateKey = JSON.stringify(config.state);
        let state = this.state?.key === stateKey ? this.state : undefined;
        try {
            state ??= { key: stateKey, store: createStateStore(config.state, this.logger) };
            next = compile(config, this.version + 1, { pools: this.pools, accessLogs: this.accessLogs, state: state.store, logger: this.logger, stats: this.stats });
        }
        catch (err) {
            if (state && state !== this.state)
                void state.store.close();
            this.releaseUnused();
            return { ok: false, error: `compile failed: ${err.message}` };
        }
        const created = [];
        let admin = this.admin;
        let newAdmin;
        try {
            for (const l of config.listeners) {
                const key = bindingKey(l);
                const existing = this.bindings.get(key);
                if (existing)
                    continue;
                const bound = this.makeBinding(key, l.name, l);
                await listen(bound.server, l.listen);
                created.push(bound);
            }
            const adminKey = config.admin ? formatHostPort(config.admin.listen) : undefined;
            if (adminKey !== admin?.key) {
                if (config.admin) {
                    const server = createAdminServer(() => ({
                        apiKey: this.snapshot?.config.admin?.apiKey,
                        status: () => this.status(),
                        stats: () => this.statsReport(),
                    }));
                    await listen(server, config.admin.listen);
                    newAdmin = { key: adminKey, server };
                }
            }
        }
        catch (err) {
            if (state !== this.state)
                void state.store.close();
            await Promise.all([...created.map((b) => closeServer(b.server, 0)), newAdmin && closeServer(newAdmin.server, 0)]);
            this.releaseUnused();
            return { ok: false, error: err.message };
        }
        // Swap. Everything below only releases what the new snapshot does not use.
        const previous = this.snapshot;
        this.snapshot = next;
        // Health checks run for the current snapshot only (its target health carries over).
        swapUpstreams(next.upstreams, previous?.upstreams, this.logger);
        if (state !== this.state) {
            void this.state?.store.close();
            this.state = state;
        }
        this.version = next.version;
        for (const b of created)
            this.bindings.set(b.key, b);
        const keep = new Set();
        for (const l of config.listeners) {
            const key = bindingKey(l);
            keep.add(key);
            const b = this.bindings.get(key);
            b.name = l.name;
            updateHttpServer(b.server, l);
        }
        for (const [key, b] of this.bindings) {
            if (keep.has(key))
                continue;
            this.bindings.delete(key);
            void closeServer(b.server, config.shutdownTimeout);
        }
        const adminKey = config.admin ? formatHostPort(config.admin.listen) : undefined;
        if (adminKey !== admin?.key) {
            if (admin)
                void closeServer(admin.server, 1000);
            admin = newAdmin;
            this.admin = admin;
        }
        this.releaseUnused();
        this.logger.level = config.log.level;
        if (previous)
            this.logger.info({ version: next.version }, 'config reloaded');
        return { ok: true, version: next.version };
    }
    makeBinding(key, name, config) {
        const partial = {
            name,
            current: () => this.current,
            draining: () => this.stopping,
        };
        const server = createHttpServer(partial, config);
        return Object.assign(partial, { key, server });
    }
    /** Closes pools and log files that the current snapshot does not use. */
    releaseUnused() {
        const snap = this.snapshot;
        void this.pools.retain(snap?.poolKeys ?? new Set());
        this.accessLogs.retain(snap?.accessLogs ?? new Set());
    }
    /** The bound address of a listener (useful with port 0). */
    listenerAddress(name) {
        for (const b of this.bindings.values()) {
            if (b.name !== name)
                continue;
            const a = b.server.address();
            return a ? { host: a.address, port: a.port } : undefined;
        }
        return undefined;
    }
    adminAddress() {
        const a = this.admin?.server.address();
        return a ? { host: a.address, port: a.port } : undefined;
    }
    status() {
        const snap = this.snapshot;
        return {
            version: snap?.version ?? 0,
            listeners: snap
                ? [...snap.listeners.values()].map((l) => {
                    const a = this.listenerAddress(l.name);
                    return { name: l.name, protocol: l.config.protocol, address: a ? formatHostPort(a) : null };
                })
                : [],
            upstreams: snap ? [...snap.upstreams.values()].map((u) => ({ name: u.name, balancer: u.config.balancer, targets: u.targets.map((t) => ({ address: t.address, weight: t.weight, inflight: t.inflight })) })) : [],
        };
    }
    /** Statistics of every series, by dimension (GET /stats on the admin API). */
    async statsReport() {
        const report = { route: {}, upstream: {}, target: {}, consumer: {} };
        for (const dim of Object.keys(report)) {
            for (const name of this.stats.names(dim))
                report[dim][name] = await this.stats.view(dim, name);
        }
        return report;
    }
    /**
     * Graceful stop: stop accepting, let in-flight requests finish for up to
     * `graceMs` (responses meanwhile carry `Connection: close`), then close
     * what remains, the pools and the logs.
     */
    async stop(graceMs = this.snapshot?.config.shutdownTimeout ?? 10_000) {
        if (this.stopping)
            return;
        this.stopping = true;
        await this.queue;
        swapUpstreams(undefined, this.snapshot?.upstreams, this.logger);
        const closing = [...this.bindings.values()].map((b) => closeServer(b.server, graceMs));
        if (this.admin)
            closing.push(closeServer(this.admin.server, 0));
        await Promise.all(closing);
        this.bindings.clear();
        this.admin = undefined;
        await this.pools.destroy();
        await this.stats.close();
        await this.state?.store.close();
        this.accessLogs.close();
    }
}
function listen(server, address) {
    return new Promise((resolve, reject) => {
        const onError = (err) => {
            server.off('listening', onListening);
            reject(new Error(`cannot listen on ${formatHostPort(address)}: ${err.message}`));
        };
        const onListening = () => {
            server.off('error', onError);
            resolve();
        };
        server.once('error', onError);
        server.once('listening', onListening);
        server.listen({ host: address.host, port: address.port, exclusive: true });
    });
}
/** Stops accepting; idle keep-alive connections close now, busy ones when done or after `graceMs`. */
function closeServer(server, graceMs) {
    return new Promise((resolve) => {
        if (!server.listening) {
            server.closeAllConnections?.();
            return resolve();
        }
        const sweep = setInterval(() => server.closeIdleConnections(), 100);
        const force = setTimeout(() => server.closeAllConnections(), graceMs);
        server.close(() => {
            clearInterval(sweep);
            clearTimeout(force);
            resolve();
        });
        server.closeIdleConnections();
    });
}
/** Bindings are kept across reloads by configured address; port 0 means "a fresh port for this listener". */
function bindingKey(l) {
    const address = formatHostPort(l.listen);
    return l.listen.port === 0 ? `${address}#${l.name}` : address;
}
//# sourceMappingURL=gateway.js.map