import { isIPv4, isIPv6 } from 'node:net';

/** Where a proxied request or tunnel goes, as the client named it. */
export interface Destination {
  /** Lower-case host name without a trailing dot, or an IP address (IPv6 without brackets). */
  host: string;
  /** True when `host` is an IP literal (host-name rules never match it). */
  isIp: boolean;
  port: number;
  /** `host[:port]` as written in the request-target (userinfo excluded): the Host header sent upstream. */
  authority: string;
}

/** An absolute-form request-target, split. */
export interface AbsoluteTarget {
  destination: Destination;
  /** Path and query for the origin-form request sent upstream ("/" when the target had none). */
  path: string;
}

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * A host name usable for DNS: dot-separated labels of letters, digits,
 * `-` and `_` (1-63 characters each, 253 in all; RFC 1035 §2.3.4). The last
 * label must not be all digits: getaddrinfo would read such a name
 * (`2130706433`, `0x7f.1`) as an IPv4 address in inet_aton's forms and slip
 * past the host-name rules.
 */
function hostName(text: string): string | undefined {
  let name = text.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0 || name.length > 253) return undefined;
  const labels = name.split('.');
  if (!labels.every((l) => LABEL.test(l))) return undefined;
  if (/^(\d+|0x[0-9a-f]*)$/.test(labels[labels.length - 1]!)) return undefined;
  return name;
}

/**
 * Parses `host[:port]` (RFC 3986 §3.2.2-3.2.3): a bracketed IPv6
 * literal, a dotted-quad IPv4 address or a host name. An absent or empty
 * port means `defaultPort`; with no default the port is required
 * (CONNECT's authority-form, RFC 9110 §9.3.6). Userinfo, zone ids and
 * percent-encoding are refused.
 */
export function parseAuthority(text: string, defaultPort?: number): Destination | undefined {
  if (text.length === 0 || text.length > 300) return undefined;
  let hostText: string;
  let portText: string | undefined;
  let bracketed = false;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0) return undefined;
    hostText = text.slice(1, end);
    const rest = text.slice(end + 1);
    if (rest !== '' && !rest.startsWith(':')) return undefined;
    portText = rest === '' ? undefined : rest.slice(1);
    bracketed = true;
  } else {
    const colon = text.lastIndexOf(':');
    hostText = colon < 0 ? text : text.slice(0, colon);
    portText = colon < 0 ? undefined : text.slice(colon + 1);
  }
  let port: number;
  if (portText === undefined || portText === '') {
    if (defaultPort === undefined) return undefined;
    port = defaultPort;
  } else {
    if (!/^\d{1,5}$/.test(portText)) return undefined;
    port = Number(portText);
    if (port < 1 || port > 65535) return undefined;
  }
  if (bracketed) {
    // node:net accepts a zone id (fe80::1%eth0): it names an interface of this host and is refused.
    if (hostText.includes('%') || !isIPv6(hostText)) return undefined;
    return { host: hostText.toLowerCase(), isIp: true, port, authority: text };
  }
  if (isIPv4(hostText)) return { host: hostText, isIp: true, port, authority: text };
  const name = hostName(hostText);
  return name === undefined ? undefined : { host: name, isIp: false, port, authority: text };
}

/**
 * Parses an absolute-form request-target (RFC 9112 §3.2.2) with the
 * `http` scheme: `http://authority[/path][?query]`. Other schemes, a
 * missing host, userinfo and fragments are refused (undefined).
 */
export function parseAbsoluteForm(target: string): AbsoluteTarget | undefined {
  const m = /^http:\/\/([^/?#]*)([^#]*)$/i.exec(target);
  if (m === null) return undefined;
  const authority = m[1]!;
  if (authority.includes('@')) return undefined;
  const destination = parseAuthority(authority, 80);
  if (destination === undefined) return undefined;
  const rest = m[2]!;
  const path = rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest;
  return { destination, path };
}
