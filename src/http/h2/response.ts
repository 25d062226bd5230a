import { validateHeaderName, validateHeaderValue, type OutgoingHttpHeaders } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import { StreamEvents } from './stream-events.js';

/** Connection-specific fields, which HTTP/2 forbids (RFC 9113 §8.2.2): dropped from a response head rather than failing it. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

const NO_TRAILERS: OutgoingHttpHeaders = {};

/**
 * An HTTP/2 response as the exchange writes it, straight onto node:http2's
 * core stream: the members of `ServerResponse` that Portico uses (see
 * request.ts for why not the compatibility layer).
 *
 * - `writeHead(status, headers)` takes a flat `[name, value, …]` list or an
 *   object, lower-cases names, folds repeats into arrays, and checks each
 *   field as node:http does (an invalid one throws, and nothing is sent).
 * - The head is sent with `waitForTrailers`, so trailers added at any time
 *   before the end (`addTrailers`, gRPC's grpc-status) go out as a
 *   trailing HEADERS frame; without any, the stream ends with an empty
 *   DATA frame, as node:http2's compatibility response does.
 * - Events (`close`, `drain`) are the stream's.
 */
export class H2Response extends StreamEvents {
  /** HTTP/1.x only; kept so that code shared with HTTP/1.x can set it. */
  shouldKeepAlive = false;
  /** `end()` was called. */
  writableEnded = false;
  private extra: OutgoingHttpHeaders | null = null;
  private trailers: OutgoingHttpHeaders | null = null;
  private destroyCalled = false;

  constructor(stream: ServerHttp2Stream) {
    super(stream);
  }

  get headersSent(): boolean {
    return this.stream.headersSent;
  }

  /** Bytes written and not yet handed to the session (they are still referenced). */
  get writableLength(): number {
    return this.stream.writableLength;
  }

  get destroyed(): boolean {
    return this.stream.destroyed;
  }

  /** A field sent with the head that `writeHead` sends (its own fields of the same name replace it). */
  setHeader(name: string, value: string | number | readonly string[]): this {
    validateHeaderName(name);
    validateHeaderValue(name, value as string);
    (this.extra ??= Object.create(null) as OutgoingHttpHeaders)[name.toLowerCase()] = value as string | number | string[];
    return this;
  }

  writeHead(status: number, headers?: readonly string[] | OutgoingHttpHeaders): this {
    const s = this.stream;
    if (s.destroyed || s.closed) return this;
    const out: OutgoingHttpHeaders = Object.create(null);
    const extra = this.extra;
    if (extra !== null) for (const k in extra) out[k] = extra[k];
    if (Array.isArray(headers)) {
      // Fields of the list replace set ones of the same name, and repeat among themselves.
      const fresh = extra === null ? null : new Set<string>();
      for (let i = 0; i + 1 < headers.length; i += 2) {
        const name = (headers[i] as string).toLowerCase();
        const value = headers[i + 1] as string;
        validateHeaderName(name);
        validateHeaderValue(name, value);
        if (CONNECTION_SPECIFIC.has(name)) continue;
        const prior = out[name];
        if (prior === undefined || (fresh !== null && !fresh.has(name))) out[name] = value;
        else out[name] = Array.isArray(prior) ? [...prior, value] : [String(prior), value];
        fresh?.add(name);
      }
    } else if (headers !== undefined) {
      const h = headers as OutgoingHttpHeaders;
      for (const k in h) {
        const value = h[k];
        if (value === undefined) continue;
        validateHeaderName(k);
        validateHeaderValue(k, value as string);
        const name = k.toLowerCase();
        if (!CONNECTION_SPECIFIC.has(name)) out[name] = value;
      }
    }
    out[':status'] = status;
    s.respond(out, { endStream: this.writableEnded, waitForTrailers: true });
    s.once('wantTrailers', () => s.sendTrailers(this.trailers ?? NO_TRAILERS));
    return this;
  }

  /** Writes body bytes (sending a 200 head first if none went); a body after the stream ended (HEAD, 204, 304) is dropped. */
  write(chunk: Buffer | string): boolean {
    if (this.writableEnded || this.destroyCalled) return false;
    const s = this.stream;
    if (!s.headersSent) this.writeHead(200);
    if (s.writableEnded || s.destroyed) return true;
    return s.write(chunk);
  }

  end(chunk?: Buffer | string): this {
    if (this.writableEnded) return this;
    if (chunk !== undefined && chunk !== null) this.write(chunk);
    this.writableEnded = true;
    const s = this.stream;
    if (s.destroyed || s.closed) return this;
    if (!s.headersSent) this.writeHead(200);
    if (!s.writableEnded) s.end();
    return this;
  }

  /** Trailers for the end of the response (RFC 9113 §8.1); names lower-cased and checked as for the head. */
  addTrailers(trailers: Record<string, string>): void {
    const out = (this.trailers ??= Object.create(null) as OutgoingHttpHeaders);
    for (const k in trailers) {
      validateHeaderName(k);
      validateHeaderValue(k, trailers[k]);
      out[k.toLowerCase()] = trailers[k];
    }
  }

  destroy(err?: Error): void {
    if (this.destroyCalled) return;
    this.destroyCalled = true;
    this.stream.destroy(err);
  }
}
