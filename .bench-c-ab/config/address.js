/**
 * Parses `host:port` or `[ipv6]:port`. The host is returned without
 * brackets. Returns undefined for anything else, or a port outside 0-65535.
 */
export function parseHostPort(value) {
    let host;
    let portText;
    if (value.startsWith('[')) {
        const end = value.indexOf(']');
        if (end < 0 || value[end + 1] !== ':')
            return undefined;
        host = value.slice(1, end);
        portText = value.slice(end + 2);
    }
    else {
        const i = value.lastIndexOf(':');
        if (i <= 0 || value.indexOf(':') !== i)
            return undefined;
        host = value.slice(0, i);
        portText = value.slice(i + 1);
    }
    if (!/^\d{1,5}$/.test(portText) || host === '')
        return undefined;
    const port = Number(portText);
    return port <= 65535 ? { host, port } : undefined;
}
/** `host:port` with IPv6 hosts bracketed, as used in URLs and logs. */
export function formatHostPort({ host, port }) {
    return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
//# sourceMappingURL=address.js.map