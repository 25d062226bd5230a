import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Readable, pipeline } from 'node:stream';
import type { Dispatcher } from 'undici';
import { connectionTokens, isHopByHop } from '../../http/hop-by-hop.js';
import { GatewayError } from '../../errors.js';
import { answer } from './respond.js';
import type { AbsoluteTarget } from './target.js';

/** What the proxy adds to `Via` (RFC 9110 §7.6.3: received-protocol and a pseudonym). */
export const VIA = '1.1 portico';

/** How one forwarded request ended, for its access-log line. */
export interface ForwardResult {
  /** null: the response was relayed whole. DOWNSTREAM_ABORTED: the client left first. */
  error: GatewayError | null;
  status?: number;
  bytesUp: number;
  bytesDown: number;
  /** The log line's `error` text (the upstream client's error code), when there was one. */
  detail?: string;
}

/**
 * The header list for the upstream request: hop-by-hop headers and those
 * named in `Connection` removed (RFC 9110 §7.6.1, Proxy-Authorization and
 * Proxy-Connection among them), `Expect` removed (Node answered 100
 * Continue already), `Host` replaced by the request-target's authority
 * (RFC 9112 §3.2.2), the client's address appended to `X-Forwarded-For`
 * and the proxy to `Via`.
 */
export function upstreamRequestHeaders(raw: readonly string[], authority: string, clientIp: string): { headers: string[]; hasBody: boolean } {
  let headers: string[] = [];
  let connection: string[] | undefined;
  let xff: string | undefined;
  let via: string | undefined;
  let hasBody = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = name.toLowerCase();
    if (lower === 'connection') (connection ??= []).push(value);
    else if (lower === 'transfer-encoding') hasBody = true;
    else if (lower === 'content-length') {
      if (Number(value) > 0) hasBody = true;
      headers.push(name, value);
    } else if (lower === 'x-forwarded-for') xff = xff === undefined ? value : `${xff}, ${value}`;
    else if (lower === 'via') via = via === undefined ? value : `${via}, ${value}`;
    else if (lower !== 'host' && lower !== 'expect' && !isHopByHop(lower)) headers.push(name, value);
  }
  const drop = connectionTokens(connection);
  if (drop !== null) headers = headers.filter((_, i, a) => !drop.has(a[i - (i % 2)]!.toLowerCase()));
  headers.push('host', authority);
  headers.push('x-forwarded-for', xff === undefined ? clientIp : `${xff}, ${clientIp}`);
  headers.push('via', via === undefined ? VIA : `${via}, ${VIA}`);
  return { headers, hasBody };
}

/** The upstream's response headers for the client: hop-by-hop ones removed, the proxy added to `Via`. */
export function clientResponseHeaders(h: IncomingHttpHeaders): Record<string, string | string[]> {
  const drop = connectionTokens(h.connection);
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(h)) {
    if (value === undefined || isHopByHop(name) || drop?.has(name) === true) continue;
    out[name] = value;
  }
  const via = h.via;
  out.via = via === undefined ? VIA : `${Array.isArray(via) ? via.join(', ') : via}, ${VIA}`;
  return out;
}

const DIAL_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ETIMEDOUT', 'EACCES', 'EPERM']);

/**
 * undici's error, as the proxy's answer: a connect timeout, a response
 * head timeout, a failed connect; anything else the origin did is
 * UPSTREAM_RESET (answered UPSTREAM_ERROR).
 */
function upstreamError(err: Error & { code?: string }): GatewayError {
  const code = err.code ?? '';
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return new GatewayError('UPSTREAM_CONNECT_TIMEOUT', `no connection within the connect timeout`, { cause: err });
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return new GatewayError('UPSTREAM_RESPONSE_TIMEOUT', 'no response head within the response timeout', { cause: err });
  if (DIAL_ERRORS.has(code)) return new GatewayError('UPSTREAM_CONNECT_REFUSED', `connect: ${code}`, { cause: err });
  return new GatewayError('UPSTREAM_RESET', code !== '' ? `upstream: ${code}` : `upstream: ${err.message}`, { cause: err });
}

/**
 * Forwards one absolute-form request to `address` (the checked IP; the
 * dispatcher dials exactly that, no lookup) and streams the response back
 * with backpressure both ways. Failures before the response head are
 * answered (502 dial failure or bad upstream, 504 timeouts); after it, the
 * client connection is cut so a truncated body cannot look complete. A
 * client that goes away aborts the upstream request. `done` runs once.
 */
export function forward(
  dispatcher: Dispatcher,
  req: IncomingMessage,
  res: ServerResponse,
  target: AbsoluteTarget,
  address: string,
  clientIp: string,
  done: (r: ForwardResult) => void,
): void {
  const { headers, hasBody } = upstreamRequestHeaders(req.rawHeaders, target.destination.authority, clientIp);
  const abort = new AbortController();
  let bytesUp = 0;
  let bytesDown = 0;
  let finished = false;
  const finish = (r: Omit<ForwardResult, 'bytesUp' | 'bytesDown'>) => {
    if (finished) return;
    finished = true;
    res.off('close', onClientClose);
    done({ ...r, bytesUp, bytesDown });
  };
  const onClientClose = () => {
    if (res.writableFinished) return;
    abort.abort();
    finish({ error: new GatewayError('DOWNSTREAM_ABORTED', 'the client closed before the response was relayed') });
  };
  res.once('close', onClientClose);
  // Counts what the client sends through; backpressure is kept (the iterator reads only when undici asks).
  const body = hasBody
    ? Readable.from(
        (async function* () {
          for await (const chunk of req as AsyncIterable<Buffer>) {
            bytesUp += chunk.length;
            yield chunk;
          }
        })(),
        { objectMode: false },
      )
    : null;
  const host = address.includes(':') ? `[${address}]` : address;
  dispatcher
    .request({
      origin: `http://${host}:${target.destination.port}`,
      path: target.path,
      method: req.method as Dispatcher.HttpMethod,
      headers,
      body,
      signal: abort.signal,
    })
    .then(
      (up) => {
        if (finished) {
          up.body.destroy();
          return;
        }
        try {
          res.writeHead(up.statusCode, clientResponseHeaders(up.headers));
        } catch (err) {
          // A header Node refuses to send (invalid characters).
          up.body.destroy();
          answer(res, new GatewayError('UPSTREAM_PROTOCOL_ERROR', `invalid response header: ${(err as Error).message}`));
          finish({ error: new GatewayError('UPSTREAM_PROTOCOL_ERROR'), status: 502, detail: (err as Error).message });
          return;
        }
        up.body.on('data', (chunk: Buffer) => (bytesDown += chunk.length));
        pipeline(up.body, res, (err) => {
          if (err === undefined || err === null) return finish({ error: null, status: up.statusCode });
          finish({ error: new GatewayError('UPSTREAM_RESET', undefined, { cause: err }), status: up.statusCode, detail: (err as Error & { code?: string }).code ?? err.message });
        });
      },
      (err: Error & { code?: string }) => {
        if (finished) return;
        body?.destroy();
        const e = upstreamError(err);
        answer(res, e);
        finish({ error: e, status: e.status, detail: err.code ?? err.message });
      },
    );
}
