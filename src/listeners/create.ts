import type dgram from 'node:dgram';
import { ForwardProxyListener } from './forward-proxy.js';
import type { ForwardProxyListenerConfig, TcpListenerConfig, TlsListenerConfig, UdpListenerConfig, SealedListenerConfig } from '../config/schemas/l4.js';
import { SealedListener } from './sealed.js';
import { TcpListener } from './tcp.js';
import { TlsListener } from './tls.js';
import { UdpListener } from './udp.js';
import type { Logger } from '../observability/logger.js';
import type { Binding, Listener, StreamListener } from './listener.js';
import { HttpListener } from './http.js';
import { TunnelListener } from './tunnel.js';
import { RelayListener } from './relay.js';
import type { L4ListenerRuntime, AnyListenerRuntime } from '../snapshot/snapshot.js';

/** The listener for a TCP-based listener, by protocol. */
export function createStreamListener(binding: Binding, runtime: AnyListenerRuntime, logger: Logger): StreamListener {
  if (runtime.kind === 'http') return new HttpListener(binding, runtime, logger);
  switch (runtime.config.protocol) {
    case 'tcp':
      return new TcpListener(binding, runtime as L4ListenerRuntime<TcpListenerConfig>, logger);
    case 'sealed':
      return new SealedListener(binding, runtime as L4ListenerRuntime<SealedListenerConfig>, logger);
    case 'tls':
      return new TlsListener(binding, runtime as L4ListenerRuntime<TlsListenerConfig>, logger);
    case 'tunnel':
      return new TunnelListener(binding, runtime, logger);
    case 'relay':
      return new RelayListener(binding, runtime, logger);
    case 'forward-proxy':
      return new ForwardProxyListener(binding, runtime as L4ListenerRuntime<ForwardProxyListenerConfig>, logger);
    default:
      throw new Error(`listeners.${runtime.name}: protocol ${runtime.config.protocol} is not implemented yet`);
  }
}

/** The listener for a `udp` listener, on its bound datagram socket. */
export function createDatagramListener(binding: Binding, runtime: AnyListenerRuntime, logger: Logger, socket: dgram.Socket): Listener {
  if (runtime.kind !== 'l4' || runtime.config.protocol !== 'udp') throw new Error(`listeners.${runtime.name}: protocol ${runtime.config.protocol} is not a datagram listener`);
  return new UdpListener(binding, runtime as L4ListenerRuntime<UdpListenerConfig>, logger, socket);
}
