import type { TracingConfig } from '../config/schemas/tracing.js';
import type { RequestContext, RequestTracer } from '../snapshot/snapshot.js';
import type { Logger } from './logger.js';
// Type only: erased from the JavaScript, so this module loads no SDK code (otlp.ts is imported dynamically below).
import type { SpanSink } from './otlp.js';

/** How long a stop (or a reload that replaces the exporter) waits for the last spans to reach the collector. */
export const FLUSH_TIMEOUT_MS = 5000;

/**
 * The gateway's tracer, kept across reloads (`tracing:`). Every request
 * gets a W3C trace context in any case (trace-context.ts, set up by
 * handler.ts createContext); this holds what the config decides:
 *
 * - `sample`: the share of new traces that are sampled (read when a
 *   request arrives; a reload changes it for the requests after it);
 * - the OTLP exporter, only while `tracing.otlp` is set. The
 *   OpenTelemetry SDK is loaded (dynamic `import()` of otlp.ts) the first
 *   time one is configured, never before: a gateway without `otlp` loads
 *   no SDK module. A reload that changes `otlp` swaps in a new exporter
 *   and flushes the old one in the background; spans of requests still in
 *   flight go to the exporter current when they end.
 *
 * `record` (the log phase) exports only sampled requests' spans.
 */
export class Tracer implements RequestTracer {
  sample = 0.1;
  private sink: SpanSink | null = null;
  /** The `otlp` config the sink was made from (JSON), '' for none. */
  private key = '';
  private readonly logger: Logger;

  constructor(logger: Logger) {
    this.logger = logger;
  }

  /** Applies `tracing:` (after the snapshot that carries it is swapped in). Never rejects: a failure is logged and export stays off. */
  async configure(config: TracingConfig): Promise<void> {
    this.sample = config.sample;
    const key = config.otlp === undefined ? '' : JSON.stringify(config.otlp);
    if (key === this.key) return;
    this.key = key;
    const old = this.sink;
    this.sink = null;
    if (old !== null) void old.shutdown(FLUSH_TIMEOUT_MS);
    if (config.otlp === undefined) return;
    try {
      const { createOtlpSink } = await import('./otlp.js');
      // A later configure may have run meanwhile (calls are serialized by the gateway, but be safe).
      if (this.key === key) this.sink = createOtlpSink(config.otlp, this.logger);
    } catch (err) {
      this.logger.error({ error: (err as Error).message }, 'tracing: the OpenTelemetry exporter could not be loaded; spans are not exported');
    }
  }

  record(ctx: RequestContext): void {
    const sink = this.sink;
    if (sink === null || ctx.trace === null || !ctx.trace.sampled) return;
    sink.record(ctx, process.hrtime.bigint());
  }

  /** Flushes and stops the exporter (gateway stop); bounded by FLUSH_TIMEOUT_MS. */
  async close(): Promise<void> {
    const sink = this.sink;
    this.sink = null;
    this.key = '';
    if (sink !== null) await sink.shutdown(FLUSH_TIMEOUT_MS);
  }
}
