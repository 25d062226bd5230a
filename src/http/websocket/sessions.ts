/** A tunnelled WebSocket session as the registry sees it (see tunnel.ts). */
export interface WebSocketSession {
  /** Ends the session now: a 1001 Going Away close frame each way (when the stream allows it), then both sockets end. */
  goAway(): void;
}

/**
 * The live tunnelled sessions of one bound listener: a session is added
 * once its 101 went to the client and removed when it is over, so the
 * gateway can end them all when it stops or the listener goes away.
 *
 * A handshake still in flight when `closeAll` runs is not forgotten: it
 * took a `ticket` when it started, and `open` refuses it when `closeAll`
 * ran since, so it is closed with 1001 as soon as its 101 is out.
 */
export class WebSocketSessions {
  private readonly live = new Set<WebSocketSession>();
  /** Bumped by every `closeAll`. */
  private generation = 0;

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
    return true;
  }

  /** Called once when a session is over, whatever ended it. */
  delete(session: WebSocketSession): void {
    this.live.delete(session);
  }

  /** close every session now (gateway stop / listener removed): send a 1001 Going Away close frame to the client and end both sockets */
  closeAll(): void {
    this.generation++;
    const all = [...this.live];
    this.live.clear();
    for (const s of all) s.goAway();
  }
}
