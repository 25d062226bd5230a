import { dialUpstream } from '../dial.js';
import { splice } from '../splice.js';
import { noteSplice } from '../stream-connection.js';
import { L4StreamFrontend, type Accepted } from '../stream-frontend.js';
import type { TcpListenerConfig, TlsListenerConfig } from '../schema.js';
import type { Upstream } from '../../upstream/upstream.js';

/**
 * `protocol: tcp`: each admitted connection is dialled to a target of the
 * listener's upstream (dialUpstream: balancer, connect timeout, the next
 * target on failure, PROXY header and TLS to the target as configured)
 * and then spliced. A connection whose dial fails is closed (there is no
 * way to answer on a raw TCP stream) and logged with the reason.
 */
export class TcpFrontend extends L4StreamFrontend<TcpListenerConfig> {
  readonly kind = 'tcp' as const;

  protected serve(a: Accepted<TcpListenerConfig>): void {
    const upstream = this.binding.current().upstreams.get(a.runtime.config.upstream);
    if (upstream === undefined) {
      a.socket.destroy();
      return;
    }
    connectAndSplice(this, a, upstream);
  }
}

/**
 * Dials `upstream` for an accepted connection and splices the two; the
 * client's early bytes (`a.head`, and anything it sends while the dial is
 * in progress, which stays in the socket's buffer) go first. Shared by the
 * `tcp` and `tls` listeners.
 */
export function connectAndSplice<C extends TcpListenerConfig | TlsListenerConfig>(
  frontend: L4StreamFrontend<C>,
  a: Accepted<C>,
  upstream: Upstream,
  extra: Record<string, string> = {},
): void {
  const { socket, runtime } = a;
  const config = runtime.config;
  socket.pause();
  const onEarlyClose = () => cancel();
  socket.once('close', onEarlyClose);
  const cancel = dialUpstream(upstream, { client: a.client, attempts: config.retry, keepAliveMs: config.tcpKeepAlive, highWaterMark: config.buffer }, (err, d) => {
    socket.off('close', onEarlyClose);
    if (err !== null) {
      socket.destroy();
      frontend.logConnection(runtime, { client: a.client, startedAt: a.startedAt, outcome: err.code, upstream: upstream.name, error: err.message, extra });
      return;
    }
    const { socket: up, target } = d!;
    target.inflight++;
    noteSplice(socket, up, upstream.name, target.address);
    splice(socket, up, { idleMs: config.timeouts.idle, head: a.head }, (r) => {
      target.inflight--;
      frontend.logConnection(runtime, {
        client: a.client,
        startedAt: a.startedAt,
        outcome: 'ok',
        upstream: upstream.name,
        target: target.address,
        bytesUp: r.bytesUp,
        bytesDown: r.bytesDown,
        closedBy: r.closedBy,
        ...(r.error !== undefined ? { error: r.error } : {}),
        extra,
      });
    });
    socket.resume();
  });
}
