import { randomFillSync } from 'node:crypto';

/*
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): what one
 * request carries, the `traceparent` / `tracestate` parser, the formatter,
 * and the random ids. A leaf: it imports nothing of the gateway.
 */

/** `traceparent` (§3.2) parsed: version-format fields, lower-case hex. */
export interface Traceparent {
  version: string;
  traceId: string;
  parentId: string;
  /** trace-flags as a number (0..255); bit 0 is `sampled` (§3.2.2.5). */
  flags: number;
}

/** Every field is lower-case hex (HEXDIGLC, §3.2.2); the version is followed by the version-00 fields. */
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}/;
const ZERO_TRACE_ID = '00000000000000000000000000000000';
const ZERO_SPAN_ID = '0000000000000000';
/** A version-00 value's exact length (§3.2.2). */
const V00_LENGTH = 55;

/**
 * Parses a `traceparent` value (§3.2; processing model §4.3); undefined
 * when it is invalid, and then the trace restarts:
 * - version, trace-id, parent-id and trace-flags are lower-case hex of 2,
 *   32, 16 and 2 digits joined by `-`;
 * - version `ff` is invalid; version `00` is exactly 55 characters;
 *   a later version may be longer only when character 55 is `-` (its
 *   extra fields are ignored: the value is read as version 00);
 * - an all-zero trace-id or parent-id is invalid.
 * Leading and trailing whitespace (HTTP's OWS) is ignored. Never throws.
 */
export function parseTraceparent(value: string): Traceparent | undefined {
  const v = value.length === V00_LENGTH ? value : value.trim();
  if (v.length < V00_LENGTH || !TRACEPARENT.test(v)) return undefined;
  const version = v.slice(0, 2);
  if (version === 'ff') return undefined;
  if (v.length !== V00_LENGTH && (version === '00' || v.charCodeAt(V00_LENGTH) !== 0x2d /* - */)) return undefined;
  const traceId = v.slice(3, 35);
  const parentId = v.slice(36, 52);
  if (traceId === ZERO_TRACE_ID || parentId === ZERO_SPAN_ID) return undefined;
  return { version, traceId, parentId, flags: parseInt(v.slice(53, 55), 16) };
}

/** The version-00 `traceparent` for a span (§3.2): only the sampled flag is set or not (§3.2.2.5). */
export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}${sampled ? '-01' : '-00'}`;
}

/** At most this many list-members (§3.3.1.1), and this many characters in all: else the header is dropped. */
export const TRACESTATE_MAX_MEMBERS = 32;
export const TRACESTATE_MAX_LENGTH = 512;

/**
 * One list-member (§3.3.1.3), its surrounding whitespace removed:
 * key = simple-key / multi-tenant-key
 *   simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-" / "*" / "/" )
 *   multi-tenant-key = tenant-id "@" system-id
 *     tenant-id = ( lcalpha / DIGIT ) 0*240( lcalpha / DIGIT / "_" / "-" / "*" / "/" )
 *     system-id = lcalpha 0*13( lcalpha / DIGIT / "_" / "-" / "*" / "/" )
 * value = 0*255(chr) nblk-chr, chr = %x20 / nblk-chr, nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
 */
const MEMBER =
  /^(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/**
 * The `tracestate` to pass on (§3.3), or undefined when it must be
 * dropped: more than 32 list-members, more than 512 characters, a member
 * that is not `key=value` as above, or a key listed twice (§3.3.1.2).
 * Several `tracestate` fields are joined with `,` before this (RFC 9110
 * §5.3). Empty members (`a=1,,b=2`, OWS around members) are allowed and
 * not counted; a value with no member at all is dropped. The value is
 * passed on as received, trimmed. Never throws.
 */
export function validTracestate(value: string): string | undefined {
  const v = value.trim();
  if (v.length === 0 || v.length > TRACESTATE_MAX_LENGTH) return undefined;
  let members = 0;
  let keys: string[] | null = null;
  let from = 0;
  while (from <= v.length) {
    let to = v.indexOf(',', from);
    if (to < 0) to = v.length;
    const member = v.slice(from, to).trim();
    from = to + 1;
    if (member.length === 0) continue;
    if (++members > TRACESTATE_MAX_MEMBERS || !MEMBER.test(member)) return undefined;
    const key = member.slice(0, member.indexOf('='));
    if (keys === null) keys = [key];
    else if (keys.includes(key)) return undefined;
    else keys.push(key);
  }
  return members > 0 ? v : undefined;
}

/*
 * Random ids: bytes from a pooled buffer refilled by randomFillSync, hex
 * encoded once per refill; an id is a slice of that hex text (no per-id
 * call into crypto, no per-byte work).
 */
const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let hex = '';
let at = 0;

function randomHex(chars: number, zero: string): string {
  for (;;) {
    if (at + chars > hex.length) {
      randomFillSync(pool);
      hex = pool.toString('hex');
      at = 0;
    }
    const id = hex.slice(at, at + chars);
    at += chars;
    // All zeros is invalid (§3.2.2.3, §3.2.2.4): drawn with probability 2^-64 at most, drawn again.
    if (id !== zero) return id;
  }
}

/** A random, non-zero trace-id: 32 lower-case hex digits. */
export function newTraceId(): string {
  return randomHex(32, ZERO_TRACE_ID);
}

/** A random, non-zero span id (parent-id): 16 lower-case hex digits. */
export function newSpanId(): string {
  return randomHex(16, ZERO_SPAN_ID);
}

/**
 * One request's place in its trace: the trace id (the incoming one, or a
 * new one), Portico's own span id (sent upstream as parent-id), the
 * incoming parent-id ('' when the trace starts here), the sampled
 * decision and the `tracestate` passed on.
 */
export class TraceContext {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentId: string;
  readonly sampled: boolean;
  readonly tracestate: string | undefined;

  constructor(traceId: string, spanId: string, parentId: string, sampled: boolean, tracestate: string | undefined) {
    this.traceId = traceId;
    this.spanId = spanId;
    this.parentId = parentId;
    this.sampled = sampled;
    this.tracestate = tracestate;
  }

  /** The `traceparent` the upstream receives. */
  get traceparent(): string {
    return formatTraceparent(this.traceId, this.spanId, this.sampled);
  }
}

/**
 * The trace context of a request (processing model, §4.3):
 * - a valid `traceparent` (exactly one field: two make it invalid) is
 *   continued: same trace id, its parent-id as this span's parent, its
 *   sampled flag followed whatever `sample` is, its `tracestate` passed on
 *   when valid;
 * - otherwise a new trace starts (new trace id, no parent, no
 *   `tracestate`), sampled with probability `sample` (0..1).
 * The span id is always new.
 */
export function beginTrace(traceparent: string | undefined, tracestate: string | undefined, sample: number): TraceContext {
  const parent = traceparent === undefined ? undefined : parseTraceparent(traceparent);
  if (parent === undefined) return new TraceContext(newTraceId(), newSpanId(), '', sample > 0 && Math.random() < sample, undefined);
  const state = tracestate === undefined ? undefined : validTracestate(tracestate);
  return new TraceContext(parent.traceId, newSpanId(), parent.parentId, (parent.flags & 1) === 1, state);
}
