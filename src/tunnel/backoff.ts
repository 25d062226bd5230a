/** Reconnect delays: a few quick retries, then exponential backoff with full jitter up to a cap. */
export class Backoff {
  private attempt = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly fastRetries: number;
  private readonly random: () => number;

  constructor(o: { initialMs: number; maxMs: number; fastRetries?: number; random?: () => number }) {
    this.initialMs = o.initialMs;
    this.maxMs = Math.max(o.maxMs, o.initialMs);
    this.fastRetries = o.fastRetries ?? 3;
    this.random = o.random ?? Math.random;
  }

  next(): number {
    const n = this.attempt++;
    if (n < this.fastRetries) return this.initialMs;
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(n - this.fastRetries + 1, 30));
    return Math.max(this.initialMs, Math.round(this.random() * ceiling));
  }

  reset(): void {
    this.attempt = 0;
  }
}
