import type { IncomingHttpHeaders } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { H2Body } from './body.js';
import { StreamEvents } from './stream-events.js';

/**
 * An HTTP/2 request as the exchange reads it, straight over node:http2's
 * core stream (no compatibility layer): the members of `IncomingMessage`
 * that Portico uses, nothing more. The request body is the stream's
 * readable side (`body`, see body.ts); the listeners the exchange adds go
 * to the stream.
 *
 * Why not node:http2's compatibility request: it is a second Readable in
 * front of the stream (its own buffer and six listeners per request) and
 * its response rebuilds the header object on every write of the head.
 */
export class H2Request extends StreamEvents {
  readonly headers: IncomingHttpHeaders;
  /** Names and values as received, pseudo-headers included (`[name, value, …]`, RFC 9113 §8.3). */
  readonly rawHeaders: string[];
  readonly method: string;
  readonly url: string;
  /** The connection's socket (TLS or plain), for the peer address and client certificate. */
  readonly socket: Duplex;
  readonly httpVersion = '2.0';
  readonly httpVersionMajor = 2;
  readonly httpVersionMinor = 0;

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[], socket: Duplex) {
    super(stream);
    this.headers = headers;
    this.rawHeaders = rawHeaders;
    this.method = headers[':method'] as string;
    this.url = (headers[':path'] as string | undefined) ?? '';
    this.socket = socket;
  }

  /** The body as the upstream client reads it (body.ts). */
  get body(): H2Body {
    return new H2Body(this.stream);
  }

  /** The client sent all of the request (END_STREAM, RFC 9113 §8.1), or the stream is gone. */
  get complete(): boolean {
    const s = this.stream;
    return s.endAfterHeaders || s.readableEnded || s.closed || s.destroyed;
  }

  get readableEnded(): boolean {
    return this.stream.readableEnded;
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return this.stream[Symbol.asyncIterator]();
  }
}
