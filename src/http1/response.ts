import { EventEmitter } from 'node:events';
import { STATUS_CODES, validateHeaderName, validateHeaderValue, type OutgoingHttpHeaders } from 'node:http';
import type net from 'node:net';

/** What a lean response needs from its connection (connection.ts). */
export interface ResponseOwner {
  readonly socket: net.Socket;
  /** `timeouts.keepAlive` in ms (announced as `Keep-Alive: timeout=N`); 0: no Keep-Alive header. */
  keepAliveMs(): number;
  /** The response's last byte was handed to the socket (`end`): the connection may go on with the next request. */
  ended(res: LeanResponse, last: boolean): void;
}

type HeaderValue = string | number | readonly string[];

/** A token (RFC 9110 §5.6.2); anything else is refused by node:http's validateHeaderName. */
const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;
/** A field value with a character node:http refuses (validateHeaderValue): CTLs other than HTAB, DEL, above 0xFF. */
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const CONNECTION_CLOSE = /(?:^|\W)close(?:$|\W)/i;
const TE_CHUNKED = /(?:^|\W)chunked(?:$|\W)/i;

/** A body up to this size is copied behind its head into one Buffer (cheaper than a writev of both). */
const COPY_LIMIT = 16 * 1024;

/** Header names already checked (names repeat: the same few dozen on almost every response). */
const checkedNames = new Set<string>();
const CHECKED_NAMES_MAX = 1024;

let dateSecond = -1;
let dateString = '';
/** The Date header value (RFC 9110 §6.6.1), built once a second. */
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateString = new Date(now).toUTCString();
  }
  return dateString;
}

/** Throws node:http's own error for a header it would refuse (ERR_INVALID_HTTP_TOKEN, ERR_INVALID_CHAR, ERR_HTTP_INVALID_HEADER_VALUE). */
function check(name: string, value: unknown): void {
  if (!checkedNames.has(name)) {
    if (typeof name !== 'string' || !TOKEN.test(name)) validateHeaderName(name);
    if (checkedNames.size < CHECKED_NAMES_MAX) checkedNames.add(name);
  }
  if (typeof value !== 'string' || INVALID_VALUE.test(value)) validateHeaderValue(name, value as string);
}

function headersSentError(what: string): Error {
  return Object.assign(new Error(`Cannot ${what} headers after they are sent to the client`), { code: 'ERR_HTTP_HEADERS_SENT' });
}

/**
 * The response of the lean HTTP/1.1 engine: the members of node:http's
 * ServerResponse that the request lifecycle uses, producing the head
 * node:http would (status line, the given headers in order, then `Date`,
 * `Connection: keep-alive` + `Keep-Alive: timeout=N` or `Connection:
 * close`, then `Transfer-Encoding: chunked` when no Content-Length was
 * given; RFC 9112 §6, §9.3). The head is held until the first body write
 * or `end`, so head and body leave in one write (cork/uncork: one writev).
 * HEAD and 1xx/204/304 responses send no body (RFC 9110 §6.4.1).
 *
 * Events: 'drain' (the socket drained while this response writes),
 * 'finish' (its last byte was handed to the OS), 'close' (after 'finish',
 * or when the connection closed first).
 */
export class LeanResponse extends EventEmitter {
  statusCode = 200;
  statusMessage = '';
  /** False: the head says `Connection: close` and the connection ends after this response. Settable until the head is built. */
  shouldKeepAlive: boolean;
  sendDate = true;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  private readonly owner: ResponseOwner;
  private hasBody: boolean;
  /** The head, built by writeHead and not yet written; '' once written. */
  private head: string | null = null;
  private chunked = false;
  /** The connection ends after this response (`Connection: close`). */
  private last = false;
  /** Headers set one by one (setHeader), by lower-case name: [name as given, value]. */
  private fields: Map<string, [string, HeaderValue]> | null = null;
  private trailers = '';
  private closeEmitted = false;
  /** The body size `end` gave a response whose head it builds; -1 otherwise. */
  private implicitLength = -1;

  constructor(owner: ResponseOwner, head: boolean, keepAlive: boolean) {
    super();
    this.owner = owner;
    this.hasBody = !head;
    this.shouldKeepAlive = keepAlive;
  }

  get headersSent(): boolean {
    return this.head !== null;
  }

  get socket(): net.Socket | null {
    return this.destroyed ? null : this.owner.socket;
  }

  setHeader(name: string, value: HeaderValue): this {
    if (this.head !== null) throw headersSentError('set');
    if (Array.isArray(value)) for (const v of value) check(name, v);
    else check(name, typeof value === 'number' ? String(value) : value);
    (this.fields ??= new Map()).set(name.toLowerCase(), [name, value]);
    return this;
  }

  appendHeader(name: string, value: HeaderValue): this {
    const key = name.toLowerCase();
    const prior = this.fields?.get(key);
    if (prior === undefined) return this.setHeader(name, value);
    const add = Array.isArray(value) ? value : [String(value)];
    const was = Array.isArray(prior[1]) ? prior[1] : [String(prior[1])];
    return this.setHeader(prior[0], [...was, ...add]);
  }

  getHeader(name: string): HeaderValue | undefined {
    return this.fields?.get(name.toLowerCase())?.[1];
  }

  hasHeader(name: string): boolean {
    return this.fields?.has(name.toLowerCase()) ?? false;
  }

  removeHeader(name: string): void {
    if (this.head !== null) throw headersSentError('remove');
    this.fields?.delete(name.toLowerCase());
  }

  getHeaderNames(): string[] {
    return this.fields === null ? [] : [...this.fields.keys()];
  }

  /**
   * Builds the head (node:http's `writeHead(status[, reason][, headers])`,
   * headers as an object or a flat `[name, value, …]` list, merged over
   * those set with setHeader). Throws node:http's error for an invalid
   * header, as node:http does.
   */
  writeHead(status: number, reason?: string | OutgoingHttpHeaders | readonly string[], headers?: OutgoingHttpHeaders | readonly string[]): this {
    if (this.head !== null) throw headersSentError('write');
    if (typeof reason === 'string') this.statusMessage = reason;
    else headers = reason;
    status |= 0;
    if (status < 100 || status > 999) throw Object.assign(new RangeError(`Invalid status code: ${status}`), { code: 'ERR_HTTP_INVALID_STATUS_CODE' });
    this.statusCode = status;
    if (status === 204 || status === 304 || status < 200) this.hasBody = false;
    let list: readonly unknown[] | null = null;
    if (this.fields !== null) {
      if (Array.isArray(headers)) {
        for (let i = 0; i < headers.length; i += 2) this.fields.delete(String(headers[i]).toLowerCase());
        for (let i = 0; i < headers.length; i += 2) this.appendHeader(headers[i] as string, headers[i + 1] as string);
      } else if (headers) {
        const obj = headers as OutgoingHttpHeaders;
        for (const k in obj) if (obj[k] !== undefined) this.setHeader(k, obj[k] as HeaderValue);
      }
      list = [...this.fields.values()].flat();
    } else if (Array.isArray(headers)) {
      if (headers.length % 2 !== 0) throw Object.assign(new TypeError('The argument \'headers\' is invalid.'), { code: 'ERR_INVALID_ARG_VALUE' });
      list = headers;
    } else if (headers) {
      const flat: unknown[] = [];
      const obj = headers as OutgoingHttpHeaders;
      for (const k in obj) flat.push(k, obj[k]);
      list = flat;
    }
    this.head = this.buildHead(list ?? []);
    return this;
  }

  private buildHead(list: readonly unknown[]): string {
    let head = `HTTP/1.1 ${this.statusCode} ${this.statusMessage || STATUS_CODES[this.statusCode] || 'unknown'}\r\n`;
    let date = false;
    let connection = false;
    let length = false;
    let te = false;
    let defaultKeepAlive = true;
    for (let i = 0; i < list.length; i += 2) {
      const name = list[i] as string;
      const value = list[i + 1];
      if (value === undefined) validateHeaderValue(name, value as unknown as string);
      const values = Array.isArray(value) ? (value as unknown[]) : [value];
      for (const one of values) {
        const v = typeof one === 'string' ? one : String(one);
        check(name, v);
        head += `${name}: ${v}\r\n`;
        const n = name.length;
        if (n < 4 || n > 17) continue;
        switch (name.toLowerCase()) {
          case 'connection':
            connection = true;
            if (CONNECTION_CLOSE.test(v)) this.last = true;
            else this.shouldKeepAlive = true;
            break;
          case 'transfer-encoding':
            te = true;
            if (TE_CHUNKED.test(v)) this.chunked = true;
            break;
          case 'content-length':
            length = true;
            break;
          case 'date':
            date = true;
            break;
          case 'keep-alive':
            defaultKeepAlive = false;
            break;
        }
      }
    }
    if (this.sendDate && !date) head += `Date: ${httpDate()}\r\n`;
    if (!connection) {
      if (this.shouldKeepAlive) {
        head += 'Connection: keep-alive\r\n';
        const ms = this.owner.keepAliveMs();
        if (ms > 0 && defaultKeepAlive) head += `Keep-Alive: timeout=${Math.floor(ms / 1000)}\r\n`;
      } else {
        this.last = true;
        head += 'Connection: close\r\n';
      }
    }
    if (!length && !te && this.hasBody) {
      // A response ended before its head is sized by what `end` got (node:http's `_contentLength`).
      if (this.implicitLength >= 0) head += `Content-Length: ${this.implicitLength}\r\n`;
      else {
        head += 'Transfer-Encoding: chunked\r\n';
        this.chunked = true;
      }
    }
    return `${head}\r\n`;
  }

  /** Writes a body chunk (with the head, the first time); returns false when the socket is full ('drain' follows). */
  write(chunk: Buffer | string, encoding?: BufferEncoding | (() => void), cb?: () => void): boolean {
    if (typeof encoding === 'function') cb = encoding;
    const socket = this.owner.socket;
    if (this.writableEnded || this.destroyed) return false;
    if (this.head === null) this.writeHead(this.statusCode);
    if (!this.hasBody || chunk.length === 0) {
      this.flushHead();
      if (cb !== undefined) process.nextTick(cb);
      return !socket.writableNeedDrain;
    }
    // As node:http: writes of one turn leave together, unless the caller corked the socket itself (then its uncork sends them).
    if (socket.writableCorked === 0) {
      socket.cork();
      process.nextTick(uncork, socket);
    }
    this.writeBody(socket, chunk, cb);
    return !socket.writableNeedDrain;
  }

  /** Holds the writes that follow until `uncork` (as `ServerResponse.cork`). */
  cork(): void {
    this.owner.socket.cork();
  }

  uncork(): void {
    this.owner.socket.uncork();
  }

  /** Bytes written and not yet handed to the kernel (they, and the buffers they are in, are still referenced). */
  get writableLength(): number {
    return this.owner.socket.writableLength;
  }

  /** Ends the response (with a last chunk); the head goes with it if not yet written. */
  end(chunk?: Buffer | string | (() => void), encoding?: BufferEncoding | (() => void), cb?: () => void): this {
    if (typeof chunk === 'function') {
      cb = chunk;
      chunk = undefined;
    } else if (typeof encoding === 'function') cb = encoding;
    if (this.writableEnded || this.destroyed) return this;
    const socket = this.owner.socket;
    if (this.head === null) {
      // As node:http: a response ended before its head is sized by what `end` got.
      this.implicitLength = chunk === undefined ? 0 : typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
      this.writeHead(this.statusCode);
    }
    this.writableEnded = true;
    socket.cork();
    const done = (err?: Error | null) => (err ? this.closed() : this.finished(cb));
    const head = this.head!;
    this.head = '';
    if (this.hasBody && chunk !== undefined && chunk.length > 0) {
      if (typeof chunk !== 'string' && chunk.length <= COPY_LIMIT) {
        // A small body goes out with its head as one Buffer: one plain write, no writev.
        const tail = this.chunked ? `\r\n0\r\n${this.trailers}\r\n` : '';
        const prefix = this.chunked ? `${head}${chunk.length.toString(16)}\r\n` : head;
        const out = Buffer.allocUnsafe(prefix.length + chunk.length + tail.length);
        out.write(prefix, 0, 'latin1');
        chunk.copy(out, prefix.length);
        if (tail !== '') out.write(tail, prefix.length + chunk.length, 'latin1');
        socket.write(out, done);
      } else if (this.chunked) {
        socket.write(`${head}${(typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length).toString(16)}\r\n`, 'latin1');
        socket.write(chunk);
        socket.write(`\r\n0\r\n${this.trailers}\r\n`, 'latin1', done);
      } else {
        if (head !== '') socket.write(head, 'latin1');
        socket.write(chunk, done);
      }
    } else {
      socket.write(this.hasBody && this.chunked ? `${head}0\r\n${this.trailers}\r\n` : head, 'latin1', done);
    }
    socket.uncork();
    this.owner.ended(this, this.last || !this.shouldKeepAlive);
    return this;
  }

  /** Trailer fields for the end of a chunked body (RFC 9112 §7.1.2); ignored otherwise, as node:http does. */
  addTrailers(fields: Record<string, string> | readonly [string, string][]): void {
    const entries = Array.isArray(fields) ? (fields as [string, string][]) : Object.entries(fields);
    for (const [name, value] of entries) {
      check(name, value);
      this.trailers += `${name}: ${value}\r\n`;
    }
  }

  /** As node:http: the connection goes (a response cut short must not look complete). */
  destroy(_err?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.owner.socket.destroy();
    return this;
  }

  /** The connection closed before this response finished (connection.ts): 'close', once. */
  closed(): void {
    if (this.closeEmitted) return;
    this.closeEmitted = true;
    this.destroyed = true;
    this.emit('close');
  }

  private finished(cb: (() => void) | undefined): void {
    if (this.closeEmitted) return;
    this.writableFinished = true;
    this.emit('finish');
    cb?.();
    this.closed();
  }

  private flushHead(): void {
    if (this.head !== null && this.head !== '') {
      this.owner.socket.write(this.head, 'latin1');
      this.head = '';
    }
  }

  private writeBody(socket: net.Socket, chunk: Buffer | string, cb: (() => void) | undefined): void {
    let prefix = this.head!;
    this.head = '';
    if (this.chunked) prefix += `${(typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length).toString(16)}\r\n`;
    if (prefix !== '') socket.write(prefix, 'latin1');
    socket.write(chunk, cb);
    if (this.chunked) socket.write('\r\n', 'latin1');
  }
}

function uncork(socket: net.Socket): void {
  socket.uncork();
}
