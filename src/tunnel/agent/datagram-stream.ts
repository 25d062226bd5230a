import dgram from 'node:dgram';
import type http2 from 'node:http2';
import { isIPv6 } from 'node:net';
import type { Logger } from '../../observability/logger.js';
import { DatagramDecoder, encodeDatagram } from '../datagram-framing.js';
import { HEADER, STREAM_STATUS } from '../protocol.js';
import { resetStream } from '../socket.js';
import type { LocalService } from './services.js';

/** HTTP/2 CANCEL (RFC 9113 §7): how a datagram stream ends when its local socket fails. */
const CANCEL = 0x8;

/**
 * Serves one data stream of a `type: udp` service (one client session at
 * the gateway): a local UDP socket of its own, connected to the service's
 * `local` address (so only that address's datagrams come back), answers
 * 200 once connected (502 if it cannot be), then carries datagrams both
 * ways, each framed as a 2-byte big-endian length and its payload
 * (datagram-framing.ts). The socket closes with the stream; the stream is
 * cancelled when the socket fails (an ICMP port unreachable surfaces as
 * ECONNREFUSED on a connected socket).
 *
 * Datagrams from the local service are dropped while the stream is over
 * its buffer (UDP may lose datagrams; memory stays bounded by the
 * stream's window and high-water mark).
 */
export function serveDatagramStream(stream: http2.ServerHttp2Stream, _headers: http2.IncomingHttpHeaders, service: LocalService, logger: Logger): void {
  const { local } = service.config;
  const socket = dgram.createSocket({ type: isIPv6(local.host) ? 'udp6' : 'udp4' });
  const decoder = new DatagramDecoder();
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      socket.close();
    } catch {
      /* already closed */
    }
  };
  socket.on('error', (err: NodeJS.ErrnoException) => {
    if (closed) return;
    logger.debug({ code: service.code, local: `${local.host}:${local.port}`, reason: err.code ?? err.message }, 'agent: local udp service failed');
    if (!stream.headersSent && !stream.destroyed) stream.respond({ ':status': STREAM_STATUS.localFailed, [HEADER.error]: `local service unreachable: ${err.code ?? err.message}` }, { endStream: true });
    else resetStream(stream, CANCEL);
    close();
  });
  stream.once('close', close);
  socket.connect(local.port, local.host, () => {
    if (closed || stream.destroyed) return close();
    stream.respond({ ':status': STREAM_STATUS.ok });
    socket.on('message', (msg) => {
      if (stream.destroyed || stream.writableEnded || stream.writableNeedDrain) return;
      const [header, payload] = encodeDatagram(msg);
      stream.cork();
      stream.write(header!);
      stream.write(payload!);
      stream.uncork();
    });
    stream.on('data', (chunk: Buffer) => {
      for (const d of decoder.push(chunk)) {
        if (closed) return;
        socket.send(d);
      }
    });
    // The gateway ended the session: end ours too (the stream then closes, and the socket with it).
    stream.once('end', () => {
      close();
      if (!stream.destroyed && !stream.writableEnded) stream.end();
    });
  });
}
