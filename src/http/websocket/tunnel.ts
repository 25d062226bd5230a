import type { Socket } from 'node:net';
import { GatewayError } from '../../errors.js';
import type { RequestContext } from '../../snapshot/snapshot.js';
import { closeFrame, GOING_AWAY, INTERNAL_ERROR, MESSAGE_TOO_BIG } from './close-frame.js';
import { FrameScanner } from './frame-scanner.js';
import type { WebSocketSession } from './sessions.js';

/** How long a peer gets to answer the gateway's close frame and FIN before its socket is destroyed. */
export const CLOSE_GRACE_MS = 2000;

/** What ended a session (logged). */
export type CloseCause =
  /** The client sent the first close frame, or else ended its side first. */
  | 'client'
  /** The upstream sent the first close frame, or else ended its side first. */
  | 'upstream'
  /** No byte in either direction for `websocket.idleTimeout`. */
  | 'idle'
  /** The client sent a frame over `websocket.maxFrameSize`. */
  | 'frame-too-big'
  /** The gateway stopped or the listener went away (`WebSocketSessions.closeAll`). */
  | 'gateway'
  | 'client-error'
  | 'upstream-error';

/** A session's traffic, for the access log (see `sessionStats`). */
export interface WebSocketStats {
  /** Messages / frames / bytes from the client to the upstream. */
  messagesIn: number;
  framesIn: number;
  bytesIn: number;
  /** Messages / frames / bytes from the upstream to the client. */
  messagesOut: number;
  framesOut: number;
  bytesOut: number;
  closedBy: CloseCause;
}

export interface TunnelOptions {
  /** ms without a byte in either direction before the session is closed; 0 = never. */
  idleTimeout: number;
  /** Largest frame payload the client may send. */
  maxFrameSize: number;
}

const stats = new WeakMap<RequestContext, WebSocketStats>();

/** The traffic of a finished WebSocket session, for the log phase; undefined for other requests. */
export function sessionStats(ctx: RequestContext): WebSocketStats | undefined {
  return stats.get(ctx);
}

const CLIENT_ABORTED = new GatewayError('DOWNSTREAM_ABORTED', 'client connection failed during the WebSocket session');
const UPSTREAM_RESET = new GatewayError('UPSTREAM_RESET', 'upstream connection failed during the WebSocket session');

/**
 * One WebSocket session after the 101: the client's socket and the
 * upstream's, spliced together. Bytes are copied as they arrive, never
 * buffered beyond the sockets' own buffers: a reader is paused while the
 * other side's write buffer is full and resumed on 'drain'.
 *
 * - Client-to-upstream bytes go through a FrameScanner that enforces
 *   `maxFrameSize`; upstream-to-client bytes through one without a limit,
 *   so the gateway knows where frames start in both directions and only
 *   injects its own close frames between two frames, and never after the
 *   sender's own close frame.
 * - Half-close: a side that ends its half (FIN) has the other side's write
 *   half ended; the other direction keeps flowing until it ends too. An
 *   upstream that ends without a close frame gets the client a 1001 Going
 *   Away first (the gateway speaks for the upstream to the client).
 * - A side that fails (reset, error) has the other one closed at once:
 *   the client gets 1011 when the upstream fails; the upstream is
 *   destroyed when the client fails.
 * - The gateway ends a session itself on idle timeout (1001 both ways), on
 *   an oversized frame (1009 to the client, 1001 upstream) and on
 *   `goAway` (1001 both ways): both write halves end after the close
 *   frame, incoming bytes are read and dropped, and each socket is
 *   destroyed if its peer has not closed within CLOSE_GRACE_MS.
 *
 * `onEnd` runs once, when both sockets are closed.
 */
export class Tunnel implements WebSocketSession {
  readonly ctx: RequestContext;
  private readonly client: Socket;
  private readonly upstream: Socket;
  private readonly options: TunnelOptions;
  private readonly onEnd: (t: Tunnel) => void;
  /** Client-to-upstream frames (with the size limit) and upstream-to-client frames. */
  private readonly inbound: FrameScanner;
  private readonly outbound = new FrameScanner();
  private bytesIn = 0;
  private bytesOut = 0;
  private cause: CloseCause | undefined = undefined;
  /** The gateway is ending the session: data is no longer forwarded. */
  private closing = false;
  private clientClosed = false;
  private upstreamClosed = false;
  private finished = false;
  private lastActivity = 0;
  private idleTimer: NodeJS.Timeout | null = null;
  private graceTimer: NodeJS.Timeout | null = null;

  constructor(ctx: RequestContext, client: Socket, upstream: Socket, options: TunnelOptions, onEnd: (t: Tunnel) => void) {
    this.ctx = ctx;
    this.client = client;
    this.upstream = upstream;
    this.options = options;
    this.onEnd = onEnd;
    this.inbound = new FrameScanner(options.maxFrameSize);
  }

  /**
   * Starts both directions. `head` holds what the client sent after its
   * request head (it goes upstream first); what the upstream sent after
   * its 101 is still in the upstream socket's read buffer (undici puts it
   * back there) and flows first.
   */
  start(head: Buffer): void {
    const { client, upstream } = this;
    // Each side may end its half independently (see the class comment).
    client.allowHalfOpen = true;
    upstream.allowHalfOpen = true;
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.on('error', this.onClientError);
    upstream.on('error', this.onUpstreamError);
    client.on('end', this.onClientEnd);
    upstream.on('end', this.onUpstreamEnd);
    client.on('close', this.onClientClose);
    upstream.on('close', this.onUpstreamClose);
    client.on('drain', this.onClientDrain);
    upstream.on('drain', this.onUpstreamDrain);
    this.lastActivity = performance.now();
    if (head.length > 0) this.onClientData(head);
    client.on('data', this.onClientData);
    upstream.on('data', this.onUpstreamData);
    client.resume();
    upstream.resume();
    if (this.options.idleTimeout > 0) this.idleTimer = setTimeout(this.onIdleTimer, this.options.idleTimeout).unref();
  }

  /** Ends the session with 1001 Going Away both ways (gateway stop, listener removed). */
  goAway(): void {
    this.shutdown('gateway', GOING_AWAY, 'gateway shutting down', GOING_AWAY);
  }

  private readonly onClientData = (chunk: Buffer): void => {
    this.lastActivity = performance.now();
    if (this.closing) return;
    const upstream = this.upstream;
    if (upstream.destroyed || upstream.writableEnded) return;
    const cut = this.inbound.push(chunk);
    if (cut >= 0) {
      if (cut > 0) {
        this.bytesIn += cut;
        upstream.write(chunk.subarray(0, cut));
      }
      this.ctx.error = new GatewayError(
        'PAYLOAD_TOO_LARGE',
        `WebSocket frame of ${this.inbound.oversized} bytes exceeds websocket.maxFrameSize (${this.options.maxFrameSize})`,
      );
      this.shutdown('frame-too-big', MESSAGE_TOO_BIG, 'frame too big', GOING_AWAY);
      return;
    }
    this.bytesIn += chunk.length;
    // Whoever sends the first close frame ends the session, whichever side then closes TCP first.
    if (this.cause === undefined && this.inbound.closeSeen) this.cause = 'client';
    if (!upstream.write(chunk)) this.client.pause();
  };

  private readonly onUpstreamData = (chunk: Buffer): void => {
    this.lastActivity = performance.now();
    if (this.closing) return;
    const client = this.client;
    if (client.destroyed || client.writableEnded) return;
    this.outbound.push(chunk);
    this.bytesOut += chunk.length;
    if (this.cause === undefined && this.outbound.closeSeen) this.cause = 'upstream';
    if (!client.write(chunk)) this.upstream.pause();
  };

  private readonly onUpstreamDrain = (): void => {
    if (!this.closing) this.client.resume();
  };

  private readonly onClientDrain = (): void => {
    if (!this.closing) this.upstream.resume();
  };

  /** The client sent FIN: it will send nothing more; the upstream may still. */
  private readonly onClientEnd = (): void => {
    this.cause ??= 'client';
    if (this.closing) return;
    if (!this.upstream.destroyed && !this.upstream.writableEnded) this.upstream.end();
  };

  /** The upstream sent FIN; without a close frame first, the client is told (1001) before its half ends. */
  private readonly onUpstreamEnd = (): void => {
    this.cause ??= 'upstream';
    if (this.closing) return;
    this.endClient(GOING_AWAY, 'upstream went away');
  };

  private readonly onClientError = (): void => {
    this.cause ??= 'client-error';
    this.ctx.error ??= CLIENT_ABORTED;
    this.upstream.destroy();
  };

  private readonly onUpstreamError = (): void => {
    this.cause ??= 'upstream-error';
    this.ctx.error ??= UPSTREAM_RESET;
    if (!this.closing) this.endClient(INTERNAL_ERROR, 'upstream connection failed');
    this.armGrace();
  };

  private readonly onClientClose = (): void => {
    this.clientClosed = true;
    if (this.upstreamClosed) return this.finish();
    // Nothing can reach the client any more: the upstream gets FIN, then is destroyed if it lingers.
    this.cause ??= 'client';
    if (!this.upstream.destroyed && !this.upstream.writableEnded) this.upstream.end();
    this.upstream.resume();
    this.armGrace();
  };

  private readonly onUpstreamClose = (): void => {
    this.upstreamClosed = true;
    if (this.clientClosed) return this.finish();
    this.cause ??= 'upstream';
    if (!this.closing) this.endClient(GOING_AWAY, 'upstream went away');
    this.client.resume();
    this.armGrace();
  };

  private readonly onIdleTimer = (): void => {
    this.idleTimer = null;
    const idle = this.options.idleTimeout;
    const quiet = performance.now() - this.lastActivity;
    // Timers may fire up to a millisecond early against performance.now().
    if (quiet + 1 >= idle) return this.shutdown('idle', GOING_AWAY, 'idle timeout', GOING_AWAY);
    this.idleTimer = setTimeout(this.onIdleTimer, idle - quiet).unref();
  };

  /**
   * Ends the client's write half, after a close frame when the upstream has
   * not sent one and the stream is between frames.
   */
  private endClient(code: number, reason: string): void {
    const client = this.client;
    if (client.destroyed || client.writableEnded) return;
    const out = this.outbound;
    if (out.atBoundary && !out.closeSeen) client.end(closeFrame(code, reason, false));
    else client.end();
  }

  /** The gateway ends the session: close frames where the streams allow them, both halves end, incoming bytes are dropped. */
  private shutdown(cause: CloseCause, clientCode: number, reason: string, upstreamCode: number): void {
    if (this.closing || this.finished) return;
    this.closing = true;
    this.cause ??= cause;
    this.endClient(clientCode, reason);
    const upstream = this.upstream;
    if (!upstream.destroyed && !upstream.writableEnded) {
      const inb = this.inbound;
      if (inb.atBoundary && !inb.closeSeen) upstream.end(closeFrame(upstreamCode, reason, true));
      else upstream.end();
    }
    this.client.resume();
    upstream.resume();
    this.armGrace();
  }

  private armGrace(): void {
    if (this.graceTimer !== null || this.finished) return;
    this.graceTimer = setTimeout(() => {
      this.graceTimer = null;
      this.client.destroy();
      this.upstream.destroy();
    }, CLOSE_GRACE_MS).unref();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    if (this.graceTimer !== null) clearTimeout(this.graceTimer);
    this.idleTimer = this.graceTimer = null;
    const ctx = this.ctx;
    ctx.bytesSent = this.bytesOut;
    // The stats and access log read request bytes from contentLength; for a session, that is what the client sent.
    ctx.contentLength = this.bytesIn;
    stats.set(ctx, {
      messagesIn: this.inbound.messages,
      framesIn: this.inbound.frames,
      bytesIn: this.bytesIn,
      messagesOut: this.outbound.messages,
      framesOut: this.outbound.frames,
      bytesOut: this.bytesOut,
      closedBy: this.cause ?? 'client',
    });
    this.onEnd(this);
  }
}
