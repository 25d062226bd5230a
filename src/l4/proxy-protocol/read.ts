import type net from 'node:net';
import type { ProxiedAddresses } from './encode.js';

/** PLACEHOLDER — being written by the proxy-protocol helper. */
export interface ProxyHeaderResult {
  /** The addresses the header carries; null when absent, or a LOCAL/UNKNOWN header (use the connection's own). */
  addresses: ProxiedAddresses | null;
  /** Whether a header was present. */
  present: boolean;
  /** Bytes read past the header (the start of the client's data), to be relayed first. */
  rest: Buffer;
}

export class ProxyProtocolError extends Error {
  readonly reason: 'missing' | 'malformed' | 'timeout' | 'closed';
  constructor(reason: 'missing' | 'malformed' | 'timeout' | 'closed', message: string) {
    super(message);
    this.name = 'ProxyProtocolError';
    this.reason = reason;
  }
}

export function readProxyHeader(_socket: net.Socket, _o: { required: boolean; timeoutMs: number }): Promise<ProxyHeaderResult> {
  return Promise.reject(new ProxyProtocolError('malformed', 'not implemented yet'));
}
