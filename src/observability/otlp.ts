import { createTraceState, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Attributes, type Context, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOnSampler, BasicTracerProvider, BatchSpanProcessor, type IdGenerator, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { TracingConfig } from '../config/schemas/tracing.js';
import type { RequestContext } from '../snapshot/snapshot.js';
import type { Logger } from './logger.js';
import { maskUserinfo } from './redact.js';

/*
 * The OpenTelemetry SDK part of tracing, loaded only when `tracing.otlp`
 * is set (tracing.ts imports this module dynamically): spans exported over
 * OTLP/HTTP (JSON) by a BatchSpanProcessor.
 */

/** What otlp.ts builds: the OpenTelemetry SDK's exporter, behind the two calls the gateway makes. */
export interface SpanSink {
  /** Queues the SERVER span of a finished, sampled request; never blocks and never throws. */
  record(ctx: RequestContext, endedAt: bigint): void;
  /** Exports what is queued, then stops; resolves within `timeoutMs` even if the collector does not answer. */
  shutdown(timeoutMs: number): Promise<void>;
}

type OtlpConfig = NonNullable<TracingConfig['otlp']>;

/** The batch processor's settings: a span waits at most a second; past 2048 queued spans new ones are dropped, never waited for. */
const BATCH = { maxQueueSize: 2048, maxExportBatchSize: 512, scheduledDelayMillis: 1000, exportTimeoutMillis: 10_000 };
/** One export request's time limit (the exporter's retries included). */
const EXPORT_TIMEOUT_MS = 10_000;
/** At most one "export failed" line per this period. */
const REPORT_EVERY_MS = 60_000;
/** The longest attribute value exported (characters). */
const ATTRIBUTE_MAX_LENGTH = 1024;
/** ExportResultCode.SUCCESS (@opentelemetry/core). */
const SUCCESS = 0;

/**
 * Hands the SDK the ids Portico already chose: the span id sent upstream
 * (and the trace id of a trace started here). Set right before each
 * synchronous `startSpan`.
 */
class GivenIds implements IdGenerator {
  traceId = '';
  spanId = '';
  generateTraceId(): string {
    return this.traceId;
  }
  generateSpanId(): string {
    return this.spanId;
  }
}

/**
 * The exporter, reporting failed exports (collector down, refused, slow)
 * to the gateway log at most once a minute: the endpoint (userinfo masked)
 * and the reason, never the configured headers.
 */
class ReportingExporter implements SpanExporter {
  private readonly inner: OTLPTraceExporter;
  private readonly endpoint: string;
  private readonly logger: Logger;
  private reportedAt = 0;
  private failed = 0;

  constructor(inner: OTLPTraceExporter, endpoint: string, logger: Logger) {
    this.inner = inner;
    this.endpoint = maskUserinfo(endpoint);
    this.logger = logger;
  }

  export(spans: ReadableSpan[], done: (result: { code: number; error?: Error }) => void): void {
    this.inner.export(spans, (result) => {
      if (result.code !== SUCCESS) this.report(spans.length, result.error);
      done(result);
    });
  }

  private report(spans: number, error: Error | undefined): void {
    this.failed += spans;
    const now = Date.now();
    if (now - this.reportedAt < REPORT_EVERY_MS) return;
    this.reportedAt = now;
    this.logger.warn({ endpoint: this.endpoint, error: error?.message ?? 'export failed', spansDropped: this.failed }, 'tracing: spans could not be exported');
    this.failed = 0;
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }
}

/**
 * One SERVER span per sampled request, created when the request ends (so
 * a reload that swaps the exporter never loses a request in flight):
 * - name: `METHOD route-name` (`METHOD` alone when no route matched);
 * - trace id, span id and parent: the request's TraceContext — the span id
 *   is the parent-id the upstream received, the parent is the incoming
 *   traceparent's parent-id (none for a trace started here);
 * - start: the request's arrival; end: its log phase;
 * - attributes: see `attributesOf`; status ERROR for a 5xx answer.
 */
class OtlpSink implements SpanSink {
  private readonly ids = new GivenIds();
  private readonly provider: BasicTracerProvider;
  private readonly tracer: Tracer;

  constructor(config: OtlpConfig, logger: Logger) {
    const exporter = new OTLPTraceExporter({ url: config.endpoint, headers: { ...config.headers }, timeoutMillis: EXPORT_TIMEOUT_MS });
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': config.serviceName }),
      idGenerator: this.ids,
      // The sampling decision is the request's (trace-context.ts): only sampled requests reach this sink.
      sampler: new AlwaysOnSampler(),
      // A client's path can be long (up to the head size limit): an attribute value is cut there, never exported whole.
      spanLimits: { attributeValueLengthLimit: ATTRIBUTE_MAX_LENGTH },
      spanProcessors: [new BatchSpanProcessor(new ReportingExporter(exporter, config.endpoint, logger), BATCH)],
    });
    this.tracer = this.provider.getTracer('portico');
  }

  record(ctx: RequestContext, endedAt: bigint): void {
    const t = ctx.trace!;
    try {
      const end = performance.timeOrigin + performance.now();
      const start = end - Number(endedAt - ctx.startedAt) / 1e6;
      let parent: Context = ROOT_CONTEXT;
      if (t.parentId !== '') {
        parent = trace.setSpanContext(ROOT_CONTEXT, {
          traceId: t.traceId,
          spanId: t.parentId,
          traceFlags: TraceFlags.SAMPLED,
          isRemote: true,
          traceState: t.tracestate === undefined ? undefined : createTraceState(t.tracestate),
        });
      }
      this.ids.traceId = t.traceId;
      this.ids.spanId = t.spanId;
      const method = ctx.req.method ?? 'GET';
      const span = this.tracer.startSpan(
        ctx.route === undefined ? method : `${method} ${ctx.route.name}`,
        { kind: SpanKind.SERVER, startTime: start, attributes: attributesOf(ctx, method) },
        parent,
      );
      if (ctx.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: ctx.error?.code });
      span.end(end);
    } catch {
      // A span is never worth a failed request: the log phase goes on.
    }
  }

  async shutdown(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    });
    await Promise.race([this.provider.shutdown().catch(() => undefined), timeout]);
    clearTimeout(timer);
  }
}

/**
 * A span's attributes (OpenTelemetry HTTP semantic conventions where one
 * exists, `portico.*` for the gateway's own words):
 * http.request.method, http.response.status_code, url.path,
 * network.protocol.version, client.address, portico.listener,
 * portico.route, portico.upstream, portico.target (the address of the
 * last target tried), portico.tries (targets tried: 2 and more after a
 * retry or connect failover), portico.request_id, and when they apply
 * error.type (the gateway error code) and rpc.grpc.status_code.
 */
function attributesOf(ctx: RequestContext, method: string): Attributes {
  const a: Attributes = {
    'http.request.method': method,
    'http.response.status_code': ctx.status,
    'url.path': maskUserinfo(ctx.path),
    'network.protocol.version': ctx.h2 ? '2' : ctx.req.httpVersion,
    'client.address': ctx.clientIp,
    'portico.listener': ctx.listener.name,
    'portico.request_id': ctx.requestId,
  };
  if (ctx.route !== undefined) a['portico.route'] = ctx.route.name;
  if (ctx.upstream !== undefined) a['portico.upstream'] = ctx.upstream.name;
  if (ctx.target !== undefined) a['portico.target'] = ctx.target.address;
  if (ctx.tries > 0) a['portico.tries'] = ctx.tries;
  if (ctx.error !== undefined) a['error.type'] = ctx.error.code;
  if (ctx.grpcStatus >= 0) a['rpc.grpc.status_code'] = ctx.grpcStatus;
  return a;
}

export function createOtlpSink(config: OtlpConfig, logger: Logger): SpanSink {
  return new OtlpSink(config, logger);
}
