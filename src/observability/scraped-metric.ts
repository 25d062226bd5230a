import type { Metric, Registry } from 'prom-client';

/**
 * A metric whose samples are made when it is read (`registry.metrics()` or
 * `registry.getMetricsAsJSON()`), from counters the hot path keeps as plain
 * numbers: recording is an array increment, never a label-hash lookup.
 *
 * It has the shape prom-client's Registry reads from its own metrics
 * (`get()` → name, help, type, aggregator, values), so the text exposition,
 * the JSON form and AggregatorRegistry.aggregate (workers: N) all see it
 * as they see a prom-client Counter, Gauge or Histogram.
 */

/** How AggregatorRegistry.aggregate combines one series across worker processes. */
export type Aggregator = 'sum' | 'first' | 'min' | 'max' | 'average' | 'omit';

export type Labels = Record<string, string | number>;

/** One sample: histograms name their `_bucket`, `_sum` and `_count` lines in `metricName`, as prom-client does. */
export interface Sample {
  labels: Labels;
  value: number;
  metricName?: string;
}

export class ScrapedMetric {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
    readonly aggregator: Aggregator,
    /** Appends the current samples (a throw drops this metric's samples from the scrape). */
    private readonly read: (out: Sample[]) => void,
  ) {}

  /** The current samples; none when reading the source threw (one broken source never fails the whole scrape). */
  get(): { name: string; help: string; type: string; aggregator: Aggregator; values: Sample[] } {
    let values: Sample[] = [];
    try {
      this.read(values);
    } catch {
      values = [];
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Registry.resetMetrics: the numbers belong to their recorders, which outlive a reset. */
  reset(): void {}

  register(registry: Registry): this {
    registry.registerMetric(this as unknown as Metric);
    return this;
  }
}

/**
 * Appends one histogram series: `counts` holds one count per bucket of
 * `bounds` (upper bounds, ascending) plus one for larger values, NOT
 * cumulative; the samples are cumulative with `le`, then `_sum`, `_count`.
 */
export function pushHistogram(out: Sample[], name: string, labels: Labels, bounds: readonly number[], counts: readonly number[], sum: number): void {
  let cumulative = 0;
  for (let i = 0; i < bounds.length; i++) {
    cumulative += counts[i]!;
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: bounds[i]! }, value: cumulative });
  }
  cumulative += counts[bounds.length]!;
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: cumulative });
  out.push({ metricName: `${name}_sum`, labels, value: sum });
  out.push({ metricName: `${name}_count`, labels, value: cumulative });
}

/** The index of the bucket of `bounds` (ascending upper bounds) that `value` falls in; bounds.length when above them all. */
export function bucketOf(bounds: readonly number[], value: number): number {
  let b = 0;
  while (b < bounds.length && value > bounds[b]!) b++;
  return b;
}
