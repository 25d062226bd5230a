import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { GatewayError } from '../errors.js';
import type { IpSet } from '../net/ip-set.js';
import { connectionTokens, isHopByHop } from './hop-by-hop.js';
import { parseGrpcTimeout } from './grpc/timeout.js';
import { transferCodingError } from './framing.js';
import { requestAuthority } from './host.js';
import { absoluteAuthority } from './path.js';

export interface InboundView {
  /** The client's address as this gateway trusts it. */
  clientIp: string;
  /** Headers for the upstream request, without Host and X-Request-Id (added by the proxy phase). */
  headers: string[];
  /** A valid `X-Request-Id` sent by the client, if any. */
  requestId: string | undefined;
  /** The Host header as sent (HTTP/2: `:authority`, else Host). */
  host: string | undefined;
  /**
   * The authority the request is for (host.ts `requestAuthority`): an
   * absolute-form target's, else Host / `:authority`. What the request is
   * routed by, and what goes upstream as Host under `preserveHost`.
   */
  authority: string | undefined;
  /** The authority's host, normalized for matching; '' for none. */
  hostname: string;
  /**
   * Why this request must be refused before anything else, or undefined:
   * an invalid Host/authority (400) or Transfer-Encoding (400/501). The
   * request's connection is closed after the answer (RFC 9112 §3.2, §6.3).
   */
  refusal: GatewayError | undefined;
  /** The request has a body: Content-Length > 0 or Transfer-Encoding (RFC 9112 §6.3). */
  hasBody: boolean;
  /** Content-Length, or -1. */
  contentLength: number;
  /** Set for a gRPC call (content-type application/grpc…): its `grpc-timeout` in ms, 0 when absent. */
  grpcTimeout: number | undefined;
  /** The `traceparent` value when exactly one was sent (two make it invalid, W3C Trace Context §3.2). */
  traceparent: string | undefined;
  /** Every `tracestate` field joined with `,` (RFC 9110 §5.3), if any. */
  tracestate: string | undefined;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,200}$/;

/**
 * One pass over the inbound raw headers that builds the upstream header
 * list: hop-by-hop headers (and those named in `Connection`) are dropped,
 * and `X-Forwarded-For`, `-Proto`, `-Host` and `X-Real-IP` are set. It reads
 * `rawHeaders` only, so Node never has to build `req.headers` for a plain
 * proxied request.
 *
 * When the direct peer is in `trustedProxies`, the client's
 * `X-Forwarded-For` is kept (the peer is appended) and the client IP is the
 * right-most address in that chain that is not itself a trusted proxy;
 * `X-Forwarded-Proto`/`-Host` sent by the peer are kept too. Otherwise every
 * client-sent forwarding header is discarded and the peer is the client.
 *
 * It also counts what node:http does not: every Host line (req.headers
 * keeps only the first), so that host.ts `requestAuthority` can settle the
 * request's authority (absolute-form target, Host, `:authority`), and every
 * Transfer-Encoding line (framing.ts). `X-Forwarded-Host` is that
 * authority, not the Host header an absolute-form target overrides.
 * `traceparent` and `tracestate` are read, not copied: the request's own
 * trace context replaces them (W3C Trace Context).
 */
export function readInbound(req: IncomingMessage, trusted: IpSet, tls: boolean, h2 = false): InboundView {
  const peer = peerAddress(req.socket.remoteAddress);
  const trustPeer = trusted.size > 0 && trusted.has(peer);
  const raw = req.rawHeaders;
  let out: string[] = [];
  let priorXff: string | undefined;
  let xfProto: string | undefined;
  let xfHost: string | undefined;
  let requestId: string | undefined;
  let host: string | undefined;
  let hostCount = 0;
  let pseudoAuthority: string | undefined;
  let te: string | undefined;
  let connection: string | undefined;
  let hasBody = false;
  let contentLength = -1;
  let grpc = false;
  let grpcTimeout = 0;
  let cookies: string | undefined;
  let traceparent: string | undefined;
  let traceparents = 0;
  let tracestate: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = name.toLowerCase();
    if (h2) {
      // HTTP/2 pseudo-headers (RFC 9113 §8.3.1) are not forwarded; :authority stands for Host.
      if (lower.charCodeAt(0) === 0x3a) {
        if (lower === ':authority') pseudoAuthority = value;
        continue;
      }
      // Split cookie fields are joined into one for HTTP/1.1 (RFC 9113 §8.2.3).
      if (lower === 'cookie') {
        cookies = cookies === undefined ? value : `${cookies}; ${value}`;
        continue;
      }
    }
    switch (lower) {
      case 'host':
        // node:http keeps only the first in req.headers; every line counts here (RFC 9112 §3.2).
        if (hostCount++ === 0) host = value;
        continue;
      case 'x-real-ip':
      case 'expect':
        // Expect: 100-continue is answered by this server (Node sends the 100); it is not forwarded.
        continue;
      case 'content-length':
        contentLength = Number(value);
        hasBody ||= contentLength > 0;
        break;
      case 'connection':
        connection = connection === undefined ? value : `${connection}, ${value}`;
        continue;
      case 'transfer-encoding':
        hasBody = true;
        te = te === undefined ? value : `${te}, ${value}`;
        continue;
      case 'x-forwarded-for':
        if (trustPeer) priorXff = priorXff === undefined ? value : `${priorXff}, ${value}`;
        continue;
      case 'x-forwarded-proto':
        if (trustPeer) xfProto = value;
        continue;
      case 'x-forwarded-host':
        if (trustPeer) xfHost = value;
        continue;
      case 'x-request-id':
        // Re-added by the proxy phase with the id this request is logged under.
        if (REQUEST_ID.test(value)) requestId ??= value;
        continue;
      case 'content-type':
        grpc = value.startsWith('application/grpc');
        break;
      case 'grpc-timeout':
        grpcTimeout = parseGrpcTimeout(value) ?? 0;
        break;
      case 'traceparent':
        // Replaced by the request's own (handler.ts createContext, observability/trace-context.ts).
        traceparent = value;
        traceparents++;
        continue;
      case 'tracestate':
        tracestate = tracestate === undefined ? value : `${tracestate},${value}`;
        continue;
      case 'te':
        // `TE: trailers` is end-to-end in practice (gRPC needs it); other TE values are hop-by-hop.
        if (value.trim().toLowerCase() === 'trailers') out.push(name, value);
        continue;
      default:
        if (isHopByHop(lower)) continue;
    }
    out.push(name, value);
  }
  if (cookies !== undefined) out.push('cookie', cookies);
  // An HTTP/2 request has a body unless its HEADERS frame ended the stream (RFC 9113 §8.1).
  if (h2) hasBody = !(req as unknown as { stream: { endAfterHeaders: boolean } }).stream.endAfterHeaders;
  // A message with both is malformed (RFC 9112 §6.3); Node's parser refuses it, this is a second guard.
  if (hasBody && contentLength >= 0 && req.headers['transfer-encoding'] !== undefined) {
    out = out.filter((_, i, a) => a[i - (i % 2)]!.toLowerCase() !== 'content-length');
    contentLength = -1;
  }
  const drop = connectionTokens(connection);
  // `Connection: TE` accompanies `TE: trailers` (RFC 9110 §10.1.4); that TE was kept on purpose above.
  drop?.delete('te');
  if (drop !== null && drop.size > 0) out = out.filter((_, i, a) => !drop.has(a[i - (i % 2)]!.toLowerCase()));
  const clientIp = priorXff !== undefined ? clientFromChain(priorXff, peer, trusted) : peer;
  out.push(
    'x-forwarded-for', priorXff !== undefined ? `${priorXff}, ${peer}` : peer,
    'x-forwarded-proto', xfProto ?? (tls ? 'https' : 'http'),
    'x-real-ip', clientIp,
  );
  const resolved = requestAuthority({
    host,
    hostCount,
    pseudo: pseudoAuthority,
    target: h2 || req.url === undefined ? undefined : absoluteAuthority(req.url),
    requireHost: !h2 && req.httpVersionMajor === 1 && req.httpVersionMinor >= 1,
    h2,
  });
  let refusal: GatewayError | undefined;
  let authority: string | undefined;
  let hostname = '';
  if (typeof resolved === 'string') refusal = new GatewayError('BAD_REQUEST', resolved);
  else ({ authority, hostname } = resolved);
  // llhttp reads any one-digit HTTP-version; this gateway speaks HTTP/1.0 and 1.1 on this parser (RFC 9110 §15.6.6).
  if (!h2 && req.httpVersionMajor !== 1) refusal = new GatewayError('HTTP_VERSION_NOT_SUPPORTED', `HTTP/${req.httpVersionMajor}.${req.httpVersionMinor} is not supported here`);
  if (te !== undefined && refusal === undefined) {
    // HTTP/2 frames bodies itself: the header is connection-specific there (RFC 9113 §8.2.2).
    if (h2) refusal = new GatewayError('BAD_REQUEST', 'Transfer-Encoding in an HTTP/2 request');
    // HTTP/1.0 has no transfer codings: its framing is faulty (RFC 9112 §6.1).
    else if (req.httpVersionMajor === 1 && req.httpVersionMinor === 0) refusal = new GatewayError('BAD_FRAMING', 'Transfer-Encoding in an HTTP/1.0 request');
    else refusal = transferCodingError(te) ?? undefined;
  }
  const forwardedHost = xfHost ?? authority;
  if (forwardedHost !== undefined) out.push('x-forwarded-host', forwardedHost);
  return {
    clientIp,
    headers: out,
    requestId,
    host: h2 ? (pseudoAuthority ?? host) : host,
    authority,
    hostname,
    refusal,
    hasBody,
    contentLength,
    grpcTimeout: grpc ? grpcTimeout : undefined,
    traceparent: traceparents === 1 ? traceparent : undefined,
    tracestate,
  };
}

/** Walks the chain from the right, skipping trusted proxies; the first untrusted hop is the client. */
function clientFromChain(chain: string, peer: string, trusted: IpSet): string {
  const hops = chain.split(',');
  let last = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = peerAddress(hops[i]!.trim());
    // A hop that is not an address cannot be the client; trust stops at the last good one.
    if (isIP(hop) === 0) return last;
    if (!trusted.has(hop)) return hop;
    last = hop;
  }
  return last;
}

/** `::ffff:1.2.3.4` → `1.2.3.4`; undefined (a destroyed socket) → ''. */
export function peerAddress(address: string | undefined): string {
  if (address === undefined) return '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
