import http from 'node:http';
import net from 'node:net';
import { parseHostPort } from '../config/address.js';
class TargetState {
    target;
    hostPort;
    activeHealthy = true;
    activeFailures = 0;
    activeSuccesses = 0;
    passiveFailures = 0;
    /** Date.now() when the ejection ends; 0 when not ejected. */
    ejectedUntil = 0;
    ejections = 0;
    lastEjectMs = 0;
    returnedAt = 0;
    ejectTimer = null;
    checkTimer = null;
    /** The check in progress (its socket is destroyed on stop). */
    checking = null;
    constructor(target) {
        this.target = target;
        this.hostPort = parseHostPort(target.address);
    }
    get healthy() {
        return this.activeHealthy && this.ejectedUntil === 0;
    }
    get statusText() {
        if (this.ejectedUntil !== 0)
            return 'ejected';
        return this.activeHealthy ? 'healthy' : 'unhealthy';
    }
}
/**
 * The health of one upstream's targets: active checks (HTTP or TCP, on
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
    upstream;
    config;
    active;
    passive;
    states;
    byTarget;
    onPickSet;
    /** Failing statuses for passive checks: failing[status] === 1. */
    failing;
    current;
    panic = false;
    running = false;
    logger = null;
    constructor(upstream, targets, config, onPickSet) {
        this.upstream = upstream;
        this.config = config;
        this.active = config.active;
        this.passive = config.passive;
        this.states = targets.map((t) => new TargetState(t));
        this.byTarget = new Map(this.states.map((s) => [s.target, s]));
        this.onPickSet = onPickSet;
        this.failing = new Uint8Array(600);
        for (const s of config.passive?.statuses ?? [])
            this.failing[s] = 1;
        this.current = targets.filter((t) => t.weight > 0);
    }
    /** The targets the balancer may use now. */
    get pickSet() {
        return this.current;
    }
    /**
     * Starts the active checks (the first round at once). `previous`, the same
     * upstream in the snapshot being replaced, hands over the state of targets
     * with the same address when its healthCheck config is the same.
     */
    start(logger, previous) {
        if (this.running)
            return;
        this.running = true;
        this.logger = logger;
        if (previous !== undefined && JSON.stringify(previous.config) === JSON.stringify(this.config))
            this.inherit(previous);
        this.recompute('');
        if (this.active !== undefined)
            for (const s of this.states)
                this.schedule(s, 0);
    }
    /** Stops the checks and ejection timers; in-flight checks are aborted. Later reports are ignored. */
    stop() {
        this.running = false;
        for (const s of this.states) {
            if (s.checkTimer !== null)
                clearTimeout(s.checkTimer);
            if (s.ejectTimer !== null)
                clearTimeout(s.ejectTimer);
            s.checkTimer = null;
            s.ejectTimer = null;
            s.checking?.destroy();
            s.checking = null;
        }
    }
    // --- passive: reported by the proxy for every exchange with a target of this upstream
    /** A response head arrived from `target`. */
    observeStatus(target, status) {
        if (this.failing[status] === 1)
            this.failure(target, `status ${status}`);
        else {
            const s = this.byTarget.get(target);
            if (s !== undefined)
                s.passiveFailures = 0;
        }
    }
    /** A request to `target` failed (connect error, reset, timeout, or a failing status). */
    failure(target, reason) {
        const p = this.passive;
        if (p === undefined || !this.running)
            return;
        const s = this.byTarget.get(target);
        if (s === undefined || s.ejectedUntil !== 0)
            return;
        if (++s.passiveFailures < p.unhealthyThreshold)
            return;
        s.passiveFailures = 0;
        const now = Date.now();
        // A target that stayed in for at least as long as it was last out starts again from ejectTime.
        if (s.ejections > 0 && now - s.returnedAt >= s.lastEjectMs)
            s.ejections = 0;
        const ms = Math.min(p.ejectTime * 2 ** s.ejections, p.maxEjectTime);
        const from = s.statusText;
        s.ejections++;
        s.lastEjectMs = ms;
        s.ejectedUntil = now + ms;
        s.ejectTimer = setTimeout(() => this.unEject(s), ms).unref();
        this.log('warn', s, from, `${p.unhealthyThreshold} consecutive failed requests (last: ${reason}); ejected for ${ms}ms`);
        this.recompute(`${s.target.address} ejected`);
    }
    view() {
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
    unEject(s) {
        s.ejectTimer = null;
        if (!this.running)
            return;
        s.ejectedUntil = 0;
        s.returnedAt = Date.now();
        s.passiveFailures = 0;
        this.log('info', s, 'ejected', `ejection of ${s.lastEjectMs}ms ended`);
        this.recompute(`${s.target.address} returned`);
    }
    // --- active checks
    schedule(s, delay) {
        s.checkTimer = setTimeout(() => {
            s.checkTimer = null;
            this.check(s);
        }, delay).unref();
    }
    check(s) {
        if (!this.running)
            return;
        const a = this.active;
        let settled = false;
        const settle = (ok, reason) => {
            if (settled)
                return;
            settled = true;
            clearTimeout(timer);
            s.checking?.destroy();
            s.checking = null;
            if (!this.running)
                return;
            this.onActiveResult(s, ok, reason);
            this.schedule(s, a.interval);
        };
        const timer = setTimeout(() => settle(false, `no answer within ${a.timeout}ms`), a.timeout).unref();
        const { host, port } = s.hostPort;
        if (a.type === 'tcp') {
            const socket = net.connect({ host, port });
            s.checking = socket;
            socket.on('connect', () => settle(true, 'connected'));
            socket.on('error', (err) => settle(false, err.code ?? err.message));
            return;
        }
        const req = http.request({
            host,
            port,
            method: 'GET',
            path: a.path,
            headers: { host: a.host ?? s.target.address, 'user-agent': 'portico-health-check', connection: 'close' },
            agent: false,
            setHost: false,
        }, (res) => {
            res.on('error', () => undefined);
            const status = res.statusCode ?? 0;
            const [lo, hi] = a.expectStatus;
            settle(status >= lo && status <= hi, `status ${status} (expected ${lo}-${hi})`);
        });
        s.checking = req;
        req.on('error', (err) => settle(false, err.code ?? err.message));
        req.end();
    }
    onActiveResult(s, ok, reason) {
        const a = this.active;
        if (ok) {
            s.activeFailures = 0;
            if (s.activeHealthy)
                return;
            if (++s.activeSuccesses < a.healthyThreshold)
                return;
            const from = s.statusText;
            s.activeHealthy = true;
            s.activeSuccesses = 0;
            this.log('info', s, from, `${a.healthyThreshold} passing active checks (${reason})`);
            this.recompute(`${s.target.address} healthy`);
        }
        else {
            s.activeSuccesses = 0;
            ++s.activeFailures;
            if (!s.activeHealthy || s.activeFailures < a.unhealthyThreshold)
                return;
            const from = s.statusText;
            s.activeHealthy = false;
            this.log('warn', s, from, `${a.unhealthyThreshold} failed active checks (last: ${reason})`);
            this.recompute(`${s.target.address} unhealthy`);
        }
    }
    // --- the pick set
    /** Rebuilds the pick set from the targets' states; tells the upstream only when it changed. */
    recompute(why) {
        const eligible = this.states.filter((s) => s.target.weight > 0);
        const healthy = eligible.filter((s) => s.healthy);
        const panic = eligible.length > 0 && healthy.length * 100 < this.config.minHealthyPercent * eligible.length;
        const next = (panic ? eligible : healthy).map((s) => s.target);
        if (panic !== this.panic) {
            this.panic = panic;
            const detail = { upstream: this.upstream, healthy: healthy.length, targets: eligible.length, minHealthyPercent: this.config.minHealthyPercent, reason: why };
            if (panic)
                this.logger?.warn(detail, 'upstream in panic mode: too few healthy targets, using all of them');
            else
                this.logger?.info(detail, 'upstream left panic mode');
        }
        if (next.length === this.current.length && next.every((t, i) => t === this.current[i]))
            return;
        this.current = next;
        this.onPickSet(next);
        if (next.length === 0)
            this.logger?.error({ upstream: this.upstream, reason: why }, 'upstream has no healthy target');
    }
    inherit(previous) {
        const now = Date.now();
        for (const s of this.states) {
            const old = previous.states.find((o) => o.target.address === s.target.address);
            if (old === undefined)
                continue;
            s.activeHealthy = old.activeHealthy;
            s.activeFailures = old.activeFailures;
            s.activeSuccesses = old.activeSuccesses;
            s.passiveFailures = old.passiveFailures;
            s.ejections = old.ejections;
            s.lastEjectMs = old.lastEjectMs;
            s.returnedAt = old.returnedAt;
            if (old.ejectedUntil > now) {
                s.ejectedUntil = old.ejectedUntil;
                s.ejectTimer = setTimeout(() => this.unEject(s), old.ejectedUntil - now).unref();
            }
        }
    }
    log(level, s, from, reason) {
        this.logger?.[level]({ upstream: this.upstream, target: s.target.address, from, to: s.statusText, reason }, 'target health changed');
    }
}
//# sourceMappingURL=health.js.map