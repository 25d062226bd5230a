import { z } from 'zod';
import { headerName, headerValue } from '../values.js';

/**
 * `tracing:`, W3C Trace Context (https://www.w3.org/TR/trace-context/).
 * Portico always propagates `traceparent`/`tracestate` to the upstream with
 * its own span id, creating a trace when the request has none. `sample` is
 * the share of new traces marked sampled; a request whose `traceparent` is
 * sampled is always followed. Spans are exported over OTLP/HTTP only when
 * `otlp` is set (the OpenTelemetry SDK is loaded only then).
 */
export const tracingSchema = z.strictObject({
  sample: z
    .preprocess((v) => (typeof v === 'string' && /^\s*\d+(?:\.\d+)?\s*$/.test(v) ? Number(v) : v), z.number('must be a number from 0 to 1').min(0, 'must be >= 0').max(1, 'must be <= 1'))
    .default(0.1),
  otlp: z
    .strictObject({
      /** The collector's OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces. */
      endpoint: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL such as http://127.0.0.1:4318/v1/traces' }),
      /** Extra request headers for the collector (an API key…). */
      headers: z.record(headerName, headerValue).default({}),
      /** `service.name` of the exported spans. */
      serviceName: z.string().min(1).default('portico'),
    })
    .optional(),
});

export type TracingConfig = z.output<typeof tracingSchema>;
