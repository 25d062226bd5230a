import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Readable, pipeline } from 'node:stream';
import type { Dispatcher } from 'undici';
import { connectionTokens, isHopByHop } from '../../http/hop-by-hop.js';
import { answer, ProxyError, type ProxyErrorCode } from './respond.js';
import type { AbsoluteTarget } from './target.js';

/** What the proxy adds to `Via` (RFC 9110 §7.6.3: received-protocol and a pseudonym). */
export const VIA = '1.1 portico';

/** How one forwarded request ended, for its access-log line. */
export interface ForwardResult {
  outcome: 'ok' | ProxyErrorCode | 'CLIENT_CLOSED';
  status?: number;
  bytesUp: number;
  bytesDown: number;
  error?: string;
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

/** undici's error, as the proxy's answer. */
function upstreamError(err: Error & { code?: string }): ProxyError {
  const code = err.code ?? '';
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return new ProxyError('DIAL_TIMEOUT', `no connection within the connect timeout`);
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return new ProxyError('RESPONSE_TIMEOUT', 'no response head within the response timeout');
  if (DIAL_ERRORS.has(code)) return new ProxyError('DIAL_FAILED', `connect: ${code}`);
  return new ProxyError('UPSTREAM_ERROR', code !== '' ? `upstream: ${code}` : `upstream: ${err.message}`);
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
    finish({ outcome: 'CLIENT_CLOSED' });
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
          answer(res, new ProxyError('UPSTREAM_ERROR', `invalid response header: ${(err as Error).message}`));
          finish({ outcome: 'UPSTREAM_ERROR', status: 502, error: (err as Error).message });
          return;
        }
        up.body.on('data', (chunk: Buffer) => (bytesDown += chunk.length));
        pipeline(up.body, res, (err) => {
          if (err === undefined || err === null) return finish({ outcome: 'ok', status: up.statusCode });
          finish({ outcome: 'UPSTREAM_ERROR', status: up.statusCode, error: (err as Error & { code?: string }).code ?? err.message });
        });
      },
      (err: Error & { code?: string }) => {
        if (finished) return;
        body?.destroy();
        const e = upstreamError(err);
        answer(res, e);
        finish({ outcome: e.code, status: e.status, error: err.code ?? err.message });
      },
    );
}
