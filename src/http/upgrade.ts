import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { GatewayError } from '../errors.js';
import type { ListenerRuntime } from '../snapshot/snapshot.js';
import { readInbound } from './forwarded.js';
import { answerLocally, fail, log, requestFilter } from './exchange/phases.js';
import { createContext, handleRequest, match, readTarget } from './handler.js';
import { dialUpstream } from './websocket/dial.js';
import { unwatchHandshake, watchHandshake } from './websocket/handshake-watch.js';
import type { WebSocketSessions } from './websocket/sessions.js';
import { CLOSE_GRACE_MS } from './websocket/tunnel.js';

/**
 * The lifecycle of an HTTP/1.1 request with an `Upgrade` header (node:http's
 * 'upgrade' event, on a plain or TLS socket), on the snapshot current when
 * it arrived; the same phases as every exchange (exchange/phases.ts):
 *   match → requestFilter → (direct response | pickTarget → upstreamRequest
 *   (the handshake) → responseFilter → session) → log, exactly once.
 *
 * - `Upgrade: websocket` (RFC 6455 §4.1: a GET on HTTP/1.1 with a
 *   Sec-WebSocket-Key, else 400) is matched like any request; the route's
 *   middlewares run on the handshake, so auth, IP lists, rate limits and
 *   quotas answer 401/403/429 before any 101. A route with
 *   `websocket.enabled: false` answers 403. A `respond:` route or a token
 *   endpoint answers as usual. Otherwise websocket/dial.ts proxies the
 *   handshake and, on 101, tunnels the session.
 * - Any other upgrade token (e.g. `h2c`) is ignored, as RFC 9110 §7.8
 *   allows: a request without a body is served as a plain HTTP/1.1 request
 *   (the Upgrade header is hop-by-hop and not forwarded); one with a body is
 *   refused with 400.
 *
 * Every answer that is not a 101 is written with a node:http
 * ServerResponse on the upgraded socket (so writeError and
 * writeDirectResponse work unchanged) and the connection then closes: the
 * HTTP parser has already let go of the socket. The log phase runs once:
 * after that answer, or when the WebSocket session ends.
 */
export function handleUpgrade(listener: ListenerRuntime, req: IncomingMessage, socket: Duplex, head: Buffer, sessions: WebSocketSessions): void {
  const client = socket as Socket;
  // node:http removed its own listeners: from now on the socket is ours to watch.
  watchHandshake(client);
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  try {
    res.assignSocket(client);
  } catch {
    // The socket still carries an earlier pipelined response: no clean way to answer.
    client.destroy();
    return;
  }
  res.once('finish', () => closeAfterAnswer(client));

  const inbound = readInbound(req, listener.trustedProxies, listener.tls);
  const websocket = upgradesToWebSocket(req.headers.upgrade);
  if (!websocket && !inbound.hasBody) {
    // node:http stopped parsing at the head of an upgrade, so this request never ends on its own; it has no body.
    req.complete = true;
    req.push(null);
    return handleRequest(listener, req, res);
  }

  const ctx = createContext(listener, req, res, inbound);
  const bad = readTarget(ctx, inbound);
  if (bad !== null) return fail(ctx, bad);
  if (!websocket) return fail(ctx, new GatewayError('BAD_REQUEST', `upgrade to "${String(req.headers.upgrade)}" with a request body is not supported`));
  const invalid = invalidHandshake(req, inbound.hasBody);
  if (invalid !== null) return fail(ctx, new GatewayError('BAD_REQUEST', invalid));

  if (!match(ctx)) return fail(ctx, new GatewayError('ROUTE_NOT_FOUND'));
  if (!ctx.route!.config.websocket.enabled) return fail(ctx, new GatewayError('FORBIDDEN', 'WebSocket upgrades are disabled on this route'));

  const ticket = sessions.ticket();
  requestFilter(ctx, () => {
    if (client.destroyed) {
      ctx.status = 499;
      return log(ctx);
    }
    if (!answerLocally(ctx)) dialUpstream(ctx, client, head, sessions, ticket, log);
  });
}

/** Whether an Upgrade value lists `websocket` (tokens are case-insensitive, RFC 9110 §7.8). */
function upgradesToWebSocket(value: string | undefined): boolean {
  if (value === undefined) return false;
  for (const token of value.split(',')) if (token.trim().toLowerCase() === 'websocket') return true;
  return false;
}

/** Why a WebSocket opening handshake is malformed (RFC 6455 §4.1, §4.2.1), or null. */
function invalidHandshake(req: IncomingMessage, hasBody: boolean): string | null {
  if (req.method !== 'GET') return 'a WebSocket handshake must be a GET request';
  if (req.httpVersionMajor !== 1 || req.httpVersionMinor < 1) return 'a WebSocket handshake needs HTTP/1.1';
  if (hasBody) return 'a WebSocket handshake has no request body';
  if (req.headers['sec-websocket-key'] === undefined) return 'missing Sec-WebSocket-Key header';
  return null;
}

/**
 * After an answer that is not a 101: end our half, read and drop what the
 * client still sends until it closes, and destroy the socket if it lingers.
 */
function closeAfterAnswer(socket: Socket): void {
  if (socket.destroyed) return;
  unwatchHandshake(socket);
  socket.end();
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
  socket.once('close', () => clearTimeout(timer));
}
