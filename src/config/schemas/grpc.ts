import { z } from 'zod';

/**
 * A route's `grpcMetadata:`: request metadata (HTTP/2 headers) to set, add
 * or remove before the call goes upstream, the gRPC form of `requestHeaders`.
 * Keys are lower-case gRPC metadata keys; `-bin` keys take base64 values
 * (gRPC over HTTP/2, "Custom-Metadata"). Reserved `grpc-*` keys,
 * pseudo-headers and the headers the gateway or HTTP manage cannot be
 * changed.
 */

/** Headers that frame the call or belong to the connection or the gateway. */
const MANAGED = new Set([
  'te',
  'content-type',
  'content-length',
  'host',
  'user-agent',
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'trailer',
  'x-request-id',
]);

const key = z
  .string()
  .min(1, 'must not be empty')
  .regex(/^[0-9a-z_.-]+$/, 'must be a gRPC metadata key: lower-case letters, digits, "_", "-" or "."')
  .refine((k) => !k.startsWith('grpc-'), 'grpc-* keys are reserved by gRPC')
  .refine((k) => !MANAGED.has(k), 'is managed by gRPC, HTTP or the gateway');

const values = z.record(key, z.string()).superRefine((rec, ctx) => {
  for (const [k, v] of Object.entries(rec)) {
    if (k.endsWith('-bin')) {
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(v)) ctx.addIssue({ code: 'custom', path: [k], message: 'must be base64 (a -bin key carries binary data)' });
    } else if (!/^[\x20-\x7e]*$/.test(v)) {
      ctx.addIssue({ code: 'custom', path: [k], message: 'must be printable ASCII (use a -bin key for binary data)' });
    }
  }
});

export const grpcMetadataSchema = z.strictObject({
  set: values.optional(),
  add: values.optional(),
  remove: z.array(key).optional(),
});

export type GrpcMetadataConfig = z.output<typeof grpcMetadataSchema>;
