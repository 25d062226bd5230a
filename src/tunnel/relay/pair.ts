import type net from 'node:net';
import type tls from 'node:tls';
import { splice, type ClosedBy } from '../../l4/splice.js';
import { CLOSE_GRACE_MS, endSpliced } from '../../l4/stream-connection.js';
import { Carried, formatPeer, type ConnectionRegistry, type Owner } from '../../runtime/connection-registry.js';
import type { Registration, TunnelHub } from '../hub.js';
import { formatRelayStatus, RelayRequestReader, type RelayStatusCode } from './handshake.js';
import type { RelayClientPolicy } from './policy.js';

/** How a relay client's connection ended (the access-log `outcome`, and what `describe()` counts refusals by). */
export type RelayOutcome = 'ok' | 'bad-request' | 'unauthorized' | 'unknown-code' | 'unavailable' | 'handshake-timeout' | 'client-closed' | 'gateway-closing';

/** One relay client connection, as it is logged once when it ends. */
export interface RelayEnd {
  outcome: RelayOutcome;
  /** The status line answered (none when the client left or timed out first). */
  status?: RelayStatusCode;
  /** The service code asked for (only once the line was read). */
  service?: string;
  /** The registration it was spliced to (`tunnel:<code>@<id>#<seq>`). */
  target?: string;
  bytesUp?: number;
  bytesDown?: number;
  closedBy?: ClosedBy;
  error?: string;
}

export interface RelayClientDeps {
  owner: Owner;
  registry: ConnectionRegistry;
  hub: TunnelHub;
  clients: RelayClientPolicy;
  /** Milliseconds left for the request line (limits.handshakeTimeout, from accept). */
  handshakeMs: number;
  /** Milliseconds a stream open through a registration may take. */
  openMs: number;
  idleMs: number;
  /** Read buffer of the service side (the listener's `buffer`). */
  buffer: number;
  /** The up registrations of a code in the order to try them (round robin). */
  order(code: string, up: readonly Registration[]): Registration[];
  /** Called when the request line was read (or refused): the connection is no longer a pending handshake. */
  lineRead(): void;
  /** Called exactly once, when the connection is over (or refused: the answer is on its way). */
  end(result: RelayEnd): void;
}

/**
 * The client role of a relay connection (docs/relay.md), after TLS: reads
 * the request line `PORTICO-RELAY/1 <code> <token>` within the handshake
 * time, answers one status line, and on `200 ok` splices the connection to
 * a stream opened through a registration of the code.
 *
 * Answers: 400 (not a valid line, or longer than 1024 bytes), 401 (the
 * token is unknown or does not allow the code: one answer for both), 404
 * (nobody registered the code), 503 (registrations exist but none is up,
 * or every up one failed to open the stream: each is tried once, in round
 * robin order). A refusal is answered, then the connection is ended (FIN;
 * what the client still sends is read and dropped; destroyed after a
 * grace). A handshake that times out, or a client that leaves, is closed
 * without an answer. `end` is called exactly once in every case.
 */
export function serveRelayClient(socket: tls.TLSSocket, d: RelayClientDeps): void {
  const reader = new RelayRequestReader();
  let over = false;
  let received = 0;
  let cancelOpen: (() => void) | null = null;
  const finish = (r: RelayEnd) => {
    if (over) return;
    over = true;
    clearTimeout(timer);
    d.end(r);
  };
  const stopReading = () => {
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.pause();
  };
  const refuse = (status: Exclude<RelayStatusCode, 200>, outcome: RelayOutcome, error: string, service?: string) => {
    stopReading();
    socket.off('close', onClose);
    answerAndClose(socket, status);
    finish({ outcome, status, error, ...(service !== undefined ? { service } : {}) });
  };
  const onData = (chunk: Buffer) => {
    received += chunk.length;
    const r = reader.push(chunk);
    if (!r.done) return;
    stopReading();
    clearTimeout(timer);
    d.lineRead();
    if ('error' in r) return refuse(400, 'bad-request', r.error === 'too long' ? 'the request line is longer than 1024 bytes' : 'not a relay request line');
    route(r.request.code, r.request.token, r.rest);
  };
  const onEnd = () => {
    if (received === 0) {
      socket.off('close', onClose);
      socket.destroy();
      return finish({ outcome: 'client-closed', error: 'the client ended before sending a request line' });
    }
    refuse(400, 'bad-request', 'the client ended in the middle of the request line');
  };
  const onClose = () => {
    cancelOpen?.();
    finish({ outcome: 'client-closed', error: 'the client closed before the relay answered' });
  };
  const timer = setTimeout(() => {
    stopReading();
    socket.off('close', onClose);
    socket.destroy();
    finish({ outcome: 'handshake-timeout', error: `no request line within ${d.handshakeMs} ms` });
  }, Math.max(1, d.handshakeMs));

  const route = (code: string, token: string, rest: Buffer) => {
    if (!d.clients.allows(token, code)) return refuse(401, 'unauthorized', 'token unknown or code not allowed', code);
    const all = d.hub.registrations(code);
    if (all.length === 0) return refuse(404, 'unknown-code', 'no registration of this code', code);
    const up = all.filter((r) => r.up);
    if (up.length === 0) return refuse(503, 'unavailable', 'every registration of this code is withdrawn', code);
    const order = d.order(code, up);
    const errors: string[] = [];
    const origin = { client: formatPeer(socket.remoteAddress, socket.remotePort), server: formatPeer(socket.localAddress, socket.localPort) };
    const attempt = (i: number) => {
      const r = order[i]!;
      cancelOpen = r.opener.open(r.code, origin, { timeout: d.openMs, allowHalfOpen: true, highWaterMark: d.buffer, origin }, (err, stream) => {
        cancelOpen = null;
        if (over) {
          stream?.destroy();
          return;
        }
        if (err !== null || stream === null) {
          errors.push(err?.message ?? 'no stream');
          if (i + 1 < order.length) return attempt(i + 1);
          return refuse(503, 'unavailable', errors.join('; ').slice(0, 512), code);
        }
        paired(code, r, stream, rest);
      });
    };
    attempt(0);
  };

  const paired = (code: string, r: Registration, stream: net.Socket, rest: Buffer) => {
    if (socket.destroyed) {
      stream.destroy();
      return finish({ outcome: 'client-closed', service: code, target: r.identity, error: 'the client closed before the stream opened' });
    }
    socket.off('close', onClose);
    socket.write(formatRelayStatus(200));
    const entry = new RelayPairEntry(d.owner, socket, stream, code, r.identity);
    d.registry.add(entry);
    splice(socket, stream, { idleMs: d.idleMs, head: rest }, (s) => {
      entry.unregister();
      finish({ outcome: 'ok', status: 200, service: code, target: r.identity, bytesUp: s.bytesUp, bytesDown: s.bytesDown, closedBy: s.closedBy, ...(s.error !== undefined ? { error: s.error } : {}) });
    });
  };

  socket.on('data', onData);
  socket.once('end', onEnd);
  socket.once('close', onClose);
}

/**
 * Writes the status line and ends the connection: FIN after it (RFC 9293
 * §3.6), what the client still sends is read and dropped (closing with
 * unread data would reset and could lose the answer), destroyed after a
 * grace if the client does not end too.
 */
function answerAndClose(socket: net.Socket, status: RelayStatusCode): void {
  if (socket.destroyed) return;
  socket.on('data', drop);
  socket.resume();
  socket.end(formatRelayStatus(status));
  const grace = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
  grace.unref();
  socket.once('close', () => clearTimeout(grace));
}

function drop(): void {}

/**
 * A relayed pair, as GET /connections lists it: the client's peer, the
 * code (as the route), the registration (as the target), bytes as the
 * service stream counts them (in: client → service, out: service →
 * client). Closing it ends both sides' write halves (FIN and END_STREAM),
 * drops what still arrives and destroys both after a grace.
 */
export class RelayPairEntry extends Carried {
  readonly kind = 'relay-pair' as const;
  private readonly peerAddress: string;

  constructor(
    owner: Owner,
    private readonly client: net.Socket,
    private readonly stream: net.Socket,
    private readonly code: string,
    identity: string,
  ) {
    super(owner);
    this.peerAddress = formatPeer(client.remoteAddress, client.remotePort);
    this.target = identity;
  }

  peer(): string {
    return this.peerAddress;
  }

  bytesIn(): number {
    return this.stream.bytesWritten;
  }

  bytesOut(): number {
    return this.stream.bytesRead;
  }

  override route(): string {
    return this.code;
  }

  protected shutdown(): void {
    endSpliced([this.client, this.stream]);
  }
}
