/**
 * Normalizes a Host header or :authority for matching: lower-case, port and
 * IPv6 brackets removed, one trailing dot removed. Returns '' for a missing host.
 */
export function normalizeHost(value) {
    if (!value)
        return '';
    let host = value;
    if (host.charCodeAt(0) === 91 /* [ */) {
        const end = host.indexOf(']');
        host = end > 0 ? host.slice(1, end) : host.slice(1);
    }
    else {
        const colon = host.indexOf(':');
        if (colon >= 0)
            host = host.slice(0, colon);
    }
    if (host.endsWith('.'))
        host = host.slice(0, -1);
    return host.toLowerCase();
}
//# sourceMappingURL=host.js.map