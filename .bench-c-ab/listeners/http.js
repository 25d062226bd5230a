import http from 'node:http';
import { handleRequest } from '../http/handler.js';
import { ERROR_CODES } from '../errors.js';
/**
 * An `http` listener: a node:http server whose requests are handled by the
 * listener runtime of the snapshot current when each request arrives.
 */
export function createHttpServer(binding, config) {
    const server = http.createServer({
        keepAliveTimeout: config.timeouts.keepAlive,
        headersTimeout: config.timeouts.headers,
        requestTimeout: config.timeouts.request,
        maxHeaderSize: config.maxHeaderSize,
        noDelay: true,
        // A whole upstream read (up to 64 KiB) fits in the response's buffer, so a
        // large body does not pause and resume the upstream socket on every chunk.
        highWaterMark: 256 * 1024,
        // How often Node checks the headers/request timeouts (its default, 30 s, makes them fire late).
        connectionsCheckingInterval: 1000,
    }, (req, res) => {
        const listener = binding.current().listeners.get(binding.name);
        if (listener === undefined || binding.draining())
            res.shouldKeepAlive = false;
        if (listener === undefined) {
            res.writeHead(503, { 'content-type': 'application/json', connection: 'close' });
            res.end('{"error":"listener is shutting down","code":"LISTENER_CLOSED"}');
            return;
        }
        handleRequest(listener, req, res);
    });
    server.on('clientError', onClientError);
    return server;
}
/** Applies timeouts that node:http lets us change on a live server (maxHeaderSize needs a new socket). */
export function updateHttpServer(server, config) {
    server.keepAliveTimeout = config.timeouts.keepAlive;
    server.headersTimeout = config.timeouts.headers;
    server.requestTimeout = config.timeouts.request;
}
const REASONS = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };
/**
 * Malformed HTTP (RFC 9112 parse errors, a head over maxHeaderSize, a head
 * not received in time): answer once with the mapped status and a JSON body
 * (no request id exists yet), then close. Never throws.
 */
function onClientError(err, socket) {
    if (socket.writable && !socket._httpMessage) {
        const code = err.code === 'HPE_HEADER_OVERFLOW' ? 'HEADERS_TOO_LARGE' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'REQUEST_TIMEOUT' : 'BAD_REQUEST';
        const { status, message } = ERROR_CODES[code];
        const body = JSON.stringify({ error: err.code ? `${message} (${err.code})` : message, code });
        socket.end(`HTTP/1.1 ${status} ${REASONS[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
        socket.setTimeout(5000, () => socket.destroy());
    }
    else {
        socket.destroy();
    }
}
//# sourceMappingURL=http.js.map