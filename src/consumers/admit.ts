import type { RequestContext } from '../snapshot/snapshot.js';
import { GatewayError } from '../errors.js';
import type { Consumer } from './consumer.js';

/** The upstream header that names the authenticated consumer (a client-sent one is replaced). */
export const CONSUMER_HEADER = 'x-consumer-id';

/**
 * What every auth middleware does once credentials named a consumer: record
 * it on the context, then apply the consumer's own restrictions: its
 * `routes` list (403 when this route is not in it) and its `ipAllow` list
 * (403 when the client address is not in it). On success the upstream
 * request carries `X-Consumer-Id`.
 */
export function admit(ctx: RequestContext, consumer: Consumer): void {
  ctx.consumer = consumer;
  const route = ctx.route;
  if (consumer.routes !== null && (route === undefined || !consumer.routes.has(route.name))) {
    throw new GatewayError('FORBIDDEN', `consumer "${consumer.id}" is not allowed on this route`);
  }
  if (consumer.ipAllow !== null && !consumer.ipAllow.has(ctx.clientIp)) {
    throw new GatewayError('FORBIDDEN', `consumer "${consumer.id}" is not allowed from this address`);
  }
  ctx.upstreamHeaders = withoutHeader(ctx.upstreamHeaders, CONSUMER_HEADER);
  ctx.upstreamHeaders.push(CONSUMER_HEADER, consumer.id);
}

/** The values of inbound header `lower` (a lower-case name), read from rawHeaders without building req.headers. */
export function headerValues(raw: readonly string[], lower: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === lower.length && name.toLowerCase() === lower) out.push(raw[i + 1]!);
  }
  return out;
}

/** A flat `[name, value, …]` list without header `lower` (a lower-case name); the same array when absent. */
export function withoutHeader(list: string[], lower: string): string[] {
  let found = false;
  for (let i = 0; i < list.length; i += 2) {
    if (list[i]!.length === lower.length && list[i]!.toLowerCase() === lower) {
      found = true;
      break;
    }
  }
  if (!found) return list;
  const out: string[] = [];
  for (let i = 0; i < list.length; i += 2) {
    if (list[i]!.length === lower.length && list[i]!.toLowerCase() === lower) continue;
    out.push(list[i]!, list[i + 1]!);
  }
  return out;
}

/** Splits `Authorization: <scheme> <credentials>`; the scheme is compared case-insensitively (RFC 9110 §11.1). */
export function authorizationCredentials(value: string, scheme: string): string | undefined {
  if (value.length <= scheme.length + 1) return undefined;
  if (value.slice(0, scheme.length).toLowerCase() !== scheme.toLowerCase()) return undefined;
  if (value.charCodeAt(scheme.length) !== 32 /* space */) return undefined;
  const creds = value.slice(scheme.length + 1).trim();
  return creds === '' ? undefined : creds;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Decodes `Basic base64(id:secret)` credentials (RFC 7617) into id and
 * secret, or undefined when malformed. The decoded text must be valid UTF-8
 * without control characters.
 */
export function decodeBasic(credentials: string): { id: string; secret: string } | undefined {
  if (credentials.length > 4096 || credentials.length % 4 !== 0 || !BASE64.test(credentials)) return undefined;
  const bytes = Buffer.from(credentials, 'base64');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(text)) return undefined;
  const colon = text.indexOf(':');
  if (colon <= 0) return undefined;
  return { id: text.slice(0, colon), secret: text.slice(colon + 1) };
}
