import type http2 from 'node:http2';
import net from 'node:net';
import type { Logger } from '../../observability/logger.js';
import { splice } from '../../l4/splice.js';
import { HEADER, STREAM_STATUS } from '../protocol.js';
import { TunnelSocket } from '../socket.js';
import type { LocalService } from './services.js';

/**
 * Serves one CONNECT stream the gateway opened: dials the service's local
 * address, answers 200 once connected (502 with the reason if not), then
 * relays bytes both ways with half-close until both sides are done.
 */
export function serveStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, service: LocalService, logger: Logger): void {
  const { local, connectTimeout } = service.config;
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
    if (!connected) socket.destroy();
  });
  socket.once('connect', () => {
    clearTimeout(timer);
    socket.off('error', onFail);
    if (stream.destroyed) return void socket.destroy();
    connected = true;
    stream.respond({ ':status': STREAM_STATUS.ok });
    const tunnel = new TunnelSocket(stream, {}, { allowHalfOpen: true });
    splice(tunnel.asSocket(), socket, { idleMs: 0 }, () => undefined);
  });
  void headers;
}
