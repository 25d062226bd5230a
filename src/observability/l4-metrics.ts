import type { Sample } from './scraped-metric.js';

/** The counters of one (listener, upstream): connections by how they ended, and bytes. */
class L4Series {
  /** Ended connections (UDP: sessions, and refused new clients) by `ok` or their GatewayError code. */
  readonly codes = new Map<string, number>();
  received = 0;
  sent = 0;
  constructor(
    readonly listener: string,
    readonly upstream: string,
  ) {}
}

/**
 * Connection-level (L4) metrics, recorded once per connection or UDP
 * session in its log phase (L4StreamListener.finish, the UDP listener's
 * session end and first refusal). Labels: listener and upstream (config
 * names; "" when the connection ended before an upstream was chosen) and
 * code (`ok`, or the GatewayError code it ended with: a fixed set).
 */
export class L4Metrics {
  private readonly byListener = new Map<string, Map<string, L4Series>>();

  /**
   * One connection ended, `ok` or with GatewayError `code`. `received` are the bytes read from the client
   * (sent upstream), `sent` the bytes written to it; undefined counts 0.
   */
  record(listener: string, upstream: string | undefined, code: string, received: number | undefined, sent: number | undefined): void {
    let byUpstream = this.byListener.get(listener);
    if (byUpstream === undefined) {
      byUpstream = new Map();
      this.byListener.set(listener, byUpstream);
    }
    const u = upstream ?? '';
    let s = byUpstream.get(u);
    if (s === undefined) {
      s = new L4Series(listener, u);
      byUpstream.set(u, s);
    }
    s.codes.set(code, (s.codes.get(code) ?? 0) + 1);
    if (received !== undefined && received > 0) s.received += received;
    if (sent !== undefined && sent > 0) s.sent += sent;
  }

  /** After a reload: drops the series of listeners and upstreams the new config no longer has. */
  retain(listeners: ReadonlySet<string>, upstreams: ReadonlySet<string>): void {
    for (const [listener, byUpstream] of this.byListener) {
      if (!listeners.has(listener)) {
        this.byListener.delete(listener);
        continue;
      }
      for (const u of byUpstream.keys()) if (u !== '' && !upstreams.has(u)) byUpstream.delete(u);
    }
  }

  connections(out: Sample[]): void {
    for (const s of this.series()) {
      for (const [code, n] of s.codes) out.push({ labels: { listener: s.listener, upstream: s.upstream, code }, value: n });
    }
  }

  received(out: Sample[]): void {
    for (const s of this.series()) out.push({ labels: { listener: s.listener, upstream: s.upstream }, value: s.received });
  }

  sent(out: Sample[]): void {
    for (const s of this.series()) out.push({ labels: { listener: s.listener, upstream: s.upstream }, value: s.sent });
  }

  private *series(): IterableIterator<L4Series> {
    for (const byUpstream of this.byListener.values()) yield* byUpstream.values();
  }
}
