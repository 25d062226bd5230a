import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Target } from '../../upstream/target.js';

/**
 * The request that goes upstream, its own object beside the inbound one
 * (Go's `httputil.ProxyRequest{In, Out}`): the inbound request is never
 * mutated; the request middlewares edit this one (through
 * `ctx.upstreamPath` and `ctx.upstreamHeaders`), the pickTarget phase sets
 * its target and Host, and a retry or failover only calls `setTarget`
 * again.
 *
 * Its fields are also the undici dispatch options of each try (`path`,
 * `method`, `headers`, `body`, `servername`, `headersTimeout`, `upgrade`),
 * so a try allocates no options object. undici reads them when a try is
 * dispatched and ignores the other fields; none of them is named like an
 * option undici would read differently (no `query`, no `origin`).
 */
export class OutboundRequest {
  readonly method: Dispatcher.HttpMethod;
  /** The path without its query; the request middlewares may rewrite it (`ctx.upstreamPath`). */
  pathname: string;
  /** The query with its leading `?`, or '' (`ctx.query`: the inbound one, as the request middlewares leave it). */
  search: string;
  /** What undici sends: `pathname + search`, set by the first `setTarget`. */
  path = '';
  /**
   * Header list as flat `[name, value, …]`. Until the first `setTarget` the middlewares
   * may edit or replace it; that call appends Host and X-Request-Id last.
   */
  headers: string[];
  /** The body: none, the inbound stream, or a replayable copy (exchange/retry.ts). */
  body: IncomingMessage | Buffer | Readable | null;
  /** The Host value sent (the inbound authority under `preserveHost`, else the target's address); '' until a target is set. */
  host = '';
  /** The target of the current try; undefined until pickTarget. */
  target: Target | undefined = undefined;
  /** TLS server name for an https target (the upstream's `serverNameFor`). */
  servername: string | undefined = undefined;
  /** A try's response-head timeout when it differs from the pool's (exchange/policies.ts); undefined: the pool's. */
  headersTimeout: number | undefined = undefined;
  /** `websocket` for a WebSocket handshake (undici sends `Connection: upgrade`), else undefined. */
  upgrade: string | undefined = undefined;
  /** Index of the Host value in `headers` once sealed; -1 before. */
  private hostAt = -1;

  constructor(method: string, pathname: string, search: string, headers: string[], body: IncomingMessage | null) {
    this.method = method as Dispatcher.HttpMethod;
    this.pathname = pathname;
    this.search = search;
    this.headers = headers;
    this.body = body;
  }

  /**
   * Points the request at `target` with Host `host`, and servername
   * `servername`. The first call seals the request: the path is fixed and
   * Host and X-Request-Id are appended to the headers the middlewares
   * left; later calls (retry, failover) only change the Host value.
   */
  setTarget(target: Target, host: string, requestId: string, servername: string | undefined): void {
    this.target = target;
    this.host = host;
    this.servername = servername;
    if (this.hostAt < 0) {
      this.path = this.pathname + this.search;
      this.hostAt = this.headers.length + 1;
      this.headers.push('host', host, 'x-request-id', requestId);
    } else {
      this.headers[this.hostAt] = host;
    }
  }

  /** Sets the value of the first header named `lowerName` (its length first, for speed); false when absent. */
  replaceHeader(lowerName: string, value: string): boolean {
    const h = this.headers;
    const n = lowerName.length;
    for (let i = 0; i < h.length; i += 2) {
      if (h[i]!.length === n && h[i]!.toLowerCase() === lowerName) {
        h[i + 1] = value;
        return true;
      }
    }
    return false;
  }
}
