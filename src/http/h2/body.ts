import type { ServerHttp2Stream } from 'node:http2';

type Listener = (...args: any[]) => void;

/**
 * An HTTP/2 request's body as the upstream clients read it: the stream's
 * readable side (events, pause, resume, pipe), but a `destroy` of its own. The
 * upstream client destroys a streamed body once it has sent it (undici's
 * writeStream), and the body here is the very stream the response is still
 * to be written on: that must not end the exchange. Ending the stream is
 * the response's business (response.ts), and an upstream failure reaches
 * the exchange through the upstream call, not through the body.
 */
export class H2Body {
  private readonly stream: ServerHttp2Stream;
  /** Set by `destroy`: the upstream client is done with the body. */
  destroyed = false;

  constructor(stream: ServerHttp2Stream) {
    this.stream = stream;
  }

  /** The listeners given, as bound to this body (a listener's `this` must be the body, never the stream it reads). */
  private readonly bound = new Map<Listener, Listener>();

  on(event: string, listener: Listener): this {
    this.stream.on(event, this.bind(listener));
    return this;
  }

  once(event: string, listener: Listener): this {
    this.stream.once(event, this.bind(listener));
    return this;
  }

  off(event: string, listener: Listener): this {
    const b = this.bound.get(listener);
    if (b !== undefined) this.stream.off(event, b);
    return this;
  }

  removeListener(event: string, listener: Listener): this {
    return this.off(event, listener);
  }

  private bind(listener: Listener): Listener {
    let b = this.bound.get(listener);
    if (b === undefined) {
      b = listener.bind(this);
      this.bound.set(listener, b);
    }
    return b;
  }

  pause(): this {
    this.stream.pause();
    return this;
  }

  resume(): this {
    this.stream.resume();
    return this;
  }

  /** Marks the body read (see the class comment): the stream goes on. */
  destroy(): this {
    this.destroyed = true;
    return this;
  }

  /** Pipes the stream's readable side into `destination` (an HTTP/2 upstream stream, upstream/h2-pool.ts). */
  pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T {
    return this.stream.pipe(destination, options);
  }

  unpipe(destination?: NodeJS.WritableStream): this {
    this.stream.unpipe(destination);
    return this;
  }

  get readableDidRead(): boolean {
    return this.stream.readableDidRead;
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return this.stream[Symbol.asyncIterator]();
  }
}
