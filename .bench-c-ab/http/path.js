/**
 * Splits a request target into path and query, resolving `.` and `..`
 * segments (RFC 3986 §5.2.4) so that `/public/../admin` cannot reach a route
 * meant for `/admin` while matching `/public`. Percent-encoding is left as
 * sent. Returns undefined for a target that is not origin-form or
 * absolute-form (RFC 9112 §3.2), except `*`, which is kept as the path.
 */
export function splitTarget(target) {
    let start = 0;
    if (target.charCodeAt(0) !== 47 /* / */) {
        if (target === '*')
            return { path: '*', query: '' };
        const head = target.slice(0, 8).toLowerCase(); // schemes are case-insensitive (RFC 3986 §3.1)
        const scheme = head.startsWith('http://') ? 7 : head === 'https://' ? 8 : -1;
        if (scheme < 0)
            return undefined;
        const slash = target.indexOf('/', scheme);
        const q = target.indexOf('?', scheme);
        if (slash < 0 || (q >= 0 && q < slash))
            return { path: '/', query: q >= 0 ? target.slice(q) : '' };
        start = slash;
    }
    const q = target.indexOf('?', start);
    let path = q < 0 ? (start === 0 ? target : target.slice(start)) : target.slice(start, q);
    const query = q < 0 ? '' : target.slice(q);
    if (path.includes('/.') || path.includes('%2e') || path.includes('%2E'))
        path = removeDotSegments(path);
    return { path, query };
}
function removeDotSegments(path) {
    const out = [];
    const segments = path.split('/');
    for (let i = 1; i < segments.length; i++) {
        const s = segments[i];
        const lower = s.toLowerCase();
        if (lower === '.' || lower === '%2e') {
            if (i === segments.length - 1)
                out.push('');
        }
        else if (lower === '..' || lower === '%2e%2e' || lower === '.%2e' || lower === '%2e.') {
            out.pop();
            if (i === segments.length - 1)
                out.push('');
        }
        else {
            out.push(s);
        }
    }
    return '/' + out.join('/');
}
//# sourceMappingURL=path.js.map