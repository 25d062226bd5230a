import http from 'node:http';
import net from 'node:net';
import { probeGrpcHealth } from '../../upstream/grpc-health-probe.js';

/**
 * The agent's health check of one local service (agent config:
 * `services[].healthCheck`). The agent withdraws a service that goes down
 * (`up: false` in its services message) and offers it again when it comes
 * back.
 *
 * What a check is, by service type:
 *   - tcp: a TCP connection to the local address is accepted (then closed).
 *   - http: `GET <path>` (HTTP/1.1, its own connection: agent:false,
 *     `Connection: close`) answered with a 2xx or 3xx status; the body is
 *     read and discarded, and the verdict given at its end (or after 64
 *     KiB of it).
 *   - grpc: the standard `grpc.health.v1.Health/Check` over h2c for the
 *     service `service` ('' = the server as a whole), healthy iff SERVING
 *     (src/upstream/grpc-health-probe.ts).
 *   - udp: no check. A datagram service gives no generic answer to probe
 *     (silence means nothing in UDP), so a udp service is always up:
 *     start() runs no timer and opens no socket, and onChange is never
 *     called.
 *
 * Contract:
 *   - The service starts up (optimistic) and start() checks at once, then
 *     `interval` ms after each check ends (checks never overlap). A check
 *     not done within `timeout` ms fails, its socket destroyed.
 *   - `unhealthyThreshold` consecutive failures turn an up service down;
 *     `healthyThreshold` consecutive successes turn a down service up.
 *     onChange(up, reason) is called on these transitions only, never
 *     after stop(); it must not throw.
 *   - stop() destroys the check in progress and clears the timer: nothing
 *     of this object remains active. start() after stop() starts over from
 *     the current state with fresh counters.
 */
export type LocalServiceType = 'tcp' | 'http' | 'grpc' | 'udp';

export interface LocalHealthOptions {
  type: LocalServiceType;
  address: { host: string; port: number };
  /** Ms between the end of a check and the start of the next. */
  interval: number;
  /** Ms a check may take. */
  timeout: number;
  /** HTTP path checked; default '/'. */
  path?: string;
  /** gRPC service asked about; default '' (the whole server). */
  service?: string;
  /** Consecutive passes to turn a down service up; default 1. */
  healthyThreshold?: number;
  /** Consecutive failures to turn an up service down; default 2. */
  unhealthyThreshold?: number;
}

export type HealthChange = (up: boolean, reason: string) => void;

/** Most body bytes of an HTTP check read before the verdict. */
const MAX_HTTP_BODY = 64 * 1024;

interface Check {
  destroy(): void;
}
type Settle = (ok: boolean, reason: string) => void;

export class LocalHealth {
  readonly #o: Required<LocalHealthOptions>;
  readonly #onChange: HealthChange;
  #up = true;
  #reason = 'not checked yet';
  #running = false;
  /** Bumped by start() and stop(): a check of an older run reports nothing. */
  #run = 0;
  #passes = 0;
  #failures = 0;
  /** The wait before the next check, or null. */
  #timer: NodeJS.Timeout | null = null;
  /** The deadline of the check in progress, or null. */
  #deadline: NodeJS.Timeout | null = null;
  #check: Check | null = null;
  #checks = 0;

  constructor(options: LocalHealthOptions, onChange: HealthChange) {
    const o = { path: '/', service: '', healthyThreshold: 1, unhealthyThreshold: 2, ...options };
    if (!['tcp', 'http', 'grpc', 'udp'].includes(o.type)) throw new RangeError(`unknown service type ${JSON.stringify(o.type)}`);
    if (typeof o.address?.host !== 'string' || o.address.host === '') throw new RangeError('the health check needs a host');
    if (!Number.isInteger(o.address.port) || o.address.port < 1 || o.address.port > 65535) throw new RangeError(`invalid port ${o.address.port}`);
    for (const k of ['interval', 'timeout'] as const) {
      if (!Number.isFinite(o[k]) || o[k] <= 0) throw new RangeError(`health check ${k} must be a positive number of ms, got ${o[k]}`);
    }
    for (const k of ['healthyThreshold', 'unhealthyThreshold'] as const) {
      if (!Number.isSafeInteger(o[k]) || o[k] < 1) throw new RangeError(`health check ${k} must be a whole number ≥ 1, got ${o[k]}`);
    }
    if (typeof o.path !== 'string' || !o.path.startsWith('/') || /[\x00-\x20\x7f]/.test(o.path)) throw new RangeError(`health check path must start with "/" and hold no spaces or control characters, got ${JSON.stringify(o.path)}`);
    this.#o = o;
    this.#onChange = onChange;
  }

  /** The service's current state (true until checks say otherwise). */
  get up(): boolean {
    return this.#up;
  }

  /** The last check's outcome in words ('not checked yet' before the first). */
  get reason(): string {
    return this.#reason;
  }

  /** Checks completed since construction. */
  get checks(): number {
    return this.#checks;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#run++;
    this.#passes = 0;
    this.#failures = 0;
    if (this.#o.type === 'udp') {
      this.#reason = 'udp services are not checked';
      return;
    }
    this.#checkNow();
  }

  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    this.#run++;
    if (this.#timer !== null) clearTimeout(this.#timer);
    if (this.#deadline !== null) clearTimeout(this.#deadline);
    this.#timer = null;
    this.#deadline = null;
    const check = this.#check;
    this.#check = null;
    check?.destroy();
  }

  #checkNow(): void {
    this.#timer = null;
    const run = this.#run;
    let settled = false;
    const settle: Settle = (ok, reason) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      if (this.#deadline === deadline) this.#deadline = null;
      const check = this.#check;
      this.#check = null;
      check?.destroy();
      if (run !== this.#run) return; // stopped (or restarted) meanwhile
      this.#checks++;
      this.#record(ok, reason);
      if (run === this.#run && this.#running) this.#timer = setTimeout(() => this.#checkNow(), this.#o.interval);
    };
    const deadline = setTimeout(() => settle(false, `no answer within ${this.#o.timeout}ms`), this.#o.timeout);
    this.#deadline = deadline;
    const check = this.#probe(settle);
    if (!settled) this.#check = check;
  }

  #probe(settle: Settle): Check {
    const { host, port } = this.#o.address;
    switch (this.#o.type) {
      case 'grpc':
        return probeGrpcHealth({ host, port, service: this.#o.service, timeoutMs: this.#o.timeout }, settle);
      case 'http':
        return httpCheck(host, port, this.#o.path, settle);
      default:
        return tcpCheck(host, port, settle);
    }
  }

  #record(ok: boolean, reason: string): void {
    this.#reason = reason;
    if (ok) {
      this.#failures = 0;
      if (this.#up || ++this.#passes < this.#o.healthyThreshold) return;
      this.#passes = 0;
      this.#up = true;
    } else {
      this.#passes = 0;
      if (!this.#up || ++this.#failures < this.#o.unhealthyThreshold) return;
      this.#failures = 0;
      this.#up = false;
    }
    this.#onChange(this.#up, reason);
  }
}

function tcpCheck(host: string, port: number, settle: Settle): Check {
  const socket = net.connect({ host, port });
  socket.once('connect', () => settle(true, 'connected'));
  socket.once('error', (err: NodeJS.ErrnoException) => settle(false, err.code ?? err.message));
  socket.once('close', () => settle(false, 'connection closed'));
  return socket;
}

function httpCheck(host: string, port: number, path: string, settle: Settle): Check {
  const hostHeader = `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
  const req = http.request({
    host,
    port,
    path,
    method: 'GET',
    agent: false,
    headers: { host: hostHeader, 'user-agent': 'portico-agent-health-check', connection: 'close' },
  });
  req.once('response', (res) => {
    const status = res.statusCode ?? 0;
    const ok = status >= 200 && status < 400;
    const verdict = () => settle(ok, `HTTP status ${status}${ok ? '' : ' (expected 2xx or 3xx)'}`);
    let read = 0;
    res.on('data', (chunk: Buffer) => {
      read += chunk.length;
      if (read > MAX_HTTP_BODY) verdict();
    });
    res.once('end', verdict);
    res.once('error', () => settle(false, 'response aborted'));
    res.once('aborted', () => settle(false, 'response aborted'));
  });
  req.once('error', (err: NodeJS.ErrnoException) => settle(false, err.code ?? err.message));
  req.once('close', () => settle(false, 'connection closed before an answer'));
  req.end();
  return { destroy: () => req.destroy() };
}
