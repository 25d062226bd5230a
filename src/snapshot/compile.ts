import { isHttpListener, type Config } from '../config/schema.js';
import { IpSet } from '../net/ip-set.js';
import { Router } from '../http/router.js';
import { compileDirectResponse } from '../http/direct-response.js';
import { compileAdmission } from '../l4/admission.js';
import { headers } from '../middlewares/headers.js';
import { MiddlewareChain, type AnyListenerRuntime, type ClaimedHosts, type Middleware, type RequestRecorder, type RequestTracer, type RouteRuntime, type Snapshot } from './snapshot.js';
import { rewrite } from '../middlewares/rewrite.js';
import type { AccessLogRegistry } from '../observability/access-log.js';
import type { TargetRegistry } from '../runtime/target-registry.js';
import type { JwksCache } from '../runtime/jwks-cache.js';
import { Upstream } from '../upstream/upstream.js';
import type { Logger } from 'pino';
import type { StateStore } from '../state/store.js';
import { ConsumerRegistry } from '../consumers/consumer.js';
import { AUTH_MIDDLEWARES, MIDDLEWARE_FACTORIES } from '../middlewares/registry.js';
import { consumerQuota } from '../middlewares/consumer-quota.js';
import { createTokenEndpoint } from '../consumers/token-endpoint.js';
import { ServerCertificates } from '../tls/certificates.js';
import { grpcMetadata } from '../http/grpc/metadata.js';
import { compilePolicies } from '../http/exchange/policies.js';

export interface CompileDeps {
  /** Live upstream and target state (kept across snapshots; configured when this one becomes current). */
  targets: TargetRegistry;
  jwks: JwksCache;
  accessLogs: AccessLogRegistry;
  state: StateStore;
  logger: Logger;
  /** Where the log phase records each HTTP request (the statistics and the metrics). */
  stats: RequestRecorder;
  /** The gateway's tracer (observability/tracing.ts); absent: requests are still traced, nothing is exported. */
  tracer?: RequestTracer;
  /** Hosts tunnel agents claim, by HTTP listener (the gateway's; absent: no claim is ever served). */
  claims?: { forListener(name: string): ClaimedHosts };
}

/** Builds routers, middleware chains and upstream pools once. `config` must be validated. */
export function compile(config: Config, version: number, deps: CompileDeps): Snapshot {
  const upstreams = new Map<string, Upstream>();
  config.upstreams.forEach((u, i) => {
    const upstream = new Upstream(u, deps.targets, `upstreams[${i}]`);
    if (upstream.insecureTls) {
      deps.logger.warn({ upstream: u.name }, 'upstreams[].tls.insecureSkipVerify is on: the targets\' certificates are NOT verified (anyone on the path can impersonate them)');
    }
    upstreams.set(u.name, upstream);
  });

  const consumers = new ConsumerRegistry(config.consumers);
  const routesByListener = new Map<string, { config: Config['routes'][number]; value: RouteRuntime }[]>();
  for (const r of config.routes) {
    // Policies first (auth, limits), then the changes to what goes upstream.
    const mwCtx = { route: r, state: deps.state, consumers, logger: deps.logger, jwks: deps.jwks };
    const middlewares: Middleware[] = r.middlewares.map(({ name, options }) => {
      const factory = MIDDLEWARE_FACTORIES[name];
      if (!factory) throw new Error(`routes ${r.name}: middleware ${name} has no implementation`);
      return factory(options as never, mwCtx);
    });
    // Consumer quotas (qps, qpd) right after the last auth middleware, once a consumer is known.
    const lastAuth = r.middlewares.findLastIndex((m) => AUTH_MIDDLEWARES.has(m.name));
    if (lastAuth >= 0) middlewares.splice(lastAuth + 1, 0, consumerQuota(mwCtx));
    if (r.stripPrefix || r.rewrite.length > 0) {
      middlewares.push(rewrite({ stripPrefix: r.stripPrefix ? r.match.pathPrefix : undefined, rules: r.rewrite }));
    }
    const headerRules = headers(r.requestHeaders, r.responseHeaders);
    if (headerRules) middlewares.push(headerRules);
    const metadataRules = grpcMetadata(r.grpcMetadata);
    if (metadataRules) middlewares.push(metadataRules);
    const upstream = r.upstream === undefined ? undefined : upstreams.get(r.upstream);
    const runtime: RouteRuntime = {
      name: r.name,
      config: r,
      chain: new MiddlewareChain(middlewares),
      preserveHost: r.preserveHost,
      upstream,
      policies: compilePolicies(upstream, r),
      respond: r.respond === undefined ? undefined : compileDirectResponse(r.respond),
      endpoint: r['token-endpoint'] === undefined ? undefined : createTokenEndpoint(r['token-endpoint'], consumers),
    };
    const list = routesByListener.get(r.listener) ?? [];
    list.push({ config: r, value: runtime });
    routesByListener.set(r.listener, list);
  }

  const listeners = new Map<string, AnyListenerRuntime>();
  const accessLogs = new Set<string>();
  config.listeners.forEach((l, i) => {
    const accessLog = deps.accessLogs.forListener(l.accessLog);
    if (accessLog !== null) accessLogs.add(accessLog.dest);
    let tls = 'tls' in l ? l.tls : undefined;
    // Agents and relay peers often dial an IP (no SNI, RFC 6066 §3): their listeners serve the first certificate then, unless one is the default.
    if (tls !== undefined && (l.protocol === 'tunnel' || l.protocol === 'relay') && !tls.certificates.some((c) => c.default)) {
      tls = { ...tls, certificates: tls.certificates.map((c, j) => (j === 0 ? { ...c, default: true } : c)) };
    }
    // Read from their files on every compile, so a reload picks up renewed certificates.
    const certificates = tls === undefined ? null : new ServerCertificates(tls, `listeners[${i}].tls`);
    if (isHttpListener(l)) {
      listeners.set(l.name, {
        kind: 'http',
        name: l.name,
        config: l,
        router: new Router(routesByListener.get(l.name) ?? []),
        trustedProxies: new IpSet(l.trustedProxies),
        accessLog,
        stats: deps.stats,
        tracer: deps.tracer ?? null,
        tls: tls !== undefined,
        certificates,
        claims: deps.claims !== undefined && config.listeners.some((t) => t.protocol === 'tunnel' && t.http?.listener === l.name) ? deps.claims.forListener(l.name) : null,
      });
      return;
    }
    const trusted = 'trustedProxies' in l && l.trustedProxies.length > 0 ? new IpSet(l.trustedProxies) : null;
    listeners.set(l.name, {
      kind: 'l4',
      name: l.name,
      config: l,
      accessLog,
      trustedProxies: trusted,
      admission: compileAdmission(l.name, 'middlewares' in l ? l.middlewares : [], deps.state),
      certificates,
      state: deps.state,
      upstreams,
      consumers,
    });
  });
  return { version, config, listeners, upstreams, consumers, accessLogs };
}
