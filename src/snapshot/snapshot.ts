import type { IncomingMessage, ServerResponse } from 'node:http';
import type tls from 'node:tls';
import type { Config, HttpListenerConfig, L4ListenerConfig, RouteConfig } from '../config/schema.js';
import type { Consumer, ConsumerRegistry } from '../consumers/consumer.js';
import type { GatewayError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { DirectResponse } from '../http/direct-response.js';
import type { Router } from '../http/router.js';
import type { Admission } from '../l4/admission.js';
import type { IpSet } from '../net/ip-set.js';
import type { StateStore } from '../state/store.js';
import type { Target } from '../upstream/target.js';
import type { Upstream } from '../upstream/upstream.js';
import type { JwksCache } from '../runtime/jwks-cache.js';
import { OutboundRequest } from '../http/exchange/outbound.js';
import type { TraceContext } from '../observability/trace-context.js';
import type { UpstreamPolicies } from '../http/exchange/policies.js';

/*
 * The runtime vocabulary: a Snapshot and what it is made of (listener
 * runtimes → routers of route runtimes → middleware chains), and the
 * RequestContext that carries one request through one listener and route of
 * one snapshot. These types name each other, so they live in one module;
 * every implementation (http/, l4/, middlewares/, observability/,
 * snapshot/compile.ts, the gateway) imports them from here, downward. This
 * module imports only leaves: config types, net/, errors, the upstream's
 * Upstream and Target, the consumer registry, the router and L4 admission.
 * Observability is seen through the narrow interfaces it implements
 * (AccessLogWriter, RequestRecorder, RequestTracer), never by its classes;
 * the one exception is the TraceContext value type, from a leaf module.
 *
 * Read top-down: Snapshot → listener runtimes → route runtime → middleware
 * and chain → RequestContext → what observability implements.
 */

/**
 * The compiled, immutable form of one config document. The running gateway
 * holds one snapshot at a time and swaps it whole; a request keeps the
 * snapshot it started with.
 */
export interface Snapshot {
  readonly version: number;
  readonly config: Config;
  readonly listeners: ReadonlyMap<string, AnyListenerRuntime>;
  readonly upstreams: ReadonlyMap<string, Upstream>;
  readonly consumers: ConsumerRegistry;
  /** Access-log destinations this snapshot uses (kept open across a swap). */
  readonly accessLogs: ReadonlySet<string>;
}

/** A listener's TLS settings as compiled (certificates read from their files at compile time). */
export interface ListenerTls {
  /** Options for the node:tls server template: SNICallback, client-certificate settings, versions. */
  serverOptions(): tls.TlsOptions;
  /** Each certificate's names, expiry and default flag (admin status). */
  describe(): { names: string[]; validTo: string; default: boolean }[];
}

/** An HTTP listener (`http`, `https`) as compiled into a snapshot: its router and per-listener settings. */
export interface ListenerRuntime {
  readonly kind: 'http';
  readonly name: string;
  readonly config: HttpListenerConfig;
  readonly router: Router<RouteRuntime>;
  readonly trustedProxies: IpSet;
  readonly accessLog: AccessLogWriter | null;
  readonly stats: RequestRecorder;
  /** Where finished requests' spans go (observability/tracing.ts); absent: no span, new traces unsampled. */
  readonly tracer?: RequestTracer | null;
  /** The listener terminates TLS (X-Forwarded-Proto: https). */
  readonly tls: boolean;
  /** Certificates and client-certificate settings; null for a cleartext listener. */
  readonly certificates: ListenerTls | null;
  /**
   * Hosts tunnel agents claimed on this listener (a tunnel listener's
   * `http.listener` names it), asked only when no configured route
   * matches; null (or absent) when no tunnel listener points here.
   */
  readonly claims?: ClaimedHosts | null;
}

/** HTTP hosts claimed at run time (tunnel agents' `hosts`): live, shared by every snapshot. */
export interface ClaimedHosts {
  /** The route serving `host` (normalized as RequestContext.host), if some live claim holds it. */
  match(host: string): RouteRuntime | undefined;
}

/** Any compiled listener: HTTP, or connection-level (L4ListenerRuntime, below). */
export type AnyListenerRuntime = ListenerRuntime | L4ListenerRuntime;

/**
 * A connection-level listener (`tcp`, `tls`, `udp`, `sealed`,
 * `forward-proxy`) as compiled into a snapshot. Live state (open
 * connections, UDP sessions, key caches) belongs to the listener's
 * listener, which outlives snapshots; this holds what a reload replaces.
 */
export interface L4ListenerRuntime<C extends L4ListenerConfig = L4ListenerConfig> {
  readonly kind: 'l4';
  readonly name: string;
  readonly config: C;
  /** One line per connection (or UDP session); null when off. */
  readonly accessLog: AccessLogWriter | null;
  /** Peers whose PROXY protocol header is believed; null = any peer. */
  readonly trustedProxies: IpSet | null;
  /** The connection middlewares (ip-restriction, rate-limit), checked on the client address. */
  readonly admission: Admission;
  /** Certificates of a `tls` listener that terminates TLS; null otherwise. */
  readonly certificates: ListenerTls | null;
  readonly state: StateStore;
  /**
   * The upstreams and consumers of the snapshot this runtime was compiled
   * into. A connection reads them from the runtime it was accepted with,
   * never from "the current snapshot": a reload in the middle of its
   * accept, dial or splice cannot hand it another snapshot's upstream (and
   * a listener bound for a snapshot not yet swapped in sees its own).
   */
  readonly upstreams: ReadonlyMap<string, Upstream>;
  readonly consumers: ConsumerRegistry;
}

/** A compiled route: what the router returns for a matching request. */
export interface RouteRuntime {
  readonly name: string;
  readonly config: RouteConfig;
  readonly chain: MiddlewareChain;
  /** Send the inbound Host upstream (true) or the target's address (false). */
  readonly preserveHost: boolean;
  /** Exactly one of `upstream`, `respond` and `endpoint` is set. */
  readonly upstream: Upstream | undefined;
  /** Circuit breaker, retries and passive health for `upstream`, composed at compile time; null when none applies (http/exchange/policies.ts). */
  readonly policies: UpstreamPolicies | null;
  readonly respond: DirectResponse | undefined;
  /** A handler that answers the request itself (e.g. the token endpoint); it writes the response. */
  readonly endpoint: ((ctx: RequestContext) => void | Promise<void>) | undefined;
}

/**
 * One policy on a route, built once when a snapshot is compiled.
 *
 * - `onRequest` runs in config order before a target is picked. It may edit
 *   `ctx.upstreamPath` and `ctx.upstreamHeaders`; it stops the request by
 *   throwing (or rejecting with) a GatewayError, and may return a promise to
 *   continue later (e.g. after a Redis round trip). Returning undefined keeps
 *   the whole chain synchronous, with no promise allocated.
 * - `onResponse` runs in reverse order (onion model) when the upstream
 *   response head arrives, before it is written downstream. It must be
 *   synchronous.
 */
export interface Middleware {
  readonly name: string;
  onRequest?(ctx: RequestContext): void | Promise<void>;
  onResponse?(ctx: RequestContext, head: ResponseHead): void;
}

/** What a middleware factory may use when a snapshot is compiled. */
export interface MiddlewareCompileContext {
  readonly route: RouteConfig;
  readonly state: StateStore;
  readonly consumers: ConsumerRegistry;
  readonly logger: Logger;
  /** Remote JWKS key sets kept across reloads (a middleware compiled without one fetches its own). */
  readonly jwks?: JwksCache;
}

/** Builds one middleware instance from its validated options (see config/schemas/middlewares.ts). */
export type MiddlewareFactory = (options: never, ctx: MiddlewareCompileContext) => Middleware;

/** A request hook of a middleware chain. */
type RequestHook = (ctx: RequestContext) => void | Promise<void>;
type ResponseHook = (ctx: RequestContext, head: ResponseHead) => void;

/**
 * A route's middlewares, composed once at compile time into two hook arrays
 * (`null` when empty, so the hot path skips them, as fastify does).
 */
export class MiddlewareChain {
  readonly names: readonly string[];
  private readonly requestHooks: RequestHook[] | null;
  private readonly responseHooks: ResponseHook[] | null;

  constructor(middlewares: readonly Middleware[]) {
    this.names = middlewares.map((m) => m.name);
    const req = middlewares.filter((m) => m.onRequest).map((m) => m.onRequest!.bind(m));
    const res = middlewares.filter((m) => m.onResponse).map((m) => m.onResponse!.bind(m)).reverse();
    this.requestHooks = req.length > 0 ? req : null;
    this.responseHooks = res.length > 0 ? res : null;
  }

  /** Runs the request hooks; returns a promise only if a hook did. Throws what a hook throws. */
  runRequest(ctx: RequestContext): void | Promise<void> {
    const hooks = this.requestHooks;
    if (hooks === null) return;
    return runFrom(hooks, 0, ctx);
  }

  runResponse(ctx: RequestContext, head: ResponseHead): void {
    const hooks = this.responseHooks;
    if (hooks === null) return;
    for (let i = 0; i < hooks.length; i++) hooks[i]!(ctx, head);
  }
}

function runFrom(hooks: RequestHook[], start: number, ctx: RequestContext): void | Promise<void> {
  for (let i = start; i < hooks.length; i++) {
    const r = hooks[i]!(ctx);
    if (r !== undefined) return r.then(() => runFrom(hooks, i + 1, ctx));
  }
}

/**
 * One request's state, created when the request arrives and passed through
 * the phases of http/exchange/phases.ts: match → requestFilter → pickTarget →
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
  /** The request arrived over HTTP/2 (`req`/`res` are http/h2/'s H2Request and H2Response). */
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
  /** Targets picked for this request (pickTarget, http/exchange/phases.ts): 0 when none was tried; above 1 after a retry or connect failover. */
  tries = 0;

  /** The request that goes upstream (http/exchange/outbound.ts): the inbound method, no header, no body until createContext (handler.ts) fills it. */
  readonly out: OutboundRequest;
  /** The log phase ran (it runs exactly once, http/exchange/phases.ts). */
  logged = false;
  /**
   * The request's W3C trace context (observability/trace-context.ts): set
   * by createContext (handler.ts), which also puts its `traceparent` on
   * the outbound request; null only for a context made without it.
   */
  trace: TraceContext | null = null;

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

/** Where a listener's lines go: observability/access-log.ts's AccessLog implements it. */
export interface AccessLogWriter {
  /** One line for a finished HTTP request (or WebSocket session). */
  write(ctx: RequestContext): void;
  /** One line for a finished connection or UDP session. */
  writeConnection(fields: ConnectionLogFields): void;
}

/** Where a listener's finished requests are counted: observability/stats.ts's Stats implements it. */
export interface RequestRecorder {
  record(ctx: RequestContext): void;
}

/** Where a listener's finished requests become spans: observability/tracing.ts's Tracer implements it. */
export interface RequestTracer {
  /** The share (0..1) of new traces that are sampled. */
  readonly sample: number;
  /** Called by the log phase for every request: exports its span when it is sampled and an exporter is set. */
  record(ctx: RequestContext): void;
}

/** What a connection line says (see AccessLog.writeConnection); protocol-specific extras are allowed. */
export interface ConnectionLogFields {
  listener: string;
  protocol: string;
  client: string;
  clientPort?: number;
  /** `ok`, a refusal reason, or an error code such as DIAL_FAILED. */
  outcome: string;
  upstream?: string;
  target?: string;
  bytesUp?: number;
  bytesDown?: number;
  durationMs: number;
  closedBy?: string;
  error?: string;
  [extra: string]: string | number | boolean | undefined;
}
