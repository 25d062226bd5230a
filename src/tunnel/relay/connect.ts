import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { parseHostPort, type HostPort } from '../../net/address.js';
import { RELAY_ALPN } from '../protocol.js';
import { formatRelayRequest, RelayStatusReader } from './handshake.js';

/** TLS settings of a relay peer (client or service). */
export interface RelayTlsOptions {
  /** CA the relay's certificate must chain to: PEM (a Buffer, or a string containing "-----BEGIN"), or the path of a PEM file. Absent: the system's CAs. */
  ca?: string | Buffer;
  /** The name the relay's certificate is checked against (and sent as SNI); default: the relay's host. */
  servername?: string;
  /** Do not verify the relay's certificate (tests only). */
  insecureSkipVerify?: boolean;
}

export interface ConnectByCodeOptions extends RelayTlsOptions {
  /** A `clients[]` token of the relay. */
  token: string;
  /** From dialling to the status line; default 10 s. */
  timeoutMs?: number;
  /**
   * Keep the socket writable after the service ended its side (a splice
   * that passes each direction's FIN on its own needs it). Default false:
   * the service's end ends the socket, as net.connect does.
   */
  allowHalfOpen?: boolean;
}

/** A relay refused the connection (`status`: 400, 401, 404, 503…), or answered something that is not a status line (`status` 0). */
export class RelayRefusedError extends Error {
  readonly code = 'RELAY_REFUSED';
  constructor(
    readonly status: number,
    readonly reason: string,
  ) {
    super(status === 0 ? `relay: ${reason}` : `relay answered ${status} ${reason}`);
    this.name = 'RelayRefusedError';
  }
}

/** `host:port` or `{ host, port }` as a HostPort; throws a RangeError for anything else. */
export function relayAddress(relay: string | HostPort): HostPort {
  if (typeof relay !== 'string') return relay;
  const a = parseHostPort(relay);
  if (a === undefined || a.port === 0) throw new RangeError(`invalid relay address ${JSON.stringify(relay)}: expected HOST:PORT`);
  return a;
}

/** node:tls options to reach a relay at `address` with `alpn` (no SNI for an IP: RFC 6066 §3). */
export function relayTlsOptions(address: HostPort, o: RelayTlsOptions, alpn: string): tls.ConnectionOptions {
  const name = o.servername ?? address.host;
  return {
    host: address.host,
    port: address.port,
    ALPNProtocols: [alpn],
    servername: isIP(name) === 0 ? name : undefined,
    ...(o.servername !== undefined ? { checkServerIdentity: (_h: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(o.servername!, cert) } : {}),
    ca: o.ca === undefined ? undefined : pemOf(o.ca),
    rejectUnauthorized: o.insecureSkipVerify !== true,
    noDelay: true,
  } as tls.ConnectionOptions;
}

/** PEM content: a Buffer or a string with a PEM block as is, else the file it names. */
export function pemOf(ca: string | Buffer): string | Buffer {
  return typeof ca === 'string' && !ca.includes('-----BEGIN') ? readFileSync(ca) : ca;
}

/**
 * Connects to the service registered at `relay` under `code` (docs/relay.md):
 * TLS with ALPN `portico-relay/1`, the request line, the status line. Resolves
 * with the TLS socket once the relay answered `200 ok` (bytes the service sent
 * right after it are put back, so the first read sees them; the socket is
 * half-open capable: `end()` sends a FIN and the service's data keeps
 * flowing). Rejects with a RelayRefusedError for any other answer, a
 * RangeError for an invalid code, token or address (nothing is sent), or the
 * network's error; the socket is destroyed then.
 */
export function connectByCode(relay: string | HostPort, code: string, options: ConnectByCodeOptions): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    let line: string;
    let socket: tls.TLSSocket;
    try {
      line = formatRelayRequest(code, options.token);
      // node:tls passes allowHalfOpen to the TLSSocket (lib/_tls_wrap.js), though its types do not list it.
      socket = tls.connect({ ...relayTlsOptions(relayAddress(relay), options, RELAY_ALPN), allowHalfOpen: options.allowHalfOpen === true } as tls.ConnectionOptions);
    } catch (err) {
      reject(err as Error);
      return;
    }
    const reader = new RelayStatusReader();
    let done = false;
    const timeoutMs = options.timeoutMs ?? 10_000;
    const fail = (err: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new RelayRefusedError(0, `no answer within ${timeoutMs} ms`)), timeoutMs);
    // Read with 'readable' + read(), not 'data': removing the last 'readable' listener puts the socket back in its
    // initial mode, so the caller's first 'data' listener or pipe() starts the flow (an explicit pause() would not).
    const onReadable = () => {
      let chunk: Buffer | null;
      while (!done && (chunk = socket.read() as Buffer | null) !== null) {
        const r = reader.push(chunk);
        if (!r.done) continue;
        if ('error' in r) return fail(new RelayRefusedError(0, r.error === 'too long' ? 'the status line is too long' : 'not a relay status line'));
        if (r.status !== 200) return fail(new RelayRefusedError(r.status, r.reason));
        done = true;
        clearTimeout(timer);
        socket.off('readable', onReadable);
        socket.off('error', fail);
        socket.off('end', onEnd);
        socket.off('close', onEnd);
        // A reset after this point destroys the socket ('close' tells); it must not crash a caller that has not listened yet.
        socket.on('error', ignore);
        if (r.rest.length > 0) socket.unshift(r.rest);
        // Resolved on the next turn: node:tls drops records it already received when end() is called while it is
        // still handing them out (measured on Node 20), and a caller may end() as soon as it has the socket.
        setImmediate(resolve, socket);
      }
    };
    const onEnd = () => fail(new RelayRefusedError(0, 'the relay closed the connection before answering'));
    socket.once('secureConnect', () => socket.write(line));
    socket.on('readable', onReadable);
    socket.once('error', fail);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  });
}

function ignore(): void {}
