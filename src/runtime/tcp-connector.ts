import net from 'node:net';
import { formatHostPort, type HostPort } from '../net/address.js';
import { ConnectTimeoutError, type ConnectCallback, type ConnectOptions, type Connector, type ReadInto } from './connector.js';

/**
 * Reaches a target by a TCP connection to its `host:port`. Callback-driven
 * so that the hot path (one dial per proxied connection or pooled
 * connection) makes no promise, closure chain or Error unless it fails.
 */
export class TcpConnector implements Connector {
  readonly identity: string;
  private readonly address: HostPort;

  constructor(address: HostPort, identity = formatHostPort(address)) {
    this.address = address;
    this.identity = identity;
  }

  connect(o: ConnectOptions, done: ConnectCallback): () => void {
    const { host, port } = this.address;
    // highWaterMark reaches the socket's stream options (missing from @types/node 20's NetConnectOpts).
    const options = { host, port, allowHalfOpen: o.allowHalfOpen === true, noDelay: true, highWaterMark: o.highWaterMark ?? 64 * 1024 } as net.NetConnectOpts;
    if (o.readInto !== undefined) (options as { onread?: ReadInto }).onread = o.readInto;
    const socket = net.connect(options);
    let settled = false;
    const finish = (err: Error | null) => {
      if (settled) return;
      settled = true;
      if (timer !== null) clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', finish);
      if (err !== null) socket.destroy();
      done(err, err === null ? socket : null);
    };
    const onConnect = () => {
      if (o.keepAlive !== undefined && o.keepAlive > 0) socket.setKeepAlive(true, o.keepAlive);
      finish(null);
    };
    const timer = o.timeout > 0 ? setTimeout(() => finish(new ConnectTimeoutError(this.identity, o.timeout)), o.timeout) : null;
    socket.once('connect', onConnect);
    socket.once('error', finish);
    return () => {
      if (settled) return;
      settled = true;
      if (timer !== null) clearTimeout(timer);
      socket.destroy();
    };
  }
}
