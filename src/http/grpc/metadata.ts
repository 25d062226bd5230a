import type { Middleware, RequestContext } from '../../snapshot/snapshot.js';
import type { GrpcMetadataConfig } from '../../config/schemas/grpc.js';

/**
 * A route's `grpcMetadata:` as a request middleware: the call's metadata
 * (its HTTP/2 request headers, gRPC over HTTP/2 "Custom-Metadata") is
 * edited on the way upstream like `requestHeaders`: `remove` deletes every
 * value of a key, `set` replaces every value, `add` appends one more value
 * (repeated keys are how gRPC sends a list). `-bin` values are base64 and
 * go as they are; the server decodes them. Keys are already lower-case
 * (the schema requires it), and reserved keys (`grpc-*`, pseudo-headers,
 * `content-type`, `te`, …) cannot be named, so a rule never changes the
 * call's framing.
 *
 * It runs for every request of the route: on a call that is not gRPC it
 * edits headers the same way, which is harmless. null when there is no rule.
 */
export function grpcMetadata(cfg: GrpcMetadataConfig | undefined): Middleware | null {
  if (cfg === undefined) return null;
  const set = Object.entries(cfg.set ?? {});
  const add = Object.entries(cfg.add ?? {});
  const drop = new Set([...(cfg.remove ?? []), ...set.map(([k]) => k)]);
  if (set.length === 0 && add.length === 0 && drop.size === 0) return null;
  return {
    name: 'grpc-metadata',
    onRequest(ctx: RequestContext): void {
      const list = ctx.upstreamHeaders;
      const out: string[] = [];
      for (let i = 0; i < list.length; i += 2) {
        if (!drop.has(list[i]!.toLowerCase())) out.push(list[i]!, list[i + 1]!);
      }
      for (const [k, v] of set) out.push(k, v);
      for (const [k, v] of add) out.push(k, v);
      ctx.upstreamHeaders = out;
    },
  };
}
