import { Duplex } from 'node:stream';
import type http2 from 'node:http2';
import type net from 'node:net';

/** Why a tunnel stream ended without its peer's END_STREAM. */
export class TunnelStreamError extends Error {
  readonly code = 'TUNNEL_STREAM_RESET';
  constructor(message: string) {
    super(message);
    this.name = 'TunnelStreamError';
  }
}

/**
 * One HTTP/2 stream of a tunnel seen as a socket: what every caller of a
 * Connector gets (undici pools, L4 splices, health probes), so a tunnelled
 * target is used like a TCP one. Bytes pass through unchanged; the peer's
 * END_STREAM is the end of the readable side and `end()` sends ours
 * (RFC 9113 §8.5: a CONNECT stream is a byte stream closed by END_STREAM in
 * each direction). A reset or a lost connection destroys it with a
 * TunnelStreamError. The socket-only methods (keep-alive, Nagle, ref) are
 * the connection's business, not one stream's: they do nothing.
 */
export class TunnelSocket extends Duplex {
  bytesRead = 0;
  bytesWritten = 0;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  /**
   * Undefined, as on a plain net.Socket: a tunnel stream is a plaintext byte
   * stream. (`false` means "TLS without ALPN" to node:http2's server, which
   * then refuses a stream handed to it as a connection.)
   */
  readonly alpnProtocol = undefined;
  readonly connecting = false;
  private readonly stream: http2.Http2Stream;

  constructor(stream: http2.Http2Stream, peer: { address?: string; port?: number }, options: { allowHalfOpen?: boolean; highWaterMark?: number } = {}) {
    super({ allowHalfOpen: options.allowHalfOpen ?? false, readableHighWaterMark: options.highWaterMark ?? 64 * 1024, writableHighWaterMark: options.highWaterMark ?? 64 * 1024, decodeStrings: true });
    this.stream = stream;
    this.remoteAddress = peer.address;
    this.remotePort = peer.port;
    stream.on('data', this.onData);
    stream.once('end', this.onEnd);
    stream.once('close', this.onClose);
    stream.on('error', this.onError);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.bytesRead += chunk.length;
    if (!this.push(chunk)) this.stream.pause();
  };

  private readonly onEnd = (): void => {
    this.push(null);
  };

  private readonly onError = (err: Error): void => {
    this.destroy(new TunnelStreamError(`tunnel stream failed: ${err.message}`));
  };

  private readonly onClose = (): void => {
    if (this.destroyed) return;
    // Closed without our end and the peer's both done: a reset (the agent's side failed, or the connection went).
    if (!(this.readableEnded || this.stream.readableEnded) || !this.stream.writableFinished) {
      const code = this.stream.rstCode;
      this.destroy(new TunnelStreamError(code !== undefined && code !== 0 ? `tunnel stream reset (HTTP/2 error ${code})` : 'tunnel stream closed'));
    }
    // Else both directions ended cleanly: this socket closes by itself (autoDestroy) once its reader has read
    // what it still buffers; destroying it here would drop up to a highWaterMark of the peer's last bytes.
  };

  override _read(): void {
    if (this.stream.isPaused()) this.stream.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.bytesWritten += chunk.length;
    this.stream.write(chunk, cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    let size = 0;
    for (const c of chunks) size += c.chunk.length;
    this.bytesWritten += size;
    this.stream.write(chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk), size), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.stream.destroyed) return cb();
    this.stream.end(() => cb());
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.stream.off('data', this.onData);
    // A clean end both ways closes the stream by itself; anything else cancels it (RFC 9113 §8.5: CONNECT_ERROR on a failed tunnel).
    if (!this.stream.destroyed && (err !== null || !this.stream.writableFinished || !this.stream.readableEnded)) resetStream(this.stream, err !== null ? 0x0a : 0x08);
    cb(err);
  }

  /** Gracefully close after writing: the net.Socket API some callers use. */
  destroySoon(): void {
    this.end();
  }

  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
  setNoDelay(_noDelay?: boolean): this {
    return this;
  }
  setKeepAlive(_enable?: boolean, _delay?: number): this {
    return this;
  }
  setTimeout(ms: number, cb?: () => void): this {
    this.stream.setTimeout(ms, cb);
    return this;
  }

  /** Seen as the socket type every Connector caller takes. */
  asSocket(): net.Socket {
    return this as unknown as net.Socket;
  }
}

/**
 * Resets an HTTP/2 stream (RST_STREAM, RFC 9113 §6.4) on the next turn of
 * the event loop. Node 20's http2 can spin forever in RST_STREAM when it
 * runs inside its session's own teardown (a socket destroyed from a stream
 * or session event), so resets never run synchronously there.
 */
export function resetStream(stream: http2.Http2Stream, code: number): void {
  setImmediate(() => {
    if (!stream.destroyed) stream.close(code);
  });
}
