import { parseHostPort, type HostPort } from '../net/address.js';

/**
 * One address in an upstream. A Target is created when a snapshot is
 * compiled and is read by balancers; its live counters (`inflight`,
 * `ewmaMs`) are the only fields that change after compilation.
 */
export class Target {
  /** `host:port` as written in the config (IPv6 hosts in brackets). */
  readonly address: string;
  /** Relative weight, an integer >= 0 (0: drained, never picked). */
  readonly weight: number;
  /** Requests (or connections) currently in flight to this target. */
  inflight = 0;
  /** Exponentially weighted moving average of response latency, in ms. 0 until the first sample. */
  ewmaMs = 0;
  private lastSampleAt = 0;
  private parsed: HostPort | undefined;

  constructor(address: string, weight = 1) {
    this.address = address;
    this.weight = weight;
  }

  /** The address split into host and port (parsed once; L4 listeners dial it per connection). */
  get hostPort(): HostPort {
    return (this.parsed ??= parseHostPort(this.address) ?? { host: this.address, port: 0 });
  }

  /**
   * Record one finished request's latency. The average decays with time
   * (time constant `decayMs`), as in Finagle's peak-EWMA, so a target that was
   * slow a while ago is not punished forever.
   */
  observeLatency(ms: number, now = Date.now(), decayMs = 10_000): void {
    if (this.ewmaMs === 0) {
      this.ewmaMs = ms;
    } else {
      const elapsed = Math.max(now - this.lastSampleAt, 0);
      const w = Math.exp(-elapsed / decayMs);
      // Peak sensitivity: a slower sample is taken at once.
      this.ewmaMs = ms > this.ewmaMs ? ms : this.ewmaMs * w + ms * (1 - w);
    }
    this.lastSampleAt = now;
  }
}
