/**
 * The connection registry: every live connection, stream and session the
 * gateway carries, under an id, so the admin API can list and close them
 * (GET /connections, DELETE /connections/:id). One registry per process,
 * owned by the Gateway and kept across reloads; every listener adds what it
 * carries when it starts and removes it exactly once when it is over.
 *
 * Cost on the hot path: `add` is one Map set and `remove` one Map delete;
 * the id string, the peer address and the byte counts are only formatted
 * when something lists the registry (bytes come from the socket counters
 * the kernel path already keeps).
 */

/**
 * What a registered entry is:
 * - `http1`: an HTTP/1.x connection (plain or TLS) of an http/https listener
 * - `h2-session`: an HTTP/2 connection; `h2-stream`: one request stream in it
 * - `websocket`: a tunnelled WebSocket session (after its 101; the HTTP/1.1
 *   connection it came from is no longer listed as `http1`)
 * - `tcp`, `tls`, `sealed`, `forward-proxy`: a downstream connection of such an L4 listener
 * - `udp`: a UDP session (one client address and its upstream socket)
 */
export const CONNECTION_KINDS = ['http1', 'h2-session', 'h2-stream', 'websocket', 'tcp', 'tls', 'sealed', 'forward-proxy', 'udp', 'tunnel-agent', 'tunnel-service', 'tunnel-port', 'tunnel-stream', 'relay-pair'] as const;
export type ConnectionKind = (typeof CONNECTION_KINDS)[number];

export function isConnectionKind(s: string): s is ConnectionKind {
  return (CONNECTION_KINDS as readonly string[]).includes(s);
}

/** Who a listener is: read at list time, so an entry follows a listener renamed by a reload. */
export interface Owner {
  readonly name: string;
}

/**
 * One live connection, stream or session. A listener subclasses it once
 * per kind (methods on the prototype, no closure per entry) and hands
 * instances to `ConnectionRegistry.add` / `remove`.
 */
export abstract class Carried {
  abstract readonly kind: ConnectionKind;
  /** The listener it arrived on. */
  readonly owner: Owner;
  /** Date.now() when it was registered. */
  readonly startedAt: number;
  /** Set by the registry: the sequence number under which it is listed; 0 when not (or no longer) listed. */
  seq = 0;
  /** `close` was asked for (it runs once). */
  closing = false;
  /** The registry listing it (set by `add`). */
  registry: ConnectionRegistry | null = null;
  /** The upstream and target it was sent to, when known (L4 after the dial). */
  upstream: string | undefined = undefined;
  target: string | undefined = undefined;

  /** The entry this one is part of (an HTTP/2 stream's session); null for a connection of its own. */
  parent: Carried | null = null;
  /** Its number within `parent` (an HTTP/2 stream id); its id is the parent's id, a dot and this number. */
  local = 0;

  constructor(owner: Owner, startedAt = Date.now()) {
    this.owner = owner;
    this.startedAt = startedAt;
  }

  /**
   * What this entry carries that is listed under it (an HTTP/2 session's
   * streams): made at list time, so that the per-request path registers
   * nothing in the registry itself.
   */
  children(): Carried[] | null {
    return null;
  }

  /** The part listed as number `local`, if still open. */
  child(_local: number): Carried | undefined {
    return undefined;
  }

  /** The downstream peer as `address:port` (`[v6]:port`). */
  abstract peer(): string;
  /** Bytes received from / sent to the downstream peer so far; null where nothing counts them. */
  abstract bytesIn(): number | null;
  abstract bytesOut(): number | null;
  /** The route it was matched to, when known. */
  route(): string | undefined {
    return undefined;
  }
  upstreamName(): string | undefined {
    return this.upstream;
  }
  targetAddress(): string | undefined {
    return this.target;
  }
  /** Starts ending it the kind's clean way; the listener then removes it when it is over. Called at most once. */
  protected abstract shutdown(): void;

  /** Unlists it from its registry (a no-op when not listed). */
  unregister(): void {
    this.registry?.remove(this);
  }

  /** Ends it cleanly (see `shutdown`); true the first time, false when a close was already asked for. */
  close(): boolean {
    if (this.closing) return false;
    this.closing = true;
    this.shutdown();
    return true;
  }
}

/** An entry as GET /connections shows it. */
export interface ConnectionInfo {
  id: string;
  kind: ConnectionKind;
  listener: string;
  peer: string;
  route?: string;
  upstream?: string;
  target?: string;
  startedAt: string;
  ageMs: number;
  bytesIn: number | null;
  bytesOut: number | null;
}

export interface ConnectionFilter {
  kind?: ConnectionKind;
  listener?: string;
}

/**
 * Ids are `<worker>-<seq>`: the worker slot (0 for a single process, see
 * process/worker.ts) and a per-process sequence number in base 36, so an id
 * never names two entries of one process and ids of sibling workers differ.
 */
export class ConnectionRegistry {
  private readonly live = new Map<number, Carried>();
  private next = 0;
  private readonly prefix: string;

  constructor(worker = 0) {
    this.prefix = `${worker}-`;
  }

  get size(): number {
    return this.live.size;
  }

  /** Lists `c` under a new id. An entry already listed keeps its id. */
  add(c: Carried): void {
    if (c.seq !== 0) return;
    c.seq = ++this.next;
    c.registry = this;
    this.live.set(c.seq, c);
  }

  /** Unlists `c`; true the first time, false when it was not listed (removal happens once). */
  remove(c: Carried): boolean {
    const seq = c.seq;
    if (seq === 0) return false;
    c.seq = 0;
    return this.live.delete(seq);
  }

  idOf(c: Carried): string {
    if (c.parent !== null) return `${this.idOf(c.parent)}.${c.local}`;
    return this.prefix + c.seq.toString(36);
  }

  /** The entry listed under `id` (`<worker>-<seq>`, or `<worker>-<seq>.<local>` for a part of one), if any. */
  get(id: string): Carried | undefined {
    if (!id.startsWith(this.prefix)) return undefined;
    const m = /^([0-9a-z]{1,11})(?:\.([0-9]{1,10}))?$/.exec(id.slice(this.prefix.length));
    if (m === null) return undefined;
    const c = this.live.get(parseInt(m[1]!, 36));
    return c === undefined || m[2] === undefined ? c : c.child(Number(m[2]));
  }

  /** Live entries matching `filter`, oldest first, each followed by its parts (see `Carried.children`). */
  *entries(filter: ConnectionFilter = {}): IterableIterator<Carried> {
    for (const c of this.live.values()) {
      if (filter.listener !== undefined && c.owner.name !== filter.listener) continue;
      if (filter.kind === undefined || c.kind === filter.kind) yield c;
      const parts = c.children();
      if (parts === null) continue;
      for (const p of parts) if (filter.kind === undefined || p.kind === filter.kind) yield p;
    }
  }

  count(filter: ConnectionFilter = {}): number {
    let n = 0;
    for (const _ of this.entries(filter)) n++;
    return n;
  }

  list(filter: ConnectionFilter = {}, now = Date.now()): ConnectionInfo[] {
    const out: ConnectionInfo[] = [];
    for (const c of this.entries(filter)) {
      const route = c.route();
      const upstream = c.upstreamName();
      const target = c.targetAddress();
      out.push({
        id: this.idOf(c),
        kind: c.kind,
        listener: c.owner.name,
        peer: c.peer(),
        ...(route !== undefined ? { route } : {}),
        ...(upstream !== undefined ? { upstream } : {}),
        ...(target !== undefined ? { target } : {}),
        startedAt: new Date(c.startedAt).toISOString(),
        ageMs: Math.max(0, now - c.startedAt),
        bytesIn: c.bytesIn(),
        bytesOut: c.bytesOut(),
      });
    }
    return out;
  }

  /**
   * Starts closing the entry listed under `id`: 'closing' when this call
   * started it, 'already-closing' when an earlier one did (it is still
   * listed until it is over), 'unknown' when no entry has that id.
   */
  close(id: string): 'closing' | 'already-closing' | 'unknown' {
    const c = this.get(id);
    if (c === undefined) return 'unknown';
    return c.close() ? 'closing' : 'already-closing';
  }
}

/** `address:port`, with brackets around an IPv6 address; `unknown` when the socket has none (already closed). */
export function formatPeer(address: string | undefined, port: number | undefined): string {
  if (address === undefined || address === '') return 'unknown';
  const a = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
  return a.includes(':') ? `[${a}]:${port ?? 0}` : `${a}:${port ?? 0}`;
}

/**
 * The entry each listed socket (or another object that ends with a 'close'
 * event) carries, see `listSocket`. A WeakMap, not a property on the
 * socket: a new property on node's own objects changes their shape per
 * connection and slows node's code that reads them.
 */
const carried = new WeakMap<object, Carried>();

/** The entry registered for `socket` by `listSocket`, if it is still listed. */
export function entryOf(socket: object): Carried | undefined {
  const c = carried.get(socket);
  return c !== undefined && c.seq !== 0 ? c : undefined;
}

/**
 * Lists `entry` in `registry` for as long as `socket` is open: it is
 * removed on the socket's 'close' (by one shared listener, no closure per
 * connection), or earlier by `unlistSocket`.
 */
export function listSocket(registry: ConnectionRegistry, socket: NodeJS.EventEmitter, entry: Carried): void {
  carried.set(socket, entry);
  registry.add(entry);
  socket.once('close', unlistOnClose);
}

/** Lets `entryOf(other)` find the entry of `socket` too (a TLSSocket over an accepted socket). */
export function tagSocket(other: object, socket: object): void {
  const c = carried.get(socket);
  if (c !== undefined) carried.set(other, c);
}

function unlistOnClose(this: object): void {
  carried.get(this)?.unregister();
}

/** Removes the entry `listSocket` registered for `socket` now (the connection became something else, e.g. a WebSocket session). */
export function unlistSocket(socket: object): void {
  carried.get(socket)?.unregister();
}
