import type dgram from 'node:dgram';
import { ForwardProxyFrontend } from './forward-proxy.js';
import type { ForwardProxyListenerConfig, TcpListenerConfig, TlsListenerConfig, UdpListenerConfig, SealedListenerConfig } from '../config/schemas/l4.js';
import { SealedFrontend } from './sealed.js';
import { TcpFrontend } from './tcp.js';
import { TlsFrontend } from './tls.js';
import { UdpFrontend } from './udp.js';
import type { Logger } from '../observability/logger.js';
import type { Binding, Frontend, StreamFrontend } from './listener.js';
import { HttpFrontend } from './http.js';
import type { L4ListenerRuntime, AnyListenerRuntime } from '../snapshot/snapshot.js';

/** The frontend for a TCP-based listener, by protocol. */
export function createStreamFrontend(binding: Binding, runtime: AnyListenerRuntime, logger: Logger): StreamFrontend {
  if (runtime.kind === 'http') return new HttpFrontend(binding, runtime, logger);
  switch (runtime.config.protocol) {
    case 'tcp':
      return new TcpFrontend(binding, runtime as L4ListenerRuntime<TcpListenerConfig>, logger);
    case 'sealed':
      return new SealedFrontend(binding, runtime as L4ListenerRuntime<SealedListenerConfig>, logger);
    case 'tls':
      return new TlsFrontend(binding, runtime as L4ListenerRuntime<TlsListenerConfig>, logger);
    case 'forward-proxy':
      return new ForwardProxyFrontend(binding, runtime as L4ListenerRuntime<ForwardProxyListenerConfig>, logger);
    default:
      throw new Error(`listeners.${runtime.name}: protocol ${runtime.config.protocol} is not implemented yet`);
  }
}

/** The frontend for a `udp` listener, on its bound datagram socket. */
export function createDatagramFrontend(binding: Binding, runtime: AnyListenerRuntime, logger: Logger, socket: dgram.Socket): Frontend {
  if (runtime.kind !== 'l4' || runtime.config.protocol !== 'udp') throw new Error(`listeners.${runtime.name}: protocol ${runtime.config.protocol} is not a datagram listener`);
  return new UdpFrontend(binding, runtime as L4ListenerRuntime<UdpListenerConfig>, logger, socket);
}
