import dgram from 'node:dgram';
import net from 'node:net';
import { connectVia } from '../l4/dial.js';
import type { Logger } from '../observability/logger.js';
import { formatPeer } from '../runtime/connection-registry.js';
import type { Connector } from '../runtime/connector.js';
import { DatagramDecoder, encodeDatagram, MAX_DATAGRAM_LENGTH } from './datagram-framing.js';
import type { Registration } from './hub.js';
import { BUFFER, CONNECT_TIMEOUT_MS, PublicPort, bindRefusal, type Binding } from './public-port.js';

/** A UDP client (address:port) silent this long both ways ends its session (and its stream). */
export const UDP_IDLE_MS = 30_000;
/** UDP sessions one public port carries at once (as the L4 udp listener's default); new clients beyond are dropped. */
export const MAX_UDP_SESSIONS = 10_000;
/** Datagrams a UDP session holds while its stream is being opened; more are dropped. */
const OPENING_QUEUE = 64;

/**
 * A UDP public port: each client address (ip:port) is a session with its
 * own tunnel stream, its datagrams framed both ways (datagram-framing.ts);
 * replies go back from the public port. A session ends after UDP_IDLE_MS
 * of silence both ways, or with its stream.
 */
export class UdpPort extends PublicPort {
  private readonly socket: dgram.Socket;
  readonly sessions = new Map<string, DatagramSession>();
  /** Datagrams dropped: beyond MAX_UDP_SESSIONS, a full opening queue, a stream behind on its writes. */
  dropped = 0;

  constructor(binding: Binding, r: Registration, host: string, port: number, logger: Logger) {
    super(binding, r, host, port, logger);
    this.socket = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4' });
  }

  open(): Promise<string | null> {
    return new Promise((resolve) => {
      const onError = (err: Error) => {
        try {
          this.socket.close();
        } catch {
          /* not bound */
        }
        resolve(bindRefusal('udp', this.host, this.port, err));
      };
      this.socket.once('error', onError);
      this.socket.bind({ address: this.host, port: this.port, exclusive: true }, () => {
        this.socket.off('error', onError);
        this.socket.on('error', (err) => this.logger.warn({ listener: this.binding.name, port: this.port, err: err.message }, 'tunnel public port error'));
        if (this.closed) return void this.socket.close();
        this.socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
        this.opened('udp');
        resolve(null);
      });
    });
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closed) return;
    const key = `${rinfo.address} ${rinfo.port}`;
    let s = this.sessions.get(key);
    if (s === undefined) {
      if (this.sessions.size >= MAX_UDP_SESSIONS) {
        this.dropped++;
        return;
      }
      s = new DatagramSession(this, key, rinfo, this.connector(formatPeer(rinfo.address, rinfo.port)));
      this.sessions.set(key, s);
    }
    s.send(msg);
  }

  /** A datagram for the client of `s`, sent from the public port. */
  reply(s: DatagramSession, datagram: Buffer): void {
    if (this.closed) return;
    try {
      this.socket.send(datagram, s.rinfo.port, s.rinfo.address);
    } catch {
      /* closing */
    }
  }

  sessionEnded(s: DatagramSession): void {
    if (this.sessions.get(s.key) === s) this.sessions.delete(s.key);
    this.doneIn += s.bytesIn;
    this.doneOut += s.bytesOut;
  }

  bytesIn(): number {
    let n = this.doneIn;
    for (const s of this.sessions.values()) n += s.bytesIn;
    return n;
  }

  bytesOut(): number {
    let n = this.doneOut;
    for (const s of this.sessions.values()) n += s.bytesOut;
    return n;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.sessions.values()]) s.end();
    this.ended('udp');
    try {
      this.socket.close();
    } catch {
      /* already closed (a failed bind closes it) */
    }
  }
}

/** One UDP client of a public port and its tunnel stream. */
class DatagramSession {
  bytesIn = 0;
  bytesOut = 0;
  private stream: net.Socket | null = null;
  /** Datagrams received before the stream is up; null once it is. */
  private queue: Buffer[] | null = [];
  private readonly decoder = new DatagramDecoder();
  private lastActivity = Date.now();
  private timer: NodeJS.Timeout;
  private cancel: (() => void) | null;
  private ended = false;

  constructor(
    private readonly port: UdpPort,
    readonly key: string,
    readonly rinfo: dgram.RemoteInfo,
    connector: Connector,
  ) {
    this.timer = this.arm(UDP_IDLE_MS);
    this.cancel = connectVia(connector, { timeoutMs: CONNECT_TIMEOUT_MS, keepAliveMs: 0, highWaterMark: BUFFER }, (err, stream) => {
      this.cancel = null;
      if (err !== null || stream === null) return this.end();
      if (this.ended) return void stream.destroy();
      this.stream = stream;
      stream.on('error', () => undefined);
      stream.on('data', (chunk: Buffer) => {
        this.lastActivity = Date.now();
        for (const d of this.decoder.push(chunk)) {
          this.bytesOut += d.length;
          this.port.reply(this, d);
        }
      });
      // The agent ended or reset its side: the session is over.
      stream.once('end', () => this.end());
      stream.once('close', () => this.end());
      const queued = this.queue ?? [];
      this.queue = null;
      for (const d of queued) this.write(d);
    });
  }

  send(datagram: Buffer): void {
    if (this.ended) return;
    if (datagram.length > MAX_DATAGRAM_LENGTH) return void this.port.dropped++;
    this.lastActivity = Date.now();
    if (this.queue === null) return this.write(datagram);
    if (this.queue.length >= OPENING_QUEUE) return void this.port.dropped++;
    this.queue.push(datagram);
  }

  /** Writes one framed datagram; a stream still draining earlier writes drops it (UDP may lose datagrams, memory stays bounded). */
  private write(datagram: Buffer): void {
    const stream = this.stream;
    if (stream === null || stream.destroyed) return;
    if (stream.writableNeedDrain) return void this.port.dropped++;
    this.bytesIn += datagram.length;
    const [header, payload] = encodeDatagram(datagram);
    stream.cork();
    stream.write(header!);
    stream.write(payload!);
    stream.uncork();
  }

  /** One timer per session, re-armed lazily: traffic only moves `lastActivity`. */
  private arm(ms: number): NodeJS.Timeout {
    const t = setTimeout(() => {
      const left = this.lastActivity + UDP_IDLE_MS - Date.now();
      if (left > 0) this.timer = this.arm(left);
      else this.end();
    }, ms);
    t.unref();
    return t;
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    this.queue = null;
    this.cancel?.();
    this.cancel = null;
    this.stream?.destroy();
    this.stream = null;
    this.port.sessionEnded(this);
  }
}

