import { z } from 'zod';
import { bool } from '../values.js';

/**
 * A listener's `accessLog:` value. `true`: the default fields on stdout;
 * `false`: off; `{ path?, fields?, maskQueryParams? }`: a file (stdout when
 * `path` is left out), a chosen field list, extra query parameters to mask.
 * The line itself is written by access-log.ts; docs/configuration.md
 * ("Access log") describes every field.
 */

/**
 * Every field an HTTP access-log line can carry, in the order they are
 * written (whatever the order of a `fields` list).
 */
export const ACCESS_LOG_FIELDS = [
  'time',
  'type',
  'requestId',
  'traceId',
  'listener',
  'route',
  'client',
  'method',
  'host',
  'path',
  'query',
  'protocol',
  'userAgent',
  'status',
  'bytesReceived',
  'bytesSent',
  'durationMs',
  'upstream',
  'target',
  'upstreamStatus',
  'upstreamMs',
  'consumer',
  'error',
  'grpcStatus',
  'websocket',
] as const;

export type AccessLogField = (typeof ACCESS_LOG_FIELDS)[number];

/** Written when `accessLog` is `true` or has no `fields`: all but the opt-in `host` and `consumer`. */
export const DEFAULT_ACCESS_LOG_FIELDS: readonly AccessLogField[] = ACCESS_LOG_FIELDS.filter((f) => f !== 'host' && f !== 'consumer');

/**
 * Query parameters whose values are always written as `***` (names
 * compared case-insensitively, after percent-decoding); `maskQueryParams`
 * adds to them.
 */
export const MASKED_QUERY_PARAMS = [
  'access_token',
  'token',
  'api_key',
  'apikey',
  'key',
  'password',
  'passwd',
  'secret',
  'signature',
  'sig',
  'code',
  'client_secret',
  'auth',
] as const;

const FIELD_SET: ReadonlySet<string> = new Set(ACCESS_LOG_FIELDS);

const fieldList = z
  .array(z.string('must be a field name'))
  .min(1, 'must name at least one field (use accessLog: false to turn the log off)')
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((f, i) => {
      if (!FIELD_SET.has(f)) ctx.addIssue({ code: 'custom', path: [i], message: `unknown access-log field "${f}"; one of: ${ACCESS_LOG_FIELDS.join(', ')}` });
      else if (seen.has(f)) ctx.addIssue({ code: 'custom', path: [i], message: `"${f}" is listed twice` });
      seen.add(f);
    });
  })
  .transform((list) => list as AccessLogField[]);

const paramName = z.string('must be a query parameter name').min(1, 'must not be empty').max(128, 'must be at most 128 characters');

/** `accessLog:` on an HTTP listener. */
export const httpAccessLogSchema = z.union([
  bool,
  z.strictObject({
    /** A file (missing directories are created); stdout when left out. */
    path: z.string().min(1).optional(),
    /** The fields written, from ACCESS_LOG_FIELDS; the default set when left out. */
    fields: fieldList.optional(),
    /** Query parameters masked in addition to MASKED_QUERY_PARAMS. */
    maskQueryParams: z.array(paramName).default([]),
  }),
]);

/**
 * `accessLog:` on an L4 listener: its `type: "connection"` lines have a
 * fixed shape, so only the destination is chosen.
 */
export const l4AccessLogSchema = z.union([bool, z.strictObject({ path: z.string().min(1).optional() })]);

export type AccessLogConfig = z.output<typeof httpAccessLogSchema> | z.output<typeof l4AccessLogSchema>;
