import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from '../observability/logger.js';
import { probeGrpcHealth } from './grpc-health-probe.js';
import type { ActiveCheckConfig, HealthCheckConfig, PassiveCheckConfig } from '../config/schemas/upstream-policy.js';
import type { Target } from './target.js';

/** One target's health, as the admin API shows it. */
export interface TargetHealthView {
  address: string;
  weight: number;
  /** In the balancer's set (healthy and not ejected), or used anyway in panic mode. */
  healthy: boolean;
  /** Result of the active checks: `healthy`, `unhealthy`, or `unchecked` (no active check configured). */
  active: 'healthy' | 'unhealthy' | 'unchecked';
  ejected: boolean;
  /** Milliseconds until an ejected target returns; 0 when not ejected. */
  ejectedForMs: number;
  /** Consecutive ejections (the next one lasts ejectTime × 2^ejections, up to maxEjectTime). */
  ejections: number;
  /** Consecutive failed active checks and failed requests. */
  failures: { active: number; passive: number };
}

export interface UpstreamHealthView {
  /** Too few healthy targets (below minHealthyPercent): every target is used. */
  panic: boolean;
  targets: TargetHealthView[];
}

/** How active checks reach the targets, from the upstream's own settings. */
export interface HealthCheckTransport {
  /**
   * The upstream's TLS client options (ca, servername, cert/key, minVersion…)
   * when it connects over TLS. gRPC checks then run over h2 (ALPN) instead of h2c.
   */
  tls?: tls.ConnectionOptions;
}

/** Called with the targets the balancer may pick from whenever that set changes. */
export type PickSetListener = (targets: readonly Target[]) => void;

class TargetHealth {
  /** The target as the upstream has it now (replaced when its weight changes). */
  target: Target;
  activeHealthy = true;
  activeFailures = 0;
  activeSuccesses = 0;
  passiveFailures = 0;
  /** Date.now() when the ejection ends; 0 when not ejected. */
  ejectedUntil = 0;
  ejections = 0;
  lastEjectMs = 0;
  returnedAt = 0;
  ejectTimer: NodeJS.Timeout | null = null;
  checkTimer: NodeJS.Timeout | null = null;
  /** The check in progress (its socket is destroyed on stop). */
  checking: { destroy(): void } | null = null;

  constructor(target: Target) {
    this.target = target;
  }

  get healthy(): boolean {
    return this.activeHealthy && this.ejectedUntil === 0;
  }

  get statusText(): string {
    if (this.ejectedUntil !== 0) return 'ejected';
    return this.activeHealthy ? 'healthy' : 'unhealthy';
  }
}

/**
 * The health of one upstream's targets: active checks (HTTP, TCP or gRPC, on
 * their own short-lived connections, never the data-plane pools), passive
 * outlier ejection fed by the proxy, and the panic threshold. Whenever the
 * set of targets the balancer may use changes, `onPickSet` gets the new
 * set, and the upstream builds a new picker for it (pickers are never
 * edited in place).
 *
 * A target is healthy while its active checks pass (it starts healthy; it
 * turns unhealthy after `unhealthyThreshold` consecutive failed checks and
 * healthy again after `healthyThreshold` passing ones) and it is not
 * ejected. When fewer than `minHealthyPercent` % of the non-drained targets
 * are healthy, the upstream is in panic mode and uses all of them.
 *
 * Checks and ejection timers run between `start` and `stop` only (the
 * gateway starts them when this snapshot becomes current and stops them when
 * it is replaced); all timers are unref'd.
 */
export class UpstreamHealth {
  private readonly upstream: string;
  readonly config: HealthCheckConfig;
  private readonly active: ActiveCheckConfig | undefined;
  private readonly passive: PassiveCheckConfig | undefined;
  /** In the order of the upstream's targets. */
  private states: TargetHealth[] = [];
  /** By target identity: a report about a Target replaced since (new weight) still finds its state. */
  private readonly byAddress = new Map<string, TargetHealth>();
  private readonly onPickSet: PickSetListener;
  /** Failing statuses for passive checks: failing[status] === 1. */
  private readonly failing: Uint8Array;
  private current: readonly Target[] = [];
  private panic = false;
  private running = false;
  private logger: Logger | null = null;
  private transport: HealthCheckTransport;

  constructor(upstream: string, config: HealthCheckConfig, onPickSet: PickSetListener, transport: HealthCheckTransport = {}) {
    this.upstream = upstream;
    this.transport = transport;
    this.config = config;
    this.active = config.active;
    this.passive = config.passive;
    this.onPickSet = onPickSet;
    this.failing = new Uint8Array(600);
    for (const s of config.passive?.statuses ?? []) this.failing[s] = 1;
  }

  /** How checks reach the targets (the upstream's TLS settings may change on a reload that keeps this config). */
  setTransport(transport: HealthCheckTransport): void {
    this.transport = transport;
  }

  /**
   * The upstream's target set changed (a reload or a target source): a
   * target that stays keeps its health, a new one starts healthy and is
   * checked at once, one that left is forgotten (its check aborted).
   */
  setTargets(targets: readonly Target[]): void {
    const next: TargetHealth[] = [];
    const seen = new Set<string>();
    for (const t of targets) {
      seen.add(t.address);
      let s = this.byAddress.get(t.address);
      const isNew = s === undefined;
      if (s === undefined) {
        s = new TargetHealth(t);
        this.byAddress.set(t.address, s);
      }
      const wasDrained = s.target.weight === 0;
      s.target = t;
      next.push(s);
      if (this.running && this.active !== undefined && t.weight > 0 && (isNew || (wasDrained && s.checkTimer === null && s.checking === null))) this.schedule(s, 0);
    }
    for (const [address, s] of this.byAddress) {
      if (seen.has(address)) continue;
      this.byAddress.delete(address);
      this.quiet(s);
    }
    this.states = next;
    this.recompute('targets changed');
  }

  /** The targets the balancer may use now. */
  get pickSet(): readonly Target[] {
    return this.current;
  }

  /** Starts the active checks (the first round at once); a second call does nothing. */
  start(logger: Logger): void {
    this.logger = logger;
    if (this.running) return;
    this.running = true;
    this.recompute('');
    // Drained targets (weight 0) are never picked, so they are not checked either.
    if (this.active !== undefined) for (const s of this.states) if (s.target.weight > 0) this.schedule(s, 0);
  }

  /** Stops the checks and ejection timers; in-flight checks are aborted. Later reports are ignored. */
  stop(): void {
    this.running = false;
    for (const s of this.states) this.quiet(s);
  }

  private quiet(s: TargetHealth): void {
    if (s.checkTimer !== null) clearTimeout(s.checkTimer);
    if (s.ejectTimer !== null) clearTimeout(s.ejectTimer);
    s.checkTimer = null;
    s.ejectTimer = null;
    s.checking?.destroy();
    s.checking = null;
  }

  // --- passive: reported by the proxy for every exchange with a target of this upstream

  /** A response head arrived from `target`. */
  observeStatus(target: Target, status: number): void {
    if (this.failing[status] === 1) this.failure(target, `status ${status}`);
    else {
      const s = this.byAddress.get(target.address);
      if (s !== undefined) s.passiveFailures = 0;
    }
  }

  /** A request to `target` failed (connect error, reset, timeout, or a failing status). */
  failure(target: Target, reason: string): void {
    const p = this.passive;
    if (p === undefined || !this.running) return;
    const s = this.byAddress.get(target.address);
    if (s === undefined || s.ejectedUntil !== 0) return;
    if (++s.passiveFailures < p.unhealthyThreshold) return;
    s.passiveFailures = 0;
    const now = Date.now();
    // A target that stayed in for at least as long as it was last out starts again from ejectTime.
    if (s.ejections > 0 && now - s.returnedAt >= s.lastEjectMs) s.ejections = 0;
    const ms = Math.min(p.ejectTime * 2 ** s.ejections, p.maxEjectTime);
    const from = s.statusText;
    s.ejections++;
    s.lastEjectMs = ms;
    s.ejectedUntil = now + ms;
    s.ejectTimer = setTimeout(() => this.unEject(s), ms).unref();
    this.log('warn', s, from, `${p.unhealthyThreshold} consecutive failed requests (last: ${reason}); ejected for ${ms}ms`);
    this.recompute(`${s.target.address} ejected`);
  }

  view(): UpstreamHealthView {
    const now = Date.now();
    const inSet = new Set(this.current);
    return {
      panic: this.panic,
      targets: this.states.map((s) => ({
        address: s.target.address,
        weight: s.target.weight,
        healthy: inSet.has(s.target),
        active: this.active === undefined ? 'unchecked' : s.activeHealthy ? 'healthy' : 'unhealthy',
        ejected: s.ejectedUntil !== 0,
        ejectedForMs: s.ejectedUntil === 0 ? 0 : Math.max(0, s.ejectedUntil - now),
        ejections: s.ejections,
        failures: { active: s.activeFailures, passive: s.passiveFailures },
      })),
    };
  }

  private unEject(s: TargetHealth): void {
    s.ejectTimer = null;
    if (!this.running || this.byAddress.get(s.target.address) !== s) return;
    s.ejectedUntil = 0;
    s.returnedAt = Date.now();
    s.passiveFailures = 0;
    this.log('info', s, 'ejected', `ejection of ${s.lastEjectMs}ms ended`);
    this.recompute(`${s.target.address} returned`);
  }

  // --- active checks

  private schedule(s: TargetHealth, delay: number): void {
    s.checkTimer = setTimeout(() => {
      s.checkTimer = null;
      this.check(s);
    }, delay).unref();
  }

  private check(s: TargetHealth): void {
    if (!this.running) return;
    const a = this.active!;
    let settled = false;
    const settle = (ok: boolean, reason: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.checking?.destroy();
      s.checking = null;
      // Stopped, or the target left the upstream meanwhile.
      if (!this.running || this.byAddress.get(s.target.address) !== s) return;
      this.onActiveResult(s, ok, reason);
      this.schedule(s, a.interval);
    };
    const timer = setTimeout(() => settle(false, `no answer within ${a.timeout}ms`), a.timeout).unref();
    // Every check opens its own stream through the target's connector (never a data-plane pool); the timer covers it all.
    let opened = false;
    const cancel = s.target.connector.connect({ timeout: 0 }, (err, stream) => {
      opened = true;
      if (settled) return void stream?.destroy();
      if (err !== null) return settle(false, (err as NodeJS.ErrnoException).code ?? err.message);
      this.probe(s, a, stream!, settle);
    });
    if (!opened) s.checking = { destroy: cancel };
  }

  /** Runs the active check `a` over an open stream to the target; `settle` gets the verdict. */
  private probe(s: TargetHealth, a: ActiveCheckConfig, stream: net.Socket, settle: (ok: boolean, reason: string) => void): void {
    const { host } = s.target.hostPort;
    if (a.type === 'tcp') {
      s.checking = stream;
      return settle(true, 'connected');
    }
    const secure = this.transport.tls;
    if (a.type === 'grpc') {
      s.checking = probeGrpcHealth(
        { stream, host, service: a.service ?? '', timeoutMs: a.timeout, authority: a.host ?? s.target.address, tls: secure },
        settle,
      );
      return;
    }
    // HTTP/1.1 checks, over TLS (with the upstream's CA, name and client certificate) when the upstream uses TLS.
    const socket =
      secure === undefined
        ? stream
        : tls.connect({ servername: net.isIP(host) === 0 ? host : undefined, ...secure, host, socket: stream, ALPNProtocols: ['http/1.1'] });
    socket.on('error', () => undefined);
    const req = http.request(
      {
        method: 'GET',
        path: a.path,
        headers: { host: a.host ?? s.target.address, 'user-agent': 'portico-health-check', connection: 'close' },
        createConnection: () => socket,
        setHost: false,
      },
      (res) => {
        res.on('error', () => undefined);
        const status = res.statusCode ?? 0;
        const [lo, hi] = a.expectStatus;
        settle(status >= lo && status <= hi, `status ${status} (expected ${lo}-${hi})`);
      },
    );
    s.checking = { destroy: () => (req.destroy(), socket.destroy()) };
    req.on('error', (err: Error & { code?: string }) => settle(false, err.code ?? err.message));
    req.end();
  }

  private onActiveResult(s: TargetHealth, ok: boolean, reason: string): void {
    const a = this.active!;
    if (ok) {
      s.activeFailures = 0;
      if (s.activeHealthy) return;
      if (++s.activeSuccesses < a.healthyThreshold) return;
      const from = s.statusText;
      s.activeHealthy = true;
      s.activeSuccesses = 0;
      this.log('info', s, from, `${a.healthyThreshold} passing active checks (${reason})`);
      this.recompute(`${s.target.address} healthy`);
    } else {
      s.activeSuccesses = 0;
      ++s.activeFailures;
      if (!s.activeHealthy || s.activeFailures < a.unhealthyThreshold) return;
      const from = s.statusText;
      s.activeHealthy = false;
      this.log('warn', s, from, `${a.unhealthyThreshold} failed active checks (last: ${reason})`);
      this.recompute(`${s.target.address} unhealthy`);
    }
  }

  // --- the pick set

  /** Rebuilds the pick set from the targets' states; tells the upstream only when it changed. */
  private recompute(why: string): void {
    const eligible = this.states.filter((s) => s.target.weight > 0);
    const healthy = eligible.filter((s) => s.healthy);
    const panic = eligible.length > 0 && healthy.length * 100 < this.config.minHealthyPercent * eligible.length;
    const next = (panic ? eligible : healthy).map((s) => s.target);
    if (panic !== this.panic) {
      this.panic = panic;
      const detail = { upstream: this.upstream, healthy: healthy.length, targets: eligible.length, minHealthyPercent: this.config.minHealthyPercent, reason: why };
      if (panic) this.logger?.warn(detail, 'upstream in panic mode: too few healthy targets, using all of them');
      else this.logger?.info(detail, 'upstream left panic mode');
    }
    if (next.length === this.current.length && next.every((t, i) => t === this.current[i])) return;
    this.current = next;
    this.onPickSet(next);
    if (next.length === 0) this.logger?.error({ upstream: this.upstream, reason: why }, 'upstream has no healthy target');
  }

  private log(level: 'info' | 'warn', s: TargetHealth, from: string, reason: string): void {
    this.logger?.[level]({ upstream: this.upstream, target: s.target.address, from, to: s.statusText, reason }, 'target health changed');
  }
}
