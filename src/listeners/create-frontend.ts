import type dgram from 'node:dgram';
import type { L4ListenerRuntime } from '../l4/listener-runtime.js';
import type { TcpListenerConfig } from '../l4/schema.js';
import { TcpFrontend } from '../l4/tcp/frontend.js';
import type { Logger } from '../observability/logger.js';
import type { Binding, Frontend, StreamFrontend } from './frontend.js';
import { HttpFrontend } from './http.js';
import type { AnyListenerRuntime } from './listener-runtime.js';

/** The frontend for a TCP-based listener, by protocol. */
export function createStreamFrontend(binding: Binding, runtime: AnyListenerRuntime, logger: Logger): StreamFrontend {
  if (runtime.kind === 'http') return new HttpFrontend(binding, runtime, logger);
  switch (runtime.config.protocol) {
    case 'tcp':
      return new TcpFrontend(binding, runtime as L4ListenerRuntime<TcpListenerConfig>, logger);
    default:
      throw new Error(`listeners.${runtime.name}: protocol ${runtime.config.protocol} is not implemented yet`);
  }
}

/** The frontend for a `udp` listener, on its bound datagram socket. */
export function createDatagramFrontend(_binding: Binding, runtime: AnyListenerRuntime, _logger: Logger, _socket: dgram.Socket): Frontend {
  throw new Error(`listeners.${runtime.name}: protocol udp is not implemented yet`);
}
