import { GatewayError } from '../errors.js';
import type { Upstream } from '../upstream/upstream.js';
import type { L4Context } from '../l4/context.js';
import { dialUpstream } from '../l4/dial.js';
import type { TcpListenerConfig, TlsListenerConfig } from '../config/schemas/l4.js';
import { splice } from '../l4/splice.js';
import { L4StreamListener } from './stream.js';
import { noteSplice } from '../l4/stream-connection.js';

/**
 * `protocol: tcp`: each admitted connection is dialled to a target of the
 * listener's upstream (dialUpstream: balancer, connect timeout, the next
 * target on a retryable failure, PROXY header and TLS to the target as
 * configured) and then spliced. A connection whose dial fails is closed
 * (there is no way to answer on a raw TCP stream) and logged with the
 * reason.
 */
export class TcpListener extends L4StreamListener<TcpListenerConfig> {
  readonly kind = 'tcp' as const;

  protected serve(ctx: L4Context<TcpListenerConfig>): void {
    const name = ctx.runtime.config.upstream;
    const upstream = ctx.upstreamNamed(name);
    if (upstream === undefined) {
      ctx.socket.destroy();
      this.finish(ctx, new GatewayError('UPSTREAM_NOT_FOUND', `no upstream named ${name}`));
      return;
    }
    connectAndSplice(this, ctx, upstream);
  }
}

/**
 * Dials `upstream` for a connection and splices the two; the client's
 * early bytes (`ctx.head`, and anything it sends while the dial is in
 * progress, which stays in the socket's buffer) go first. Ends with
 * `listener.finish`: the dial's error, a connection closed during the
 * dial (GATEWAY_CLOSING when the listener is closing, else
 * DOWNSTREAM_ABORTED), or the splice's result. Shared by the `tcp` and
 * `tls` listeners.
 */
export function connectAndSplice<C extends TcpListenerConfig | TlsListenerConfig>(listener: L4StreamListener<C>, ctx: L4Context<C>, upstream: Upstream): void {
  const { socket, runtime } = ctx;
  const config = runtime.config;
  ctx.upstream = upstream;
  socket.pause();
  // The socket is paused, so this fires on a reset or a destroy (the listener closing), not a FIN.
  const onEarlyClose = () => {
    cancel();
    listener.finish(ctx, listener.isClosing ? new GatewayError('GATEWAY_CLOSING', 'closed during the dial') : new GatewayError('DOWNSTREAM_ABORTED', 'the client closed during the dial'));
  };
  socket.once('close', onEarlyClose);
  const cancel = dialUpstream(upstream, { client: ctx.client, attempts: config.retry, keepAliveMs: config.tcpKeepAlive, highWaterMark: config.buffer }, (err, d) => {
    socket.off('close', onEarlyClose);
    if (err !== null) {
      socket.destroy();
      listener.finish(ctx, err);
      return;
    }
    const { socket: up, target } = d!;
    ctx.target = target;
    target.inflight++;
    noteSplice(socket, up, upstream.name, target.address);
    splice(socket, up, { idleMs: config.timeouts.idle, head: ctx.head }, (r) => {
      target.inflight--;
      ctx.spliced(r);
      listener.finish(ctx, null);
    });
    socket.resume();
  });
}
