import type { ConnectCallback, ConnectOptions, Connector } from '../runtime/connector.js';
import type { TargetSource, TargetSpec } from '../runtime/target-source.js';
import type { ServiceAnnouncement } from './protocol.js';

export type { StreamOrigin } from '../runtime/connector.js';
import type { StreamOrigin } from '../runtime/connector.js';

/** What a registration opens its streams on: one authenticated agent (or relay service) connection. */
export interface StreamOpener {
  /** The agent's id (a relay service's code) and the listener it came in on. */
  readonly agentId: string;
  readonly listener: string;
  /** Opens a stream to `code`'s local service; same contract as Connector.connect. */
  open(code: string, origin: StreamOrigin, options: ConnectOptions, callback: ConnectCallback): () => void;
}

/** The gateway's claimed HTTP hosts, as a tunnel listener's exposure uses them (tunnel/host-claims.ts implements it). */
export interface HostClaimTable {
  /** Claims every host of `r.service` on HTTP listener `listener`; null when done, else why not (nothing is claimed then). */
  claim(listener: string, r: Registration): string | null;
  /** Lets go of `r`'s hosts (a no-op when it holds none). */
  release(r: Registration): void;
  /** Claimed hosts now: listener → host → code. */
  list(): Record<string, Record<string, string>>;
}

/**
 * One service code registered by one connection: a target of every
 * upstream with `{ tunnel: code }`, under the identity
 * `tunnel:<code>@<agent>#<connection seq>` (a reconnect is a new target).
 */
export class Registration {
  readonly identity: string;
  up: boolean;
  readonly registeredAt = Date.now();
  constructor(
    readonly code: string,
    readonly opener: StreamOpener,
    readonly seq: number,
    public service: ServiceAnnouncement,
  ) {
    this.identity = `tunnel:${code}@${opener.agentId}#${seq}`;
    this.up = service.up;
  }
}

/** The registrations of one code, as a TargetSource (a target per live, up registration). */
class CodeSource implements TargetSource {
  readonly name: string;
  readonly registrations: Registration[] = [];
  private specs: readonly TargetSpec[] = [];
  private readonly listeners = new Set<(targets: readonly TargetSpec[]) => void>();

  constructor(
    readonly code: string,
    private readonly onIdle: (src: CodeSource) => void,
  ) {
    this.name = `tunnel:${code}`;
  }

  current(): readonly TargetSpec[] {
    return this.specs;
  }

  subscribe(listener: (targets: readonly TargetSpec[]) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
      this.onIdle(this);
    };
  }

  get idle(): boolean {
    return this.registrations.length === 0 && this.listeners.size === 0;
  }

  changed(): void {
    this.specs = this.registrations.filter((r) => r.up).map((r) => ({ address: r.identity, weight: 1 }));
    for (const l of this.listeners) l(this.specs);
  }
}

/**
 * Every service code registered with this gateway, by tunnel agents and
 * relay services alike (one namespace): the TargetSource of each code
 * (upstreams with `{ tunnel: CODE }` subscribe to it), and the connector of
 * each registration's identity. Lives as long as the gateway, across
 * reloads; a connection's registrations leave the moment it ends.
 */
export class TunnelHub {
  private readonly codes = new Map<string, CodeSource>();
  private readonly byIdentity = new Map<string, Registration>();
  private readonly watchers = new Set<(code: string) => void>();
  /** HTTP hosts agents claim (set by the gateway, which owns the upstreams they need); null: no host can be claimed. */
  hosts: HostClaimTable | null = null;

  /** The source of `code`'s targets (made on first use; kept while anything subscribes or registers). */
  source(code: string): TargetSource {
    return this.codeSource(code);
  }

  /** Adds a registration (or replaces the same identity's); its targets join at once when it is up. */
  register(r: Registration): void {
    const src = this.codeSource(r.code);
    const old = this.byIdentity.get(r.identity);
    if (old !== undefined) src.registrations.splice(src.registrations.indexOf(old), 1);
    src.registrations.push(r);
    this.byIdentity.set(r.identity, r);
    this.changed(src);
  }

  /** A registration's service changed (up/down, hosts…): its targets follow. */
  update(r: Registration, service: ServiceAnnouncement): void {
    r.service = service;
    r.up = service.up;
    const src = this.codes.get(r.code);
    if (src !== undefined) this.changed(src);
  }

  unregister(r: Registration): void {
    if (this.byIdentity.get(r.identity) !== r) return;
    this.byIdentity.delete(r.identity);
    const src = this.codes.get(r.code);
    if (src === undefined) return;
    const i = src.registrations.indexOf(r);
    if (i >= 0) src.registrations.splice(i, 1);
    this.changed(src);
  }

  /** The registrations of `code` (up or not), oldest first. */
  registrations(code: string): readonly Registration[] {
    return this.codes.get(code)?.registrations ?? [];
  }

  /** Every code with at least one registration. */
  codesRegistered(): string[] {
    return [...this.codes.values()].filter((s) => s.registrations.length > 0).map((s) => s.code);
  }

  registration(identity: string): Registration | undefined {
    return this.byIdentity.get(identity);
  }

  /** Whether `identity` names a tunnel registration (any, live or not). */
  static isTunnelIdentity(identity: string): boolean {
    return identity.startsWith('tunnel:');
  }

  /** The connector of a registration identity: it finds the registration when it connects (it may have left). */
  connector(identity: string): Connector {
    return new TunnelConnector(identity, this);
  }

  /** Calls `watcher(code)` whenever a code's registrations change; returns the unsubscribe function. */
  watch(watcher: (code: string) => void): () => void {
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }

  private codeSource(code: string): CodeSource {
    let src = this.codes.get(code);
    if (src === undefined) {
      src = new CodeSource(code, this.dropIfIdle);
      this.codes.set(code, src);
    }
    return src;
  }

  /** Sources nobody uses any more go with their last subscriber or registration. */
  private readonly dropIfIdle = (src: CodeSource): void => {
    if (src.idle && this.codes.get(src.code) === src) this.codes.delete(src.code);
  };

  private changed(src: CodeSource): void {
    src.changed();
    for (const w of this.watchers) w(src.code);
    this.dropIfIdle(src);
  }
}

/** An error of a stream that cannot be opened through a tunnel (the registration left, the agent refused). */
export class TunnelConnectError extends Error {
  readonly code = 'TUNNEL_UNAVAILABLE';
  constructor(message: string) {
    super(message);
    this.name = 'TunnelConnectError';
  }
}

/**
 * A Connector whose streams go over an agent's tunnel to its local
 * service: the target identity names a registration, looked up on each
 * connect (a registration that left fails the connect, as a refused TCP
 * dial does, so retries pick another target).
 */
export class TunnelConnector implements Connector {
  constructor(
    readonly identity: string,
    private readonly hub: TunnelHub,
  ) {}

  connect(options: ConnectOptions, callback: ConnectCallback): () => void {
    const r = this.hub.registration(this.identity);
    if (r === undefined || !r.up) {
      let cancelled = false;
      process.nextTick(() => {
        if (!cancelled) callback(new TunnelConnectError(`${this.identity}: ${r === undefined ? 'the registration left' : 'the service is withdrawn'}`), null);
      });
      return () => {
        cancelled = true;
      };
    }
    return r.opener.open(r.code, options.origin ?? {}, options, callback);
  }
}
