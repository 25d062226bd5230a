import type { Socket } from 'node:net';
import { Carried, formatPeer, unlistSocket, type ConnectionRegistry, type Owner } from '../../runtime/connection-registry.js';
import type { RequestContext } from '../../snapshot/snapshot.js';

/** A tunnelled WebSocket session as the registry sees it (see tunnel.ts). */
export interface WebSocketSession {
  /** The handshake's request: the client socket, route, upstream and target. */
  readonly ctx: RequestContext;
  /** Ends the session now: a 1001 Going Away close frame each way (when the stream allows it), then both sockets end. */
  goAway(): void;
}

/**
 * A session in the connection registry (`websocket`): listed from its 101
 * until both sockets closed. Closing it is `goAway` (1001 each way). Bytes
 * are the client socket's since the 101 (the handshake not included).
 */
class WebSocketConnection extends Carried {
  readonly kind = 'websocket' as const;
  readonly session: WebSocketSession;
  private readonly socket: Socket;
  private readonly readBase: number;
  private readonly writtenBase: number;

  constructor(owner: Owner, session: WebSocketSession) {
    super(owner);
    this.session = session;
    this.socket = session.ctx.req.socket;
    this.readBase = this.socket.bytesRead;
    this.writtenBase = this.socket.bytesWritten;
  }

  peer(): string {
    return formatPeer(this.socket.remoteAddress, this.socket.remotePort);
  }

  bytesIn(): number {
    return this.socket.bytesRead - this.readBase;
  }

  bytesOut(): number {
    return this.socket.bytesWritten - this.writtenBase;
  }

  override route(): string | undefined {
    return this.session.ctx.route?.name;
  }

  override upstreamName(): string | undefined {
    return this.session.ctx.upstream?.name;
  }

  override targetAddress(): string | undefined {
    return this.session.ctx.target?.address;
  }

  protected shutdown(): void {
    this.session.goAway();
  }
}

/**
 * The live tunnelled sessions of one bound listener: a session is added
 * once its 101 went to the client and removed when it is over, so the
 * gateway can end them all when it stops or the listener goes away. Each
 * is also listed in the connection registry (as `websocket`, in place of
 * the `http1` connection it came from) until it is over.
 *
 * A handshake still in flight when `closeAll` runs is not forgotten: it
 * took a `ticket` when it started, and `open` refuses it when `closeAll`
 * ran since, so it is closed with 1001 as soon as its 101 is out.
 */
export class WebSocketSessions {
  private readonly live = new Set<WebSocketSession>();
  /** Registry entries of sessions not over yet (closeAll forgets `live`, not these). */
  private readonly listed = new Map<WebSocketSession, WebSocketConnection>();
  /** Bumped by every `closeAll`. */
  private generation = 0;
  private readonly owner: Owner | undefined;
  private readonly registry: ConnectionRegistry | undefined;

  constructor(owner?: Owner, registry?: ConnectionRegistry) {
    this.owner = owner;
    this.registry = registry;
  }

  /** live tunnelled sessions of one bound listener */
  get size(): number {
    return this.live.size;
  }

  /** Taken when a handshake starts; given back to `open`. */
  ticket(): number {
    return this.generation;
  }

  /** Registers a session whose 101 is out; false when `closeAll` ran since its handshake started (the caller then ends it). */
  open(session: WebSocketSession, ticket: number): boolean {
    if (ticket !== this.generation) return false;
    this.live.add(session);
    if (this.registry !== undefined && this.owner !== undefined) {
      unlistSocket(session.ctx.req.socket);
      const entry = new WebSocketConnection(this.owner, session);
      this.listed.set(session, entry);
      this.registry.add(entry);
    }
    return true;
  }

  /** Called once when a session is over, whatever ended it. */
  delete(session: WebSocketSession): void {
    this.live.delete(session);
    const entry = this.listed.get(session);
    if (entry === undefined) return;
    this.listed.delete(session);
    entry.unregister();
  }

  /** close every session now (gateway stop / listener removed): send a 1001 Going Away close frame to the client and end both sockets */
  closeAll(): void {
    this.generation++;
    const all = [...this.live];
    this.live.clear();
    for (const s of all) {
      // Ended here, not through the registry: a later DELETE of it is a no-op.
      const entry = this.listed.get(s);
      if (entry !== undefined) entry.closing = true;
      s.goAway();
    }
  }
}
