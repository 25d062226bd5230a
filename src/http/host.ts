import { isIPv6 } from 'node:net';

/**
 * Normalizes a Host header or :authority for matching: lower-case, port and
 * IPv6 brackets removed, one trailing dot removed. Returns '' for a missing host.
 * It does not validate: request authorities go through `parseAuthority`;
 * this is for hosts written in the configuration.
 */
export function normalizeHost(value: string | undefined): string {
  if (!value) return '';
  let host = value;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const end = host.indexOf(']');
    host = end > 0 ? host.slice(1, end) : host.slice(1);
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0) host = host.slice(0, colon);
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host.toLowerCase();
}

/** An authority as a request names it. */
export interface Authority {
  /** The host for matching: lower-case, an IPv6 address without brackets, one trailing dot removed. */
  hostname: string;
  /** The port, or -1 when the authority has none. */
  port: number;
}

/**
 * Parses an authority the way a Host header, an HTTP/2 `:authority` or
 * an absolute-form request target carries it: `host [":" port]`
 * (RFC 9110 §7.2, RFC 3986 §3.2.2–3.2.3). Returns undefined for anything
 * else, the empty string included.
 *
 * - host: a bracketed IPv6 address (no zone id, no IPvFuture), or a name
 *   of letters, digits, `-`, `.`, `_`, `~` with no empty label (one
 *   trailing dot is allowed and dropped). This is stricter than RFC 3986's
 *   reg-name on purpose: percent-encoding and sub-delims (`,` `;` `!` `$`
 *   `&` `'` `(` `)` `*` `+` `=`) are part of no DNS name, and would let
 *   one host be spelt two ways (a route denying `internal.test` must not
 *   miss `internal%2Etest`) or a list pass for one host (`a, b`). An IPv4
 *   address is such a name.
 * - port: 1 to 5 digits, at most 65535.
 * - never userinfo (`user@host`: RFC 9110 §4.2.4, RFC 9113 §8.3.1), a
 *   path, spaces or control characters.
 */
export function parseAuthority(value: string): Authority | undefined {
  const end = hostEnd(value);
  if (end <= 0) return undefined;
  let port = -1;
  if (end < value.length) {
    port = parsePort(value, end + 1);
    if (port < 0) return undefined;
  }
  return { hostname: hostnameOf(value, end), port };
}

/** The hostname of a valid authority (see parseAuthority), or undefined; allocates only the string. */
export function authorityHostname(value: string): string | undefined {
  const end = hostEnd(value);
  if (end <= 0) return undefined;
  if (end < value.length && parsePort(value, end + 1) < 0) return undefined;
  return hostnameOf(value, end);
}

/** Whether two authorities name the same host and port (RFC 9113 §8.3.1: Host vs :authority). */
export function sameAuthority(a: Authority, b: Authority): boolean {
  return a.hostname === b.hostname && a.port === b.port;
}

/** 1 for the characters of a host name: ALPHA DIGIT - . _ ~ */
const NAME = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  NAME[c] = /[A-Za-z0-9._~-]/.test(ch) ? 1 : 0;
}

/**
 * Where the host part of `value` ends (the index of the port's `:`, or
 * the length); -1 when the host is not valid or what follows it is not
 * `:` (the port is checked by the caller).
 */
function hostEnd(value: string): number {
  const n = value.length;
  if (n === 0) return -1;
  if (value.charCodeAt(0) === 91 /* [ */) {
    const close = value.indexOf(']');
    if (close < 0) return -1;
    const address = value.slice(1, close);
    // node:net accepts a zone id (`%eth0`); a URI carries none (RFC 9110 §4.2.3 follows RFC 3986, without RFC 6874).
    if (address.includes('%') || !isIPv6(address)) return -1;
    const after = close + 1;
    if (after < n && value.charCodeAt(after) !== 58 /* : */) return -1;
    return after;
  }
  let prev = 46; // as if after a '.', so a leading dot is an empty label
  let i = 0;
  for (; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c === 58 /* : */) break;
    if (c >= 128 || NAME[c] === 0) return -1;
    if (c === 46 && prev === 46) return -1;
    prev = c;
  }
  // '.' alone (or ':80') has no host.
  if (i === 0 || (i === 1 && prev === 46)) return -1;
  return i;
}

/** The port written from `start` to the end of `value`, or -1 when it is not 1–5 digits up to 65535. */
function parsePort(value: string, start: number): number {
  const n = value.length;
  if (n === start || n - start > 5) return -1;
  let port = 0;
  for (let i = start; i < n; i++) {
    const d = value.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    port = port * 10 + d;
  }
  return port <= 65535 ? port : -1;
}

function hostnameOf(value: string, end: number): string {
  if (value.charCodeAt(0) === 91) return value.slice(1, end - 1).toLowerCase();
  const host = value.charCodeAt(end - 1) === 46 ? value.slice(0, end - 1) : end === value.length ? value : value.slice(0, end);
  return host.toLowerCase();
}

/** What a request head says about its authority (gathered by forwarded.ts in its one pass). */
export interface AuthorityFields {
  /** The first Host field line's value. */
  host: string | undefined;
  /** How many Host field lines there were. */
  hostCount: number;
  /** HTTP/2: the `:authority` pseudo-header. */
  pseudo: string | undefined;
  /** HTTP/1.x: the authority of an absolute-form request target (path.ts `absoluteAuthority`), '' when it is empty. */
  target: string | undefined;
  /** HTTP/1.1 (or a later 1.x): a Host header is required. */
  requireHost: boolean;
  /** The request came over HTTP/2. */
  h2: boolean;
}

/** The authority a request is for, and the hostname it is routed by ('' for none). */
export interface RequestAuthority {
  authority: string | undefined;
  hostname: string;
}

/**
 * The authority a request is for, or why its head is invalid (the caller
 * answers 400 and, on HTTP/1.x, closes the connection).
 *
 * HTTP/1.x (RFC 9112 §3.2, §3.2.2):
 * - more than one Host line, a Host that is not a valid authority
 *   (parseAuthority; a comma-separated list is not one), or no Host on
 *   HTTP/1.1 → invalid. An empty Host is valid (a target URI without an
 *   authority) and routes as no host.
 * - absolute-form: the target's authority replaces Host, which must still
 *   be present and valid; an empty or invalid target authority is invalid
 *   (RFC 9110 §4.2.1: an http(s) URI needs a host).
 *
 * HTTP/2 (RFC 9113 §8.3.1): `:authority`, else the Host header; neither →
 * invalid. With both, they must name the same host and port. More than
 * one Host line, or an invalid value → invalid.
 */
export function requestAuthority(f: AuthorityFields): RequestAuthority | string {
  if (f.hostCount > 1) return 'more than one Host header';
  let hostname: string | undefined;
  if (f.host !== undefined && f.host !== '') {
    hostname = authorityHostname(f.host);
    if (hostname === undefined) return 'invalid Host header';
  }
  if (f.h2) {
    if (f.pseudo === undefined) {
      if (f.host === undefined) return 'missing :authority and Host';
      if (hostname === undefined) return 'invalid Host header';
      return { authority: f.host, hostname };
    }
    const pseudo = parseAuthority(f.pseudo);
    if (pseudo === undefined) return 'invalid :authority';
    if (f.host !== undefined) {
      const host = parseAuthority(f.host);
      if (host === undefined || !sameAuthority(host, pseudo)) return 'Host and :authority differ';
    }
    return { authority: f.pseudo, hostname: pseudo.hostname };
  }
  if (f.hostCount === 0 && f.requireHost) return 'missing Host header';
  if (f.target !== undefined) {
    const target = authorityHostname(f.target);
    if (target === undefined) return 'invalid authority in the request target';
    return { authority: f.target, hostname: target };
  }
  return { authority: f.host, hostname: hostname ?? '' };
}
