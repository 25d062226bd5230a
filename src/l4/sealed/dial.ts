import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type net from 'node:net';
import { formatHostPort } from '../../net/address.js';
import { GatewayError } from '../../errors.js';
import { connectTcp } from '../dial.js';
import type { SealedAllowList } from './allow.js';

export interface SealedDialOptions {
  allow: SealedAllowList;
  /** Dial attempts (≥ 1), spread over the allowed addresses in turn. */
  attempts: number;
  /** Timeout of one attempt, ms. */
  timeoutMs: number;
  /** Date.now() after which nothing more is tried: it bounds the whole phase, resolution included. */
  deadline: number;
  keepAliveMs: number;
  highWaterMark: number;
  /** Fires when the client went away: the dial stops (rejects with DOWNSTREAM_ABORTED). */
  signal: AbortSignal;
}

export interface SealedDialled {
  socket: net.Socket;
  /** The address dialled, `ip:port`. */
  target: string;
}

/**
 * Connects to an opened sealed address under the listener's `allow` list.
 * Every failure is a GatewayError (the listener maps it to its answer with
 * `sealedStatus`):
 *
 * 1. an empty list denies at once (no DNS query leaves for a denied name):
 *    DESTINATION_DENIED;
 * 2. a name is resolved (every address, dns.lookup as the system resolver
 *    sees it) within the deadline, else UPSTREAM_CONNECT_TIMEOUT; a failed
 *    lookup is UPSTREAM_CONNECT_REFUSED;
 * 3. only resolved addresses the list allows for the port are kept — none
 *    is DESTINATION_DENIED — and the attempts go to those IPs, never to
 *    the name again, so what was checked is what is dialled;
 * 4. up to `attempts` connects, each within `timeoutMs` or what is left of
 *    the deadline, while the failure is `retryable`. All of them timing
 *    out is UPSTREAM_CONNECT_TIMEOUT (504); any other failure among them
 *    makes it UPSTREAM_CONNECT_REFUSED (502).
 *
 * A cancelled dial rejects with DOWNSTREAM_ABORTED (nothing to answer).
 */
export async function dialSealed(host: string, port: number, o: SealedDialOptions): Promise<SealedDialled> {
  if (o.signal.aborted) throw new GatewayError('DOWNSTREAM_ABORTED', 'cancelled');
  if (o.allow.empty) throw new GatewayError('DESTINATION_DENIED', 'sealed address not allowed');
  const addresses = isIP(host) !== 0 ? [host] : await resolve(host, o.deadline, o.signal);
  const allowed = addresses.filter((ip) => o.allow.allows(ip, port));
  if (allowed.length === 0) throw new GatewayError('DESTINATION_DENIED', 'sealed address not allowed');
  let timedOut = 0;
  let last = '';
  for (let attempt = 0; attempt < o.attempts; attempt++) {
    const left = o.deadline - Date.now();
    if (left <= 0) {
      timedOut++;
      last = 'no time left for another attempt';
      continue;
    }
    const ip = allowed[attempt % allowed.length]!;
    try {
      const socket = await connectTcp(ip, port, { timeoutMs: Math.min(o.timeoutMs, left), keepAliveMs: o.keepAliveMs, highWaterMark: o.highWaterMark, signal: o.signal });
      return { socket, target: formatHostPort({ host: ip, port }) };
    } catch (err) {
      const e = err as GatewayError;
      if (!e.retryable) throw e;
      if (e.code === 'UPSTREAM_CONNECT_TIMEOUT') timedOut++;
      last = e.message;
    }
  }
  throw new GatewayError(timedOut === o.attempts ? 'UPSTREAM_CONNECT_TIMEOUT' : 'UPSTREAM_CONNECT_REFUSED', last);
}

/** Every address of `host`, or UPSTREAM_CONNECT_TIMEOUT past the deadline, UPSTREAM_CONNECT_REFUSED if it does not resolve. */
async function resolve(host: string, deadline: number, signal: AbortSignal): Promise<string[]> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  // dns.lookup cannot be cancelled: past the deadline its answer is ignored.
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new GatewayError('UPSTREAM_CONNECT_TIMEOUT', `${host}: not resolved in time`)), Math.max(0, deadline - Date.now()));
    onAbort = () => reject(new GatewayError('DOWNSTREAM_ABORTED', 'cancelled'));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  const lookedUp = lookup(host, { all: true }).then(
    (list) => list.map((a) => a.address),
    (err: Error & { code?: string }) => {
      throw new GatewayError('UPSTREAM_CONNECT_REFUSED', `${host}: lookup failed (${err.code ?? err.message})`);
    },
  );
  try {
    return await Promise.race([lookedUp, late]);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort!);
    lookedUp.catch(() => undefined);
    late.catch(() => undefined);
  }
}
