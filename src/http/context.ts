import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GatewayError } from '../errors.js';
import type { Target } from '../upstream/target.js';
import type { Upstream } from '../upstream/upstream.js';
import type { ListenerRuntime } from '../listeners/listener-runtime.js';
import type { RouteRuntime } from './route.js';
import type { Consumer } from '../consumers/consumer.js';
import { OutboundRequest } from './exchange/outbound.js';

/**
 * One request's state, created when the request arrives and passed through
 * the phases of exchange/phases.ts: match → requestFilter → pickTarget →
 * upstreamRequest → responseFilter → log. The inbound request (`req`) is
 * never mutated; what goes upstream is its own object, `out`.
 */
export class RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly listener: ListenerRuntime;
  readonly requestId: string;
  /** process.hrtime.bigint() when the request arrived. */
  readonly startedAt: bigint;
  /** The trusted client address (see forwarded.ts). */
  clientIp: string;
  /** Normalized host used for matching (no port, lower-case). */
  host: string;
  /** Inbound path after dot-segment removal, without the query. */
  path: string;
  /**
   * The authority the request is for, as sent (forwarded.ts): an
   * absolute-form target's, else Host / `:authority`; what goes upstream as
   * Host under `preserveHost`. Undefined when the request names none.
   */
  hostHeader: string | undefined;
  /** Whether the inbound request has a body (RFC 9112 §6.3). */
  hasBody = false;
  /** The inbound Content-Length, or -1 when absent. */
  contentLength = -1;
  /** The request arrived over HTTP/2 (`res` is node:http2's compatibility response, see listeners/http.ts). */
  readonly h2: boolean;
  /** A gRPC call (`content-type: application/grpc…`): gateway errors are sent as gRPC statuses in trailers. */
  grpc = false;
  /** The call's deadline from `grpc-timeout`, in ms from arrival; 0 = none. */
  grpcTimeout = 0;
  /** The gRPC status the client got (from the upstream's trailers, or a gateway error); -1 while unknown. */
  grpcStatus = -1;

  route: RouteRuntime | undefined = undefined;
  /** The consumer an auth middleware identified, if any. */
  consumer: Consumer | undefined = undefined;
  upstream: Upstream | undefined = undefined;
  target: Target | undefined = undefined;

  /** The request that goes upstream (exchange/outbound.ts): the inbound method, no header, no body until createContext (handler.ts) fills it. */
  readonly out: OutboundRequest;
  /** The log phase ran (it runs exactly once, exchange/phases.ts). */
  logged = false;

  /**
   * The query, with its leading `?`, or '': the inbound one, as the
   * middlewares leave it (key-auth takes its parameter out); what goes
   * upstream and what the access log shows.
   */
  get query(): string {
    return this.out.search;
  }
  set query(query: string) {
    this.out.search = query;
  }
  /** Path (without query) to send upstream; middlewares may rewrite it. */
  get upstreamPath(): string {
    return this.out.pathname;
  }
  set upstreamPath(path: string) {
    this.out.pathname = path;
  }
  /** Headers to send upstream as a flat `[name, value, …]` list; middlewares may edit or replace it. */
  get upstreamHeaders(): string[] {
    return this.out.headers;
  }
  set upstreamHeaders(headers: string[]) {
    this.out.headers = headers;
  }

  /** Status sent downstream (0 until the head is written). */
  status = 0;
  /** Response body bytes written downstream. */
  bytesSent = 0;
  /**
   * Status of the last upstream response head received (a retried try's
   * too; 1xx excluded), 0 when none arrived. It differs from `status` when
   * a response middleware changed it or the gateway answered an error after
   * it (e.g. a retried 503, then a failed try).
   */
  upstreamStatus = 0;
  /**
   * hrtime when the upstream request was dispatched (the first try's, with
   * retries) / when the response head that went downstream arrived.
   */
  upstreamStartedAt = 0n;
  upstreamHeadersAt = 0n;
  error: GatewayError | undefined = undefined;

  constructor(req: IncomingMessage, res: ServerResponse, listener: ListenerRuntime, requestId: string, clientIp: string, h2 = false) {
    this.h2 = h2;
    this.req = req;
    this.res = res;
    this.listener = listener;
    this.requestId = requestId;
    this.out = new OutboundRequest(req.method ?? 'GET', '', '', [], null);
    this.startedAt = process.hrtime.bigint();
    this.clientIp = clientIp;
    this.host = '';
    this.path = '';
    this.hostHeader = undefined;
  }

  /** The downstream response can no longer be written (the client left, or it was aborted). */
  get closed(): boolean {
    // node:http2's compatibility response has no `destroyed`; its stream has.
    return this.h2 ? (this.res as unknown as { stream: { destroyed: boolean } }).stream.destroyed : this.res.destroyed;
  }
}

/**
 * What response middlewares see and may change before the head goes
 * downstream: the status and the headers as a flat `[name, value, …]` list
 * (names in the upstream's case; compare them case-insensitively).
 */
export interface ResponseHead {
  status: number;
  headers: string[];
}
