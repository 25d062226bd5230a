import type http2 from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../observability/logger.js';
import { splice } from '../../l4/splice.js';
import { encodeProxyHeader } from '../../l4/proxy-protocol/encode.js';
import { Throttle, type TokenBucket } from '../bandwidth.js';
import { HEADER, STREAM_STATUS } from '../protocol.js';
import { TunnelSocket } from '../socket.js';
import { proxyOrigin } from './origin.js';
import type { LocalService } from './services.js';

/**
 * Serves one CONNECT stream the gateway opened: dials the service's local
 * address, answers 200 once connected (502 with the reason if not), then
 * relays bytes both ways with half-close until both sides are done.
 *
 * - `proxyProtocol: v1|v2`: the PROXY header is the first thing written
 *   to the local service, before any byte of the stream. Its addresses are
 *   the stream's `portico-client` / `portico-server` headers; when they are
 *   absent or not `ip:port` (a pooled HTTP connection carries many
 *   clients, and the headers are untrusted input) the header is v1
 *   `PROXY UNKNOWN` / v2 `LOCAL`: the service then uses the connection's
 *   own addresses (HTTP services get X-Forwarded-For instead).
 * - `bandwidth:`: each direction passes through a Throttle on the
 *   service's shared bucket for that direction, so all the service's
 *   streams together stay within the rate (plus one burst).
 */
export function serveStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, service: LocalService, logger: Logger): void {
  const { local, connectTimeout, proxyProtocol } = service.config;
  const socket = net.connect({ host: local.host, port: local.port, allowHalfOpen: true, noDelay: true });
  let connected = false;
  const timer = setTimeout(() => socket.destroy(new Error(`no connection within ${connectTimeout} ms`)), connectTimeout);
  const onFail = (err: Error) => {
    clearTimeout(timer);
    if (connected) return;
    logger.warn({ code: service.code, local: `${local.host}:${local.port}`, reason: err.message }, 'agent: local service unreachable');
    if (!stream.destroyed && !stream.headersSent) stream.respond({ ':status': STREAM_STATUS.localFailed, [HEADER.error]: `local service unreachable: ${err.message}` }, { endStream: true });
  };
  socket.once('error', onFail);
  stream.once('close', () => {
    if (!connected) {
      clearTimeout(timer);
      socket.destroy();
    }
  });
  socket.once('connect', () => {
    clearTimeout(timer);
    socket.off('error', onFail);
    if (stream.destroyed) return void socket.destroy();
    connected = true;
    let headerBytes = 0;
    if (proxyProtocol !== 'none') {
      const header = encodeProxyHeader(proxyProtocol, proxyOrigin(headers[HEADER.client], headers[HEADER.server]));
      headerBytes = header.length;
      socket.write(header);
    }
    try {
      stream.respond({ ':status': STREAM_STATUS.ok });
    } catch {
      // The stream or its session closed meanwhile (ERR_HTTP2_INVALID_STREAM): nothing to serve.
      return void socket.destroy();
    }
    service.track(socket, headerBytes);
    const tunnel = new TunnelSocket(stream, {}, { allowHalfOpen: true });
    if (service.bucketIn === null || service.bucketOut === null) splice(tunnel.asSocket(), socket, { idleMs: 0 }, () => undefined);
    else throttledSplice(tunnel, socket, service.bucketIn, service.bucketOut);
  });
}

/**
 * splice() with a Throttle in each direction: gateway → local on `bucketIn`,
 * local → gateway on `bucketOut`. The same contract: backpressure (pipe),
 * half-close (a FIN ends the other side's write half once the throttle
 * passed every byte before it), and a side closing abnormally destroys the
 * other. Once both sides closed the throttles are destroyed, so no timer
 * waiting for tokens outlives the stream.
 */
function throttledSplice(tunnel: Duplex, local: net.Socket, bucketIn: TokenBucket, bucketOut: TokenBucket): void {
  const up = new Throttle({ bucket: bucketIn });
  const down = new Throttle({ bucket: bucketOut });
  const ignore = () => undefined;
  for (const s of [tunnel, local, up, down]) s.on('error', ignore);
  let open = 2;
  const onClose = (side: Duplex, other: Duplex) => () => {
    const clean = side.readableEnded && side.writableFinished;
    if (!clean) {
      other.destroy();
      up.destroy();
      down.destroy();
    }
    if (--open === 0) {
      up.destroy();
      down.destroy();
    }
  };
  tunnel.once('close', onClose(tunnel, local));
  local.once('close', onClose(local, tunnel));
  tunnel.pipe(up).pipe(local);
  local.pipe(down).pipe(tunnel);
}
