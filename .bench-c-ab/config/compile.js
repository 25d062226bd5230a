import { IpSet } from '../http/ip.js';
import { Router } from '../http/router.js';
import { compileDirectResponse } from '../http/respond.js';
import { MiddlewareChain } from '../middlewares/chain.js';
import { headers } from '../middlewares/headers.js';
import { rewrite } from '../middlewares/rewrite.js';
import { Upstream } from '../upstream/upstream.js';
import { ConsumerRegistry } from '../consumers/consumer.js';
import { AUTH_MIDDLEWARES, MIDDLEWARE_FACTORIES } from '../middlewares/registry.js';
import { consumerQuota } from '../middlewares/consumer-quota.js';
import { createTokenEndpoint } from '../consumers/token-endpoint.js';
/** Builds routers, middleware chains and upstream pools once. `config` must be validated. */
export function compile(config, version, deps) {
    const upstreams = new Map();
    const poolKeys = new Set();
    for (const u of config.upstreams) {
        const upstream = new Upstream(u, deps.pools);
        upstreams.set(u.name, upstream);
        for (const k of upstream.poolKeys)
            poolKeys.add(k);
    }
    const consumers = new ConsumerRegistry(config.consumers);
    const routesByListener = new Map();
    for (const r of config.routes) {
        // Policies first (auth, limits), then the changes to what goes upstream.
        const middlewares = r.middlewares.map(({ name, options }) => {
            const factory = MIDDLEWARE_FACTORIES[name];
            if (!factory)
                throw new Error(`routes ${r.name}: middleware ${name} has no implementation`);
            return factory(options, { route: r, state: deps.state, consumers, logger: deps.logger });
        });
        // Consumer quotas (qps, qpd) right after the last auth middleware, once a consumer is known.
        const lastAuth = r.middlewares.findLastIndex((m) => AUTH_MIDDLEWARES.has(m.name));
        if (lastAuth >= 0)
            middlewares.splice(lastAuth + 1, 0, consumerQuota({ route: r, state: deps.state, consumers, logger: deps.logger }));
        if (r.stripPrefix || r.rewrite.length > 0) {
            middlewares.push(rewrite({ stripPrefix: r.stripPrefix ? r.match.pathPrefix : undefined, rules: r.rewrite }));
        }
        const headerRules = headers(r.requestHeaders, r.responseHeaders);
        if (headerRules)
            middlewares.push(headerRules);
        const runtime = {
            name: r.name,
            config: r,
            chain: new MiddlewareChain(middlewares),
            preserveHost: r.preserveHost,
            upstream: r.upstream === undefined ? undefined : upstreams.get(r.upstream),
            respond: r.respond === undefined ? undefined : compileDirectResponse(r.respond),
            endpoint: r['token-endpoint'] === undefined ? undefined : createTokenEndpoint(r['token-endpoint'], consumers),
        };
        const list = routesByListener.get(r.listener) ?? [];
        list.push({ config: r, value: runtime });
        routesByListener.set(r.listener, list);
    }
    const listeners = new Map();
    const accessLogs = new Set();
    for (const l of config.listeners) {
        const dest = l.accessLog === false ? null : l.accessLog === true ? 'stdout' : l.accessLog.path;
        if (dest !== null)
            accessLogs.add(dest);
        listeners.set(l.name, {
            name: l.name,
            config: l,
            router: new Router(routesByListener.get(l.name) ?? []),
            trustedProxies: new IpSet(l.trustedProxies),
            accessLog: dest === null ? null : deps.accessLogs.get(dest),
            stats: deps.stats,
            tls: false,
        });
    }
    return { version, config, listeners, upstreams, consumers, poolKeys, accessLogs };
}
//# sourceMappingURL=compile.js.map