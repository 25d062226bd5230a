import type { IncomingHttpHeaders } from 'node:http';
import type net from 'node:net';
import type { LeanHead } from './head-parser.js';

/**
 * node:http keeps the first of these when a request repeats them, and
 * drops the rest from `req.headers` (`IncomingMessage#_addHeaderLine`);
 * `set-cookie` becomes an array, `cookie` lines are joined with `; `, any
 * other repeated field with `, ` (RFC 9110 §5.3).
 */
const FIRST_WINS = new Set([
  'content-type', 'content-length', 'user-agent', 'referer', 'host', 'authorization', 'proxy-authorization',
  'if-modified-since', 'if-unmodified-since', 'from', 'location', 'max-forwards', 'retry-after', 'etag',
  'last-modified', 'server', 'age', 'expires',
]);

/** A lean request has no trailers (it has no chunked body): one shared empty value for all. */
const NO_TRAILERS: Record<string, string> = Object.freeze({}) as Record<string, string>;
const NO_RAW_TRAILERS: readonly string[] = Object.freeze([]);

/**
 * The inbound request of the lean HTTP/1.1 engine: a complete request (head
 * and, when it has one, its whole body, already read) with the members of
 * node:http's IncomingMessage that the request lifecycle reads (http/,
 * middlewares/, consumers/, observability/). It is not a stream: its body,
 * if any, is the Buffer the exchange sends upstream (`ctx.out.body`), and
 * the stream events it is asked about never fire. `headers` is built on
 * first use, with node:http's rules for repeated fields.
 */
export class LeanRequest {
  /** Marks a lean request for the lifecycle (exchange/request-body.ts `isLean`). */
  readonly lean = true;
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
  readonly socket: net.Socket;
  /** The body, when Content-Length > 0; null otherwise. */
  readonly body: Buffer | null;
  readonly httpVersion = '1.1';
  readonly httpVersionMajor = 1;
  readonly httpVersionMinor = 1;
  readonly complete = true;
  readonly aborted = false;
  readonly upgrade = false;
  readonly trailers: Record<string, string> = NO_TRAILERS;
  readonly rawTrailers: readonly string[] = NO_RAW_TRAILERS;
  private parsed: IncomingHttpHeaders | null = null;

  constructor(head: LeanHead, socket: net.Socket, body: Buffer | null) {
    this.method = head.method;
    this.url = head.url;
    this.rawHeaders = head.rawHeaders;
    this.socket = socket;
    this.body = body;
  }

  get connection(): net.Socket {
    return this.socket;
  }

  /** A bodiless request has been read to its end; one with a body has not, until its Buffer is taken (`ctx.out.body`). */
  get readableEnded(): boolean {
    return this.body === null;
  }

  get headers(): IncomingHttpHeaders {
    if (this.parsed !== null) return this.parsed;
    const out: Record<string, string | string[]> = Object.create(null);
    const raw = this.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      // node:http builds `headers` on a plain object, where a `__proto__` header is a no-op: the same here
      // (it stays in rawHeaders, as there), so both engines hand the exchange the same headers.
      if (name === '__proto__') continue;
      const value = raw[i + 1]!;
      const prior = out[name];
      if (prior === undefined) out[name] = name === 'set-cookie' ? [value] : value;
      else if (name === 'set-cookie') (prior as string[]).push(value);
      else if (FIRST_WINS.has(name)) continue;
      else out[name] = `${prior as string}${name === 'cookie' ? '; ' : ', '}${value}`;
    }
    this.parsed = out as IncomingHttpHeaders;
    return this.parsed;
  }

  // Stream events ('data', 'end', 'close', 'error', 'aborted') never fire: the request was read whole.
  on(_event: string, _listener: (...args: unknown[]) => void): this {
    return this;
  }
  once(_event: string, _listener: (...args: unknown[]) => void): this {
    return this;
  }
  off(_event: string, _listener: (...args: unknown[]) => void): this {
    return this;
  }
  removeListener(_event: string, _listener: (...args: unknown[]) => void): this {
    return this;
  }
  emit(_event: string, ..._args: unknown[]): boolean {
    return false;
  }
  resume(): this {
    return this;
  }
  pause(): this {
    return this;
  }
  setTimeout(_ms: number, _cb?: () => void): this {
    return this;
  }
  /** As IncomingMessage#destroy: the connection goes. */
  destroy(): this {
    this.socket.destroy();
    return this;
  }

  /** The body as one chunk (for readers that iterate the request). */
  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    if (this.body !== null) yield this.body;
  }
}
