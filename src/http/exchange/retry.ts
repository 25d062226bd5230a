import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { type GatewayError, isConnectFailure } from '../../errors.js';
import { wasNotSent } from '../../upstream/h2-pool.js';
import type { RetryPolicy } from '../../upstream/retry.js';

/**
 * Retry = pick again while the error is retryable. Two rules decide
 * whether a failed try is sent again (exchange.ts asks them in this order):
 *
 * 1. `retries:` (the route's, else the upstream's): an error whose
 *    `GatewayError.retryable` is set (refused, reset, connect or response
 *    timeout) and whose class the policy lists in `on`, or a response
 *    status it lists, on a method it allows, within its budget, with a
 *    replayable body.
 * 2. Connect failover (retry.ts CONNECT_FAILOVERS), with or without
 *    `retries:`: a connect failure before the request was written reached
 *    nothing, so it goes to a target not tried yet whatever its method.
 */

/** Rule 1 for an error: retryable by nature, and of a class the policy retries. */
export function retriesError(policy: RetryPolicy, e: GatewayError): boolean {
  return e.retryable && policy.retriesError(e.code);
}

/**
 * Rule 2's precondition: a connect failure (errors.ts isConnectFailure)
 * before the request was written. The HTTP/1.1 clients (upstream/h1/ and
 * undici) call onConnect only once the request is on a connected socket (`connected` false until
 * then); the HTTP/2 pool marks the requests a failed session connect fails
 * (h2-pool.ts wasNotSent).
 */
export function notSent(e: GatewayError, err: Error, connected: boolean): boolean {
  return isConnectFailure(e) && (!connected || wasNotSent(err));
}

/** A request body can be sent again: none, in memory, or a stream nothing was read from yet. */
export function replayable(body: Buffer | Readable | IncomingMessage | null): boolean {
  return body === null || Buffer.isBuffer(body) || !body.readableDidRead;
}

/** A retried response body up to this size is read and dropped, keeping the connection; a larger or unsized one closes it. */
export const DRAIN_LIMIT = 64 * 1024;

/** The Content-Length of a raw response head, or -1 when absent or invalid. */
export function contentLength(raw: Buffer[]): number {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 14 && raw[i]!.toString('latin1').toLowerCase() === 'content-length') {
      const v = raw[i + 1]!.toString('latin1').trim();
      return /^\d+$/.test(v) ? Number(v) : -1;
    }
  }
  return -1;
}

/**
 * Reads a request body for replay: the whole body as one Buffer when it
 * ends within `limit` bytes; otherwise a stream of what was read followed
 * by the rest (sent once, not replayable). Rejects if the client goes away.
 */
export async function readReplayable(req: IncomingMessage, limit: number): Promise<Buffer | Readable> {
  const it = req[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const r = await it.next();
    if (r.done) return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
    chunks.push(r.value);
    size += r.value.length;
    if (size > limit) return Readable.from(rest(chunks, it), { objectMode: false });
  }
}

async function* rest(read: Buffer[], it: AsyncIterator<Buffer>): AsyncIterable<Buffer> {
  yield* read;
  for (;;) {
    const r = await it.next();
    if (r.done) return;
    yield r.value;
  }
}
