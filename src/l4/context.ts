import type net from 'node:net';
import type { GatewayError } from '../errors.js';
import type { Target } from '../upstream/target.js';
import type { Upstream } from '../upstream/upstream.js';
import type { L4ListenerRuntime } from '../snapshot/snapshot.js';
import type { ProxiedAddresses } from './proxy-protocol/encode.js';
import type { SpliceResult } from './splice.js';
import type { L4ListenerConfig } from '../config/schema.js';

/** Access-log fields a protocol adds to its connection lines (sni, sealed backend, status…). */
export type ExtraFields = Record<string, string | number | boolean>;

/**
 * One downstream connection of a TCP-based L4 listener, from accept to its
 * log line: the L4 counterpart of the HTTP request context. Its phases, in
 * order (L4StreamListener runs them):
 *
 * 1. accept — created with the listener runtime current at that moment,
 *    which it PINS: the runtime carries its own snapshot's upstreams, so
 *    a reload during any later phase changes nothing this connection sees;
 * 2. PROXY header (when configured) — may replace `client`;
 * 3. admission — the connection middlewares and limits, on `client`;
 * 4. serve — the protocol (tcp, tls, sealed, forward-proxy): picks an
 *    upstream and target and dials (sets `upstream`, `target`), then
 *    splices (sets the bytes and `closedBy`);
 * 5. log — exactly once, whatever ended it (`error` null means `ok`):
 *    one access-log line and one count (L4StreamListener.finish).
 *
 * A phase that fails sets `error` (a GatewayError: stable code, source,
 * retryable) and ends the connection; nothing is closed without passing
 * through the log phase.
 */
export class L4Context<C extends L4ListenerConfig = L4ListenerConfig> {
  /** The listener as compiled when the connection arrived (pinned: see above). */
  readonly runtime: L4ListenerRuntime<C>;
  /** process.hrtime.bigint() at accept. */
  readonly startedAt: bigint;
  /** The downstream socket; a terminating `tls` listener replaces it by the TLS socket. */
  socket: net.Socket;
  /** The client's addresses: from the PROXY protocol header when there was one, else the socket's. */
  client: ProxiedAddresses;
  /** Bytes already read from the client (PROXY header reader, ClientHello peek) that go upstream first. */
  head: Buffer;
  upstream: Upstream | undefined;
  target: Target | undefined;
  bytesUp: number | undefined;
  bytesDown: number | undefined;
  closedBy: string | undefined;
  /** Why the connection ended, or null: it was relayed and ended normally. */
  error: GatewayError | null = null;
  /** The `error` text of the log line when it is not the error's own message (a socket error during the splice). */
  detail: string | undefined;
  readonly extra: ExtraFields = {};
  /** Set by the log phase; a second log attempt is ignored. */
  logged = false;

  /** The splice ended: its byte counts, which side closed, and a socket error's text if any. */
  spliced(r: SpliceResult): void {
    this.bytesUp = r.bytesUp;
    this.bytesDown = r.bytesDown;
    this.closedBy = r.closedBy;
    this.detail = r.error;
  }

  constructor(runtime: L4ListenerRuntime<C>, socket: net.Socket, client: ProxiedAddresses, startedAt: bigint) {
    this.runtime = runtime;
    this.socket = socket;
    this.client = client;
    this.head = EMPTY;
    this.startedAt = startedAt;
    this.upstream = undefined;
    this.target = undefined;
    this.bytesUp = undefined;
    this.bytesDown = undefined;
    this.closedBy = undefined;
    this.detail = undefined;
  }

  /** The pinned snapshot's upstream of that name. */
  upstreamNamed(name: string): Upstream | undefined {
    return this.runtime.upstreams.get(name);
  }
}

const EMPTY = Buffer.alloc(0);
