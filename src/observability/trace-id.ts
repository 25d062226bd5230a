/**
 * The access log logs the trace id Portico used for a request (its
 * TraceContext, trace-context.ts: the incoming `traceparent`'s, or one it
 * created). This file reads the trace id a request's headers carry, for
 * a context that has none. Tried in order, the first valid one wins (an
 * invalid header is ignored, as if absent):
 *
 * 1. `traceparent` (W3C Trace Context §3.2): `VV-TRACEID-PARENTID-FF`, the
 *    32-hex trace id. Version `ff` is invalid; version `00` has exactly
 *    four parts; later versions may append `-…` parts. All-zero trace or
 *    parent ids are invalid. Hex is lower-case only, as the spec says.
 *    Two `traceparent` headers make it invalid.
 * 2. `X-B3-TraceId` (B3 propagation): 16 or 32 hex digits, not all zero.
 * 3. `X-Cloud-Trace-Context` (Google Cloud): `TRACE_ID[/SPAN_ID][;o=N]`,
 *    the 32-hex TRACE_ID.
 * 4. `X-Amzn-Trace-Id` (AWS X-Ray): the `Root=1-XXXXXXXX-XXXXXXXXXXXXXXXXXXXXXXXX`
 *    field, logged as `1-…-…`.
 *
 * Only values matching these formats are returned, so a trace id in the log
 * is plain ASCII (hex digits and `-`); B3 and Cloud ids are lower-cased.
 */

import { parseTraceparent } from './trace-context.js';

const B3 = /^(?:[0-9a-fA-F]{16}|[0-9a-fA-F]{32})$/;
const CLOUD = /^([0-9a-fA-F]{32})(?:[/;]|$)/;
const AMZN_ROOT = /^1-[0-9a-fA-F]{8}-[0-9a-fA-F]{24}$/;
const ZEROS = /^0+$/;

/** The trace id of a `traceparent` value, or undefined when it is not valid (trace-context.ts parseTraceparent). */
export function fromTraceparent(value: string): string | undefined {
  return parseTraceparent(value)?.traceId;
}

export function fromB3(v: string): string | undefined {
  const t = v.trim();
  return B3.test(t) && !ZEROS.test(t) ? t.toLowerCase() : undefined;
}

export function fromCloudTraceContext(v: string): string | undefined {
  const m = CLOUD.exec(v.trim());
  return m !== null && !ZEROS.test(m[1]!) ? m[1]!.toLowerCase() : undefined;
}

export function fromAmznTraceId(v: string): string | undefined {
  for (const field of v.split(';')) {
    const eq = field.indexOf('=');
    if (eq < 0 || field.slice(0, eq).trim().toLowerCase() !== 'root') continue;
    const root = field.slice(eq + 1).trim();
    return AMZN_ROOT.test(root) ? root : undefined;
  }
  return undefined;
}

/** What the access log reads from a request's raw headers in one pass. */
export interface LoggedHeaders {
  userAgent: string | undefined;
  traceId: string | undefined;
}

/**
 * One pass over `rawHeaders` (`[name, value, …]`, names in any case) for
 * the user agent (the first `User-Agent`) and the trace id (see above).
 */
export function readLoggedHeaders(raw: readonly string[], wantTrace: boolean): LoggedHeaders {
  let userAgent: string | undefined;
  let traceparent: string | undefined;
  let traceparents = 0;
  let b3: string | undefined;
  let cloud: string | undefined;
  let amzn: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // Only these lengths and first letters can be a header read here; the rest is not lower-cased.
    const first = name.charCodeAt(0) | 0x20;
    switch (name.length) {
      case 10:
        if (first === 0x75 /* u */ && userAgent === undefined && name.toLowerCase() === 'user-agent') userAgent = raw[i + 1];
        break;
      case 11:
        if (first === 0x74 /* t */ && wantTrace && name.toLowerCase() === 'traceparent') {
          traceparent = raw[i + 1];
          traceparents++;
        }
        break;
      case 12:
        if (first === 0x78 /* x */ && wantTrace && b3 === undefined && name.toLowerCase() === 'x-b3-traceid') b3 = raw[i + 1];
        break;
      case 15:
        if (first === 0x78 && wantTrace && amzn === undefined && name.toLowerCase() === 'x-amzn-trace-id') amzn = raw[i + 1];
        break;
      case 21:
        if (first === 0x78 && wantTrace && cloud === undefined && name.toLowerCase() === 'x-cloud-trace-context') cloud = raw[i + 1];
        break;
    }
  }
  let traceId: string | undefined;
  if (traceparent !== undefined && traceparents === 1) traceId = fromTraceparent(traceparent);
  if (traceId === undefined && b3 !== undefined) traceId = fromB3(b3);
  if (traceId === undefined && cloud !== undefined) traceId = fromCloudTraceContext(cloud);
  if (traceId === undefined && amzn !== undefined) traceId = fromAmznTraceId(amzn);
  return { userAgent, traceId };
}
