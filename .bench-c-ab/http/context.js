/**
 * One request's state, created when the request arrives and passed through
 * the phases: match → request middlewares → pick target → upstream request
 * → response middlewares → log. The inbound request (`req`) is never
 * mutated; what goes upstream is built in the `upstream*` fields.
 */
export class RequestContext {
    req;
    res;
    listener;
    requestId;
    /** process.hrtime.bigint() when the request arrived. */
    startedAt;
    /** The trusted client address (see forwarded.ts). */
    clientIp;
    /** Normalized host used for matching (no port, lower-case). */
    host;
    /** Inbound path after dot-segment removal, without the query. */
    path;
    /** Inbound query including its leading `?`, or ''. */
    query;
    /** The inbound Host header, if any. */
    hostHeader;
    /** Whether the inbound request has a body (RFC 9112 §6.3). */
    hasBody = false;
    /** The inbound Content-Length, or -1 when absent. */
    contentLength = -1;
    route = undefined;
    /** The consumer an auth middleware identified, if any. */
    consumer = undefined;
    upstream = undefined;
    target = undefined;
    /** Path (without query) to send upstream; middlewares may rewrite it. */
    upstreamPath = '';
    /** Headers to send upstream as a flat `[name, value, …]` list; middlewares may edit it. */
    upstreamHeaders = [];
    /** Status sent downstream (0 until the head is written). */
    status = 0;
    /** Response body bytes written downstream. */
    bytesSent = 0;
    /** hrtime when the upstream request was dispatched / the response head arrived / the body ended. */
    upstreamStartedAt = 0n;
    upstreamHeadersAt = 0n;
    error = undefined;
    constructor(req, res, listener, requestId, clientIp) {
        this.req = req;
        this.res = res;
        this.listener = listener;
        this.requestId = requestId;
        this.startedAt = process.hrtime.bigint();
        this.clientIp = clientIp;
        this.host = '';
        this.path = '';
        this.query = '';
        this.hostHeader = undefined;
    }
}
//# sourceMappingURL=context.js.map