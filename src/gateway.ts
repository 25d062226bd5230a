import { DiscoveredTargets } from './discovery/discovered-targets.js';
import { createDiscoveryBackend } from './discovery/create.js';
import type http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { createAdminServer, type AdminOptions } from './admin/server.js';
import type { ConfigAccess } from './admin/config-api.js';
import type { ConfigSource } from './sources/config-source.js';
import { limitsReport } from './admin/limits.js';
import { compile } from './snapshot/compile.js';
import { type Snapshot } from './snapshot/snapshot.js';
import { formatHostPort, type HostPort } from './net/address.js';
import type { Config } from './config/schema.js';
import dgram from 'node:dgram';
import { getSystemErrorMap } from 'node:util';
import { HttpListener } from './listeners/http.js';
import type { AnyListenerRuntime } from './snapshot/snapshot.js';
import { listenerKind, type Binding, type Listener, type StreamListener } from './listeners/listener.js';
import { createDatagramListener, createStreamListener } from './listeners/create.js';
import { AccessLogRegistry } from './observability/access-log.js';
import type { Logger } from './observability/logger.js';
import { TargetRegistry } from './runtime/target-registry.js';
import { tcpConnectorFor } from './runtime/target-state.js';
import { TunnelHub } from './tunnel/hub.js';
import { HostClaims } from './tunnel/host-claims.js';
import { JwksCache } from './runtime/jwks-cache.js';
import type { UpstreamPlan } from './runtime/upstream-state.js';
import { Stats, type Dimension } from './observability/stats.js';
import { Metrics } from './observability/metrics.js';
import { Tracer } from './observability/tracing.js';
import { Recorders } from './observability/recorders.js';
import { createStateStore, type StateStore } from './state/index.js';
import { bindOptions, listenerBindOptions, servesAdmin, type BindOptions } from './process/port-sharing.js';
import { workerIdentity } from './process/worker.js';
import { ConnectionRegistry } from './runtime/connection-registry.js';
import { describeAgent, hasAgentSessions, type AgentInfo } from './admin/agents.js';
import type { TunnelSession } from './tunnel/session.js';

interface Bound extends Binding {
  /** The configured transport and address (`udp:` for datagram listeners; port possibly 0): bindings are kept across reloads by this key. */
  readonly key: string;
  /** The bound socket: a TCP server handing each connection to `listener`, or a UDP socket the listener reads. */
  readonly server: net.Server | dgram.Socket;
  /** Replaced when a reload changes the listener's kind (e.g. http to tcp) at the same address. */
  listener: Listener;
}

export type ApplyResult = { ok: true; version: number } | { ok: false; error: string };

/**
 * The running gateway: the current snapshot, the sockets bound for it, and
 * what snapshots share (connection pools, access-log files).
 *
 * `apply` builds new, then swaps: it compiles the config and binds any new
 * addresses first; only if all of that succeeds is the snapshot swapped in.
 * Listeners whose address did not change keep their sockets; requests in
 * flight finish on the snapshot they started with.
 */
export class Gateway {
  private snapshot: Snapshot | undefined;
  private readonly bindings = new Map<string, Bound>();
  private admin: { key: string; server: http.Server } | undefined;
  /** Live upstream and target state: pools, counters, health, breakers, retry budgets (kept across reloads). */
  readonly targets = new TargetRegistry();
  /** Remote JWKS key sets, kept across reloads. */
  private readonly jwks = new JwksCache();
  private readonly accessLogs = new AccessLogRegistry((dest, err) => this.logger.error({ dest, error: err.message }, 'access log file error'));
  /** The state store and the `state:` config it was built from (kept across reloads while that is unchanged). */
  private state: { key: string; store: StateStore } | undefined;
  /** Request statistics, kept across reloads (see observability/stats.ts). */
  readonly stats = new Stats(() => this.state?.store);
  /** Prometheus metrics of this process (GET /metrics), kept across reloads. */
  readonly metrics = new Metrics({
    upstreams: () => this.snapshot?.upstreams.values() ?? [],
    connections: () => this.connectionRegistry,
    tunnelCodes: () => this.tunnels.codesRegistered().length,
    configSource: () => this.source?.health(),
  });
  /** What the log phase records each HTTP request in: the statistics and the metrics. */
  private readonly recorder = new Recorders(this.stats, this.metrics.http);
  /** W3C trace propagation settings and the OTLP exporter (`tracing:`), kept across reloads. */
  readonly tracer: Tracer;
  /** Every live connection, stream and session of every listener, kept across reloads (GET/DELETE /connections). */
  readonly connectionRegistry = new ConnectionRegistry(workerIdentity()?.index ?? 0);
  /** Service codes registered by tunnel agents and relay services: `{ tunnel: CODE }` targets and relay clients find them here. */
  readonly tunnels = new TunnelHub();
  /** HTTP hosts claimed by tunnel agents, by HTTP listener (live, kept across reloads; see tunnel/host-claims.ts). */
  private readonly hostClaims: HostClaims;
  private version = 0;
  private stopping = false;
  /** A graceful stop began: /ready answers 503 from then on (the listeners may still accept while draining). */
  private leaving: 'draining' | 'stopping' | undefined;
  /** Ends the drain period early (endDrain), while one runs. */
  private drained: (() => void) | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  readonly logger: Logger;
  /**
   * What the process running this gateway adds to, or replaces in, the admin
   * API (set before the first apply): the config source's endpoints, and with
   * `workers: N` views that span every worker.
   */
  adminHooks: Partial<AdminOptions> = {};
  /** Where the config comes from (attachSource): the admin API reads and writes the config through it. */
  private source: ConfigSource | undefined;
  /** With `workers: N`: makes every other worker load the stored document after an admin API write (see ConfigAccess.afterWrite). */
  afterConfigWrite: (() => Promise<string | undefined>) | undefined;

  constructor(logger: Logger) {
    this.logger = logger;
    this.tracer = new Tracer(logger);
    // Tunnel registrations are targets: their identities dial through the agent's connection.
    this.targets.connectorFor = (identity) => (TunnelHub.isTunnelIdentity(identity) ? this.tunnels.connector(identity) : tcpConnectorFor(identity));
    this.targets.tunnelSource = (code) => this.tunnels.source(code);
    this.targets.discoverySource = (upstream, config) => {
      const source = new DiscoveredTargets(upstream, createDiscoveryBackend(config, this.logger), config.emptyGrace, this.logger);
      source.start();
      return source;
    };
    this.hostClaims = new HostClaims(this.targets, logger);
    this.tunnels.hosts = this.hostClaims;
  }

  /**
   * Serves `source`: each document it delivers is applied here, and the
   * admin API reads and changes the config through it (writes refused with
   * `admin.writeBack: false`).
   */
  attachSource(source: ConfigSource): void {
    this.source = source;
    source.subscribe((doc) => this.apply(doc.config));
  }

  /** The admin API's access to the config source, or undefined when there is none. */
  private configAccess(): ConfigAccess | undefined {
    const source = this.source;
    if (source === undefined) return undefined;
    return {
      source,
      readOnly: () => (this.snapshot?.config.admin?.writeBack === false ? 'admin.writeBack is false: change the config file and reload instead' : undefined),
      ...(this.afterConfigWrite !== undefined ? { afterWrite: this.afterConfigWrite } : {}),
    };
  }

  get current(): Snapshot {
    if (!this.snapshot) throw new Error('gateway has no snapshot yet');
    return this.snapshot;
  }

  /**
   * Applies a validated config. Calls are serialized. Never rejects: any
   * failure comes back as `{ ok: false }` with the running snapshot kept.
   */
  apply(config: Config): Promise<ApplyResult> {
    const run = this.queue
      .then(() => this.applyNow(config))
      .catch((err: unknown): ApplyResult => ({ ok: false, error: `apply failed: ${(err as Error).message}` }))
      .then((result) => {
        this.metrics.reloaded(result.ok);
        return result;
      });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async applyNow(config: Config): Promise<ApplyResult> {
    if (this.stopping) return { ok: false, error: 'gateway is stopping' };
    let next: Snapshot;
    const stateKey = JSON.stringify(config.state);
    let state = this.state?.key === stateKey ? this.state : undefined;
    try {
      state ??= { key: stateKey, store: createStateStore(config.state, this.logger) };
      next = compile(config, this.version + 1, { targets: this.targets, jwks: this.jwks, accessLogs: this.accessLogs, state: state.store, logger: this.logger, stats: this.recorder, tracer: this.tracer, claims: this.hostClaims });
    } catch (err) {
      if (state && state !== this.state) void state.store.close();
      this.releaseUnused();
      return { ok: false, error: `compile failed: ${(err as Error).message}` };
    }

    const created: Bound[] = [];
    // Only one of several worker processes serves the admin API (see process/port-sharing.ts).
    const adminConfig = servesAdmin() ? config.admin : undefined;
    let admin = this.admin;
    let newAdmin: { key: string; server: http.Server } | undefined;
    try {
      for (const l of config.listeners) {
        const key = bindingKey(l);
        const existing = this.bindings.get(key);
        if (existing) continue;
        const bound = this.makeBinding(key, l.name, next.listeners.get(l.name)!);
        created.push(bound);
        await listen(bound.server, l.listen, `listener "${l.name}"`, listenerBindOptions());
      }
      const adminKey = adminConfig ? formatHostPort(adminConfig.listen) : undefined;
      if (adminKey !== admin?.key) {
        if (adminConfig) {
          const server = createAdminServer(() => ({
            token: this.snapshot?.config.admin?.token,
            status: () => this.status(),
            stats: () => this.statsReport(),
            ready: () => (this.leaving === undefined ? { ready: true, status: 'ready' } : { ready: false, status: this.leaving }),
            connections: this.connectionRegistry,
            agents: { list: () => this.agents(), disconnect: (id) => this.disconnectAgent(id) },
            config: this.configAccess(),
            metrics: () => this.metrics.exposition(),
            limits: () => (this.snapshot && this.state ? limitsReport(this.snapshot.config, this.state.store) : Promise.reject(new Error('no snapshot'))),
            diagnostics: this.snapshot?.config.admin?.diagnostics === true,
            ...this.adminHooks,
          }));
          await listen(server, adminConfig.listen, 'the admin API');
          newAdmin = { key: adminKey!, server };
        }
      }
    } catch (err) {
      if (state !== this.state) void state.store.close();
      await Promise.all([...created.map((b) => closeBinding(b, 0)), newAdmin && closeServer(newAdmin.server, 0)]);
      this.releaseUnused();
      return { ok: false, error: (err as Error).message };
    }

    // Swap. Everything below only releases what the new snapshot does not use.
    const previous = this.snapshot;
    this.snapshot = next;
    // The live state follows the new config: policies retuned in place, targets and pools kept where unchanged.
    this.targets.activate(upstreamPlans(next), this.logger);
    if (state !== this.state) {
      void this.state?.store.close();
      this.state = state;
    }
    this.version = next.version;
    for (const b of created) this.bindings.set(b.key, b);
    const keep = new Set<string>();
    for (const l of config.listeners) {
      const key = bindingKey(l);
      keep.add(key);
      const b = this.bindings.get(key)!;
      b.name = l.name;
      const runtime = next.listeners.get(l.name)!;
      if (b.listener.kind === listenerKind(l.protocol)) {
        b.listener.update(runtime);
      } else {
        // Same address, another kind of listener: new connections go to a new listener object, open ones finish on the old.
        const old = b.listener;
        b.listener = createStreamListener(b, runtime, this.logger);
        void old.close(config.shutdownTimeout);
      }
    }
    for (const [key, b] of this.bindings) {
      if (keep.has(key)) continue;
      this.bindings.delete(key);
      void closeBinding(b, config.shutdownTimeout);
    }
    const adminKey = adminConfig ? formatHostPort(adminConfig.listen) : undefined;
    if (adminKey !== admin?.key) {
      if (admin) void closeServer(admin.server, 1000);
      admin = newAdmin;
      this.admin = admin;
    }
    this.releaseUnused();
    await this.tracer.configure(config.tracing);
    this.metrics.retain(next);
    this.logger.level = config.log.level;
    if (previous) this.logger.info({ version: next.version }, 'config reloaded');
    return { ok: true, version: next.version };
  }

  private makeBinding(key: string, name: string, runtime: AnyListenerRuntime): Bound {
    const partial: Binding = {
      name,
      // A binding made for the snapshot being applied serves it as soon as it is swapped in.
      current: () => this.current,
      draining: () => this.stopping,
      registry: this.connectionRegistry,
      tunnels: this.tunnels,
      metrics: this.metrics.l4,
    };
    if (runtime.config.protocol === 'udp') {
      const server = dgram.createSocket({ type: runtime.config.listen.host.includes(':') ? 'udp6' : 'udp4', ...listenerBindOptions().createDatagram });
      const listener = createDatagramListener(partial, runtime, this.logger, server);
      return Object.assign(partial, { key, server, listener });
    }
    const bound = Object.assign(partial, { key, listener: createStreamListener(partial, runtime, this.logger) as Listener }) as Bound;
    const server = net.createServer(
      {
        noDelay: true,
        // node:http and the L4 splice need half-open sockets (a client may end its side and still read the response).
        allowHalfOpen: true,
        // HTTP: a whole upstream read (up to 64 KiB) fits in the socket's buffer, so a large body does not
        // pause and resume the upstream socket on every chunk. L4: the listener's copy buffer.
        highWaterMark: 'buffer' in runtime.config ? runtime.config.buffer : 256 * 1024,
      },
      (socket) => (bound.listener as StreamListener).accept(socket),
    );
    return Object.assign(bound, { server });
  }

  /** Reopens every access-log file at its path (SIGUSR1, after logrotate renamed them); stdout is left alone. */
  reopenLogs(): void {
    this.logger.info({ files: this.accessLogs.reopen() }, 'access logs reopened');
  }

  /** Releases live state and log files that the current snapshot does not use. */
  private releaseUnused(): void {
    const snap = this.snapshot;
    this.targets.retain(new Set(snap?.upstreams.keys() ?? []));
    this.accessLogs.retain(snap?.accessLogs ?? new Set());
  }

  /** The bound address of a listener (useful with port 0). */
  listenerAddress(name: string): HostPort | undefined {
    for (const b of this.bindings.values()) {
      if (b.name !== name) continue;
      try {
        const a = b.server.address() as AddressInfo | null;
        return a ? { host: a.address, port: a.port } : undefined;
      } catch {
        return undefined; // a UDP socket not bound yet
      }
    }
    return undefined;
  }

  /** Open downstream connections over every listener (or one, by name). */
  connections(name?: string): number {
    let n = 0;
    for (const b of this.bindings.values()) if (name === undefined || b.name === name) n += b.listener.connections;
    return n;
  }

  /** Live WebSocket sessions over every listener (or one, by name). */
  websocketSessions(name?: string): number {
    let n = 0;
    for (const b of this.bindings.values()) {
      if ((name === undefined || b.name === name) && b.listener instanceof HttpListener) n += b.listener.websockets.size;
    }
    return n;
  }

  private listenerOf(name: string): Listener | undefined {
    for (const b of this.bindings.values()) if (b.name === name) return b.listener;
    return undefined;
  }

  /** Authenticated agent and relay-service connections of every tunnel and relay listener. */
  private agentSessions(): TunnelSession[] {
    const out: TunnelSession[] = [];
    for (const b of this.bindings.values()) if (hasAgentSessions(b.listener)) for (const s of b.listener.agents()) if (s.ready) out.push(s);
    return out;
  }

  /** GET /agents on the admin API. */
  agents(): AgentInfo[] {
    const now = Date.now();
    return this.agentSessions().map((s) => describeAgent(s, s.entry.seq === 0 ? null : this.connectionRegistry.idOf(s.entry), now));
  }

  /** Closes every connection of agent `id` (DELETE /agents/:id); how many there were. */
  disconnectAgent(id: string): number {
    const sessions = this.agentSessions().filter((s) => s.agentId === id);
    for (const s of sessions) s.close('disconnected through the admin API');
    return sessions.length;
  }

  adminAddress(): HostPort | undefined {
    const a = this.admin?.server.address() as AddressInfo | null | undefined;
    return a ? { host: a.address, port: a.port } : undefined;
  }

  status(): unknown {
    const snap = this.snapshot;
    return {
      version: snap?.version ?? 0,
      listeners: snap
        ? [...snap.listeners.values()].map((l) => {
            const a = this.listenerAddress(l.name);
            return {
              name: l.name,
              protocol: l.config.protocol,
              address: a ? formatHostPort(a) : null,
              connections: this.connections(l.name),
              ...(l.certificates !== null ? { certificates: l.certificates.describe() } : {}),
              ...this.listenerOf(l.name)?.describe?.(),
            };
          })
        : [],
      upstreams: snap
        ? [...snap.upstreams.values()].map((u) => {
            const health = u.health();
            return {
              name: u.name,
              balancer: u.config.balancer,
              panic: health.panic,
              circuitBreaker: health.circuitBreaker,
              targets: u.targets.map((t, i) => ({ ...health.targets[i], inflight: t.inflight })),
              ...(health.discovery !== undefined ? { discovery: health.discovery } : {}),
            };
          })
        : [],
    };
  }

  /** Statistics of every series, by dimension (GET /stats on the admin API). */
  async statsReport(): Promise<Record<Dimension, Record<string, unknown>>> {
    const report = { route: {}, upstream: {}, target: {}, consumer: {} } as Record<Dimension, Record<string, unknown>>;
    for (const dim of Object.keys(report) as Dimension[]) {
      for (const name of this.stats.names(dim)) report[dim][name] = await this.stats.view(dim, name);
    }
    return report;
  }

  /**
   * The stop a signal asks for: with `drain` (SIGTERM), /ready answers 503
   * for the config's `drain` period while the listeners still accept, so
   * load balancers stop sending first; then the graceful `stop()`. /health
   * answers 200 until the process exits.
   */
  async shutdown(drain: boolean): Promise<void> {
    const ms = drain ? (this.snapshot?.config.drain ?? 0) : 0;
    if (ms > 0 && this.leaving === undefined) {
      this.leaving = 'draining';
      this.logger.info({ drainMs: ms }, 'draining: /ready answers 503, listeners still accept');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        this.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.drained = undefined;
    }
    await this.stop();
  }

  /** Ends a running drain period now (a second stop signal); the graceful stop follows as usual. */
  endDrain(): void {
    this.drained?.();
  }

  /**
   * Graceful stop: stop accepting, let in-flight requests finish for up to
   * `graceMs` (responses meanwhile carry `Connection: close`), then close
   * what remains, the pools and the logs.
   */
  async stop(graceMs = this.snapshot?.config.shutdownTimeout ?? 10_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.leaving = 'stopping';
    await this.queue;
    await Promise.all([...this.bindings.values()].map((b) => closeBinding(b, graceMs)));
    this.bindings.clear();
    // The admin API closes last: /health and /ready answer while in-flight work finishes.
    if (this.admin) await closeServer(this.admin.server, 0);
    this.admin = undefined;
    await this.targets.destroy();
    await this.stats.close();
    await this.tracer.close();
    await this.state?.store.close();
    this.accessLogs.close();
  }
}

/**
 * Binds a socket; `sharing` says how it is shared with sibling worker processes (the default: not at all).
 * A failure rejects with `<label> cannot listen on <address>: <reason> (<CODE>)`, e.g.
 * `listener "web" cannot listen on 127.0.0.1:8080: address already in use (EADDRINUSE)`.
 */
function listen(server: net.Server | dgram.Socket, address: HostPort, label: string, sharing: BindOptions = bindOptions('exclusive')): Promise<void> {
  if (server instanceof dgram.Socket) {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(new Error(`${label} cannot bind udp ${formatHostPort(address)}: ${bindReason(err)}`));
      server.once('error', onError);
      server.bind({ address: address.host, port: address.port, ...sharing.bindDatagram }, () => {
        server.off('error', onError);
        resolve();
      });
    });
  }
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(new Error(`${label} cannot listen on ${formatHostPort(address)}: ${bindReason(err)}`));
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host: address.host, port: address.port, ...sharing.listen });
  });
}

/** A system error as its libuv text and code ("address already in use (EADDRINUSE)"); other errors as their message. */
function bindReason(err: Error): string {
  const { code, errno } = err as NodeJS.ErrnoException;
  const text = typeof errno === 'number' ? getSystemErrorMap().get(errno)?.[1] : undefined;
  return text && code ? `${text} (${code})` : err.message;
}

/** Stops accepting on a listener's socket, then closes its connections gracefully (see HttpListener.close). */
async function closeBinding(b: Bound, graceMs: number): Promise<void> {
  // A UDP socket is the listener's to close (after its sessions).
  if (b.server instanceof net.Server) b.server.close();
  await b.listener.close(graceMs);
}

/** Stops accepting; idle keep-alive connections close now, busy ones when done or after `graceMs`. */
function closeServer(server: http.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      server.closeAllConnections?.();
      return resolve();
    }
    const sweep = setInterval(() => server.closeIdleConnections(), 100);
    const force = setTimeout(() => server.closeAllConnections(), graceMs);
    server.close(() => {
      clearInterval(sweep);
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/** What each upstream of `snapshot` configures its live state with. */
function upstreamPlans(snapshot: Snapshot): Map<string, UpstreamPlan> {
  const plans = new Map<string, UpstreamPlan>();
  for (const [name, u] of snapshot.upstreams) plans.set(name, u.plan);
  return plans;
}

/** Bindings are kept across reloads by configured address; port 0 means "a fresh port for this listener". */
function bindingKey(l: Config['listeners'][number]): string {
  const address = (l.protocol === 'udp' ? 'udp:' : '') + formatHostPort(l.listen);
  return l.listen.port === 0 ? `${address}#${l.name}` : address;
}
