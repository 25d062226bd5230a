import type { Socket } from 'node:net';
import { Client, errors, type Dispatcher, type buildConnector } from 'undici';

/**
 * One HTTP/1.1 keep-alive connection to a target: undici's Client (one
 * socket at a time, pipelining 1), built by the target's Pool through its
 * `factory` hook (pool.ts). It knows its socket, and tells each
 * request's handler which connection serves it, so that aborting a request
 * (`abortExchange`) closes that socket as a failed one.
 *
 * Why: undici's dispatch `abort` destroys the socket with an informational
 * error (UND_ERR_INFO), and a socket closed with one of those puts the
 * request it served back as pending; the Client then connects again for
 * that request before it sees that it was aborted, and drops it. The new
 * connection never carries a request, so undici's keep-alive timeout
 * (armed when a response ends) never closes it: every aborted request
 * leaves one idle upstream connection, open until the upstream closes it
 * (node:http: 60 s) or a later request takes it. A socket closed with a
 * SocketError (UND_ERR_SOCKET) fails the request it serves instead, and
 * leaves nothing pending to connect for. This holds for undici 7.30.x
 * (nodejs/undici issue 5845); it is safe to keep once undici fixes it.
 *
 * The cost per request is one property write in `dispatch`; a request that
 * succeeds allocates nothing more.
 */
export class H1Connection extends Client {
  /** The socket the connection is on now; null while there is none (or it was handed over by an upgrade). */
  private socket: Socket | null = null;

  /** `opts` as undici's Pool hands them to its factory: `connect` is the connector it built. */
  constructor(origin: URL | string, opts: Client.Options & { connect: buildConnector.connector }) {
    const connector = opts.connect;
    const self: { c: H1Connection | null } = { c: null };
    super(origin, {
      ...opts,
      connect: (o, cb) =>
        connector(o, (err, socket) => {
          if (err === null && socket && self.c !== null) self.c.socket = socket;
          (cb as (err: Error | null, socket: Socket | null) => void)(err, socket);
        }),
    });
    self.c = this;
    // Emitted when the socket closes, and when an upgrade hands it to the handler.
    this.on('disconnect', () => (this.socket = null));
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if ('upstreamConnection' in handler) (handler as OnConnection).upstreamConnection = this;
    return super.dispatch(opts, handler);
  }

  /** Closes the socket so that undici fails the request it serves instead of connecting again for it. */
  closeAsFailed(): void {
    const s = this.socket;
    if (s && !s.destroyed) s.destroy(ABORTED);
  }
}

/** Not informational (see H1Connection): the request on the socket fails with it; undici's `abort` error is what its handler sees. */
const ABORTED = new errors.SocketError('request aborted by the gateway');

/** A dispatch handler that learns the HTTP/1.1 connection its request is sent on (null: none yet, or an HTTP/2 pool). */
export interface OnConnection {
  upstreamConnection: H1Connection | null;
}

/**
 * Ends a request through undici's `abort` (the handler's onError gets
 * `err`), closing the HTTP/1.1 connection it is on first so that no
 * connection is opened again for it (see H1Connection). Every abort of an
 * upstream request goes through here.
 */
export function abortExchange(handler: OnConnection, abort: (err?: Error) => void, err: Error): void {
  const c = handler.upstreamConnection;
  if (c !== null) c.closeAsFailed();
  abort(err);
}
