/**
 * Hop-by-hop header rules (RFC 9110 §7.6.1): these headers describe one
 * connection, not the message, so a proxy removes them in both directions,
 * together with every header named in the `Connection` header.
 * The list follows Go's net/http/httputil.ReverseProxy, which adds the
 * non-standard but widely sent `Proxy-Connection` and `Keep-Alive`
 * (RFC 2068 §19.7.1).
 */
const HOP_BY_HOP = new Set([
    'connection',
    'proxy-connection',
    'keep-alive',
    'proxy-authenticate',
    'proxy-authorization',
    'te',
    'trailer',
    'transfer-encoding',
    'upgrade',
]);
/** `name` must be lower-case. */
export function isHopByHop(name) {
    return HOP_BY_HOP.has(name);
}
/**
 * The header names listed in a `Connection` value (lower-cased), or null
 * when it names none beyond the usual `keep-alive` / `close`.
 */
export function connectionTokens(value) {
    if (value === undefined)
        return null;
    const text = Array.isArray(value) ? value.join(',') : value;
    if (text.length <= 10) {
        const v = text.toLowerCase();
        if (v === 'keep-alive' || v === 'close')
            return null;
    }
    let tokens = null;
    for (const raw of text.split(',')) {
        const t = raw.trim().toLowerCase();
        if (t === '' || t === 'close' || t === 'keep-alive')
            continue;
        (tokens ??= new Set()).add(t);
    }
    return tokens;
}
//# sourceMappingURL=hop-by-hop.js.map