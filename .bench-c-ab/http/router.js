import { isIP } from 'node:net';
import { normalizeHost } from './host.js';
/**
 * A listener's router, built once per snapshot. Routes are ordered by
 * specificity and the first that matches wins:
 *   1. higher `priority`;
 *   2. host: exact > wildcard (longer suffix first) > any;
 *   3. path: exact > prefix (longer first) > regex > any;
 *   4. routes with `methods` before routes without;
 *   5. more header matches first;
 *   6. config order.
 * Requests whose host has exact-host routes scan a list made for that host;
 * all others scan the list of wildcard and host-less routes.
 */
export class Router {
    byHost = new Map();
    generic;
    constructor(routes) {
        const entries = [];
        routes.forEach(({ config, value }, order) => {
            const hosts = config.match.host === undefined ? [undefined] : [config.match.host].flat();
            for (const h of hosts)
                entries.push(makeEntry(config, value, h, order));
        });
        entries.sort(compareEntries);
        this.generic = entries.filter((e) => e.hostKind !== HOST_EXACT);
        for (const e of entries) {
            if (e.hostKind !== HOST_EXACT)
                continue;
            if (!this.byHost.has(e.host)) {
                this.byHost.set(e.host, entries.filter((x) => x.hostKind !== HOST_EXACT || x.host === e.host));
            }
        }
    }
    /** `host` must come from normalizeHost; `path` from splitTarget. */
    match(host, path, method, req) {
        const list = this.byHost.get(host) ?? this.generic;
        for (let i = 0; i < list.length; i++) {
            const e = list[i];
            if (e.hostKind === HOST_WILDCARD && !(host.endsWith(e.host) && host.length > e.host.length))
                continue;
            if (!matchPath(e, path))
                continue;
            if (e.methods !== null && !e.methods.has(method))
                continue;
            if (e.headers !== null && !matchHeaders(e.headers, req.headers))
                continue;
            return e.value;
        }
        return undefined;
    }
}
const HOST_ANY = 0;
const HOST_WILDCARD = 1;
const HOST_EXACT = 2;
const PATH_ANY = 0;
const PATH_REGEX = 1;
const PATH_PREFIX = 2;
const PATH_EXACT = 3;
function makeEntry(config, value, host, order) {
    const m = config.match;
    let hostKind = HOST_ANY;
    let hostText = '';
    if (host !== undefined && host !== '*') {
        if (host.startsWith('*.')) {
            hostKind = HOST_WILDCARD;
            hostText = normalizeHost(host.slice(1).replace(/^\[|\]$/g, ''));
            hostText = '.' + hostText.replace(/^\./, '');
        }
        else {
            hostKind = HOST_EXACT;
            // A bare IPv6 literal is bracketed so normalizeHost does not take its last group for a port.
            hostText = normalizeHost(isIP(host) === 6 ? `[${host}]` : host);
        }
    }
    let pathKind = PATH_ANY;
    let pathText = '';
    let pathRegex = null;
    if (m.path !== undefined) {
        pathKind = PATH_EXACT;
        pathText = m.path;
    }
    else if (m.pathPrefix !== undefined) {
        pathKind = PATH_PREFIX;
        pathText = m.pathPrefix.replace(/\/+$/, '');
    }
    else if (m.pathRegex !== undefined) {
        pathKind = PATH_REGEX;
        pathRegex = new RegExp(m.pathRegex);
    }
    const headers = m.headers ? Object.entries(m.headers).map(([k, v]) => [k.toLowerCase(), headerTest(v)]) : null;
    return {
        value,
        order,
        priority: config.priority,
        hostKind,
        host: hostText,
        pathKind,
        pathText,
        pathRegex,
        methods: m.methods ? new Set(m.methods) : null,
        headers: headers && headers.length > 0 ? headers : null,
    };
}
function headerTest(m) {
    if (typeof m === 'string')
        return (v) => v === m;
    if ('regex' in m) {
        const re = new RegExp(m.regex);
        return (v) => v !== undefined && re.test(v);
    }
    return m.present ? (v) => v !== undefined : (v) => v === undefined;
}
function matchPath(e, path) {
    switch (e.pathKind) {
        case PATH_ANY:
            return true;
        case PATH_EXACT:
            return path === e.pathText;
        case PATH_PREFIX: {
            // Segment boundary: `/users` matches `/users` and `/users/…`, not `/usersx`.
            const p = e.pathText;
            return path.startsWith(p) && (path.length === p.length || path.charCodeAt(p.length) === 47);
        }
        default:
            return e.pathRegex.test(path);
    }
}
function matchHeaders(tests, headers) {
    for (const [name, test] of tests) {
        const v = headers[name];
        if (!test(Array.isArray(v) ? v.join(', ') : v))
            return false;
    }
    return true;
}
function compareEntries(a, b) {
    return (b.priority - a.priority ||
        b.hostKind - a.hostKind ||
        b.host.length - a.host.length ||
        b.pathKind - a.pathKind ||
        b.pathText.length - a.pathText.length ||
        Number(b.methods !== null) - Number(a.methods !== null) ||
        (b.headers?.length ?? 0) - (a.headers?.length ?? 0) ||
        a.order - b.order);
}
//# sourceMappingURL=router.js.map