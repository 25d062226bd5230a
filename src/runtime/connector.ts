import type net from 'node:net';

/**
 * What a dial asks of a connector. The stream it yields is a byte stream:
 * TLS, PROXY protocol headers and HTTP are layered on top by the caller, so
 * every connector (a TCP dial, a stream over an agent's tunnel) carries them
 * alike.
 */
export interface ConnectOptions {
  /** Milliseconds the connect may take; 0 = no limit of the connector's own (the caller times it). */
  timeout: number;
  /** TCP keep-alive initial delay in ms; 0 = off. Ignored by connectors without a TCP socket of their own. */
  keepAlive?: number;
  /** The stream's read buffer (high-water mark) in bytes. */
  highWaterMark?: number;
  /**
   * Keep the stream writable after the peer ended its side (an L4 splice
   * relays each direction's end on its own). Off by default: an HTTP client
   * must see the peer's end as the connection ending.
   */
  allowHalfOpen?: boolean;
  /**
   * Where the stream's traffic comes from, for connectors that pass it on
   * (a tunnel agent's PROXY header to its local service); a TCP dial ignores it.
   */
  origin?: StreamOrigin;
  /**
   * Read into the caller's buffers (node:net's `onread`): no 'data'
   * events, each read is handed to `callback`, and a `false` from it pauses
   * the socket. Only a TCP dial honours it; other connectors ignore it and
   * emit 'data' as usual, so a caller handles both.
   */
  readInto?: ReadInto;
}

/** See `ConnectOptions.readInto`. `buffer` is asked for the buffer of each read. */
export interface ReadInto {
  buffer: () => Buffer;
  callback: (bytes: number, buffer: Buffer) => boolean;
}

/** The downstream connection a stream carries: client and server `ip:port`. */
export interface StreamOrigin {
  client?: string;
  server?: string;
}

/**
 * Called once per connect: with the connected stream, or with the error.
 * The stream has Nagle off where that applies and no timeout of its own.
 */
export type ConnectCallback = (err: Error | null, stream: net.Socket | null) => void;

/**
 * One seam for "give me a byte stream to this target", in undici's
 * `connect(options, callback)` shape. The connection pools (HTTP/1.1 and
 * HTTP/2), L4 dials, health probes and the WebSocket dial (through its
 * pool) all open their connections here; a TCP dial is the first
 * implementation (tcp-connector.ts).
 *
 * `connect` calls back exactly once, unless the returned cancel function
 * runs first: then the attempt is abandoned, its stream destroyed, and the
 * callback never runs.
 */
export interface Connector {
  /** The target identity this connector reaches (`host:port` for TCP). */
  readonly identity: string;
  connect(options: ConnectOptions, callback: ConnectCallback): () => void;
}

/** A connect that did not finish within `ConnectOptions.timeout`. */
export class ConnectTimeoutError extends Error {
  readonly code = 'CONNECT_TIMEOUT';
  constructor(identity: string, ms: number) {
    super(`${identity}: no connection within ${ms} ms`);
    this.name = 'ConnectTimeoutError';
  }
}
