import net from 'node:net';
import { connectVia } from '../l4/dial.js';
import { splice } from '../l4/splice.js';
import type { Logger } from '../observability/logger.js';
import { formatPeer } from '../runtime/connection-registry.js';
import type { Registration } from './hub.js';
import { BUFFER, CONNECT_TIMEOUT_MS, PublicPort, bindRefusal, type Binding } from './public-port.js';

/** A TCP public port: each accepted connection is spliced to a new tunnel stream (half-close, backpressure). */
export class TcpPort extends PublicPort {
  private readonly server: net.Server;
  private readonly clients = new Set<net.Socket>();
  private readonly streams = new Set<net.Socket>();

  constructor(binding: Binding, r: Registration, host: string, port: number, logger: Logger) {
    super(binding, r, host, port, logger);
    // Paused until the stream is up: nothing is read from a client that may yet be refused.
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true, highWaterMark: BUFFER }, (c) => this.accept(c));
  }

  open(): Promise<string | null> {
    return new Promise((resolve) => {
      this.server.once('error', (err) => resolve(bindRefusal('tcp', this.host, this.port, err)));
      this.server.listen({ host: this.host, port: this.port, exclusive: true }, () => {
        this.server.removeAllListeners('error');
        this.server.on('error', (err) => this.logger.warn({ listener: this.binding.name, port: this.port, err: err.message }, 'tunnel public port error'));
        if (this.closed) return void this.server.close();
        this.opened('tcp');
        resolve(null);
      });
    });
  }

  private accept(client: net.Socket): void {
    if (this.closed) return void client.destroy();
    this.clients.add(client);
    client.on('error', () => undefined);
    const peer = formatPeer(client.remoteAddress, client.remotePort);
    const cancel = connectVia(this.connector(peer, formatPeer(client.localAddress, client.localPort)), { timeoutMs: CONNECT_TIMEOUT_MS, keepAliveMs: 0, highWaterMark: BUFFER }, (err, stream) => {
      client.off('close', onEarlyClose);
      if (err !== null || stream === null) {
        this.logger.info({ listener: this.binding.name, code: this.r.code, port: this.port, client: peer, err: err?.message }, 'tunnel public port: no stream to the agent');
        client.destroy();
        return;
      }
      if (client.destroyed || this.closed) return void stream.destroy();
      this.streams.add(stream);
      stream.once('close', () => this.streams.delete(stream));
      splice(client, stream, { idleMs: 0 }, () => undefined);
    });
    const onEarlyClose = () => cancel();
    client.once('close', onEarlyClose);
    client.once('close', () => {
      this.clients.delete(client);
      this.doneIn += client.bytesRead;
      this.doneOut += client.bytesWritten;
    });
  }

  bytesIn(): number {
    let n = this.doneIn;
    for (const c of this.clients) n += c.bytesRead;
    return n;
  }

  bytesOut(): number {
    let n = this.doneOut;
    for (const c of this.clients) n += c.bytesWritten;
    return n;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.server.listening) this.server.close();
    this.ended('tcp');
    for (const c of this.clients) c.destroy();
    for (const s of this.streams) s.destroy();
  }
}

