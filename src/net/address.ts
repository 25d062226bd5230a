import { isIP } from 'node:net';

export interface HostPort {
  host: string;
  port: number;
}

/** A host name or IPv4 literal: letters, digits, `.`, `-`, `_` (no brackets, spaces, `%` or `/`). */
const NAME = /^[A-Za-z0-9._-]+$/;

/**
 * Parses `host:port` or `[ipv6]:port`. The host is returned without
 * brackets: inside brackets only an IPv6 literal (RFC 3986 §3.2.2),
 * otherwise a name or IPv4 literal of letters, digits, `.`, `-` and `_`.
 * Returns undefined for anything else, or a port outside 0-65535. What it
 * returns, written back by formatHostPort, parses to the same host and port.
 */
export function parseHostPort(value: string): HostPort | undefined {
  let host: string;
  let portText: string;
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    if (end < 0 || value[end + 1] !== ':') return undefined;
    host = value.slice(1, end);
    portText = value.slice(end + 2);
    if (isIP(host) !== 6) return undefined;
  } else {
    const i = value.lastIndexOf(':');
    if (i <= 0 || value.indexOf(':') !== i) return undefined;
    host = value.slice(0, i);
    portText = value.slice(i + 1);
    if (!NAME.test(host)) return undefined;
  }
  if (!/^\d{1,5}$/.test(portText) || host === '') return undefined;
  const port = Number(portText);
  return port <= 65535 ? { host, port } : undefined;
}

/** `host:port` with IPv6 hosts bracketed, as used in URLs and logs. */
export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
