/*
 * Listeners: where a listener lives.
 *
 * Rule: every listener protocol has ONE file here, named after the
 * protocol (`http.ts` serves `http` and `https`, `tcp.ts`, `tls.ts`,
 * `udp.ts`, `sealed.ts`, `forward-proxy.ts`; `stream.ts` is what the
 * TCP-based L4 ones share). That file holds the listener's long-lived
 * object — the `Listener` below — which the gateway hands each accepted
 * connection and, on every reload, the listener's new runtime. Everything
 * else a protocol needs and that is not "being a listener" (parsers,
 * routers, codecs, dialing, splicing) lives below, in http/ and l4/.
 *
 * Two words only: the *listener* (this folder: the bound socket owned by
 * the gateway and the protocol file's `Listener` object, both kept across
 * reloads) and its *listener runtime* (snapshot/snapshot.ts: what one
 * config compiled for it, replaced on reload). `Binding` is the listener's
 * view of the gateway: its name, the current snapshot, the registry.
 */
import type net from 'node:net';
import type { Snapshot } from '../snapshot/snapshot.js';
import type { ConnectionRegistry } from '../runtime/connection-registry.js';
import type { TunnelHub } from '../tunnel/hub.js';
import type { L4Metrics } from '../observability/l4-metrics.js';
import type { ListenerConfig } from '../config/schema.js';
import type { AnyListenerRuntime } from '../snapshot/snapshot.js';

/** What a listener needs from the gateway; `name` may change on reload. */
export interface Binding {
  name: string;
  readonly current: () => Snapshot;
  /** True while the gateway is stopping. */
  readonly draining: () => boolean;
  /** The process's connection registry: the listener lists there every connection, stream and session it carries. */
  readonly registry: ConnectionRegistry;
  /** The gateway's tunnel hub: service codes registered by agents and relay services (tunnel and relay listeners). */
  readonly tunnels: TunnelHub;
  /** The process's L4 metrics: each connection (UDP session) is recorded there once, in its log phase. */
  readonly metrics: L4Metrics;
}

/**
 * Which listener class serves a listener: `http` and `https` share the
 * HTTP listener; every other protocol has its own. A reload that changes
 * a listener's kind at the same address swaps its listener.
 */
export type ListenerKind = 'http' | Exclude<ListenerConfig['protocol'], 'http' | 'https'>;

export function listenerKind(protocol: ListenerConfig['protocol']): ListenerKind {
  return protocol === 'https' ? 'http' : protocol;
}

/**
 * The protocol side of a listener. The gateway owns the bound socket (kept
 * across reloads) and hands the listener each accepted connection (stream
 * listeners) or the bound datagram socket (udp); a reload calls `update`
 * with the listener's new runtime, always of the listener's own kind.
 */
export interface Listener {
  readonly kind: ListenerKind;
  update(runtime: AnyListenerRuntime): void;
  /** Graceful close after the bound socket stopped accepting: open connections get up to `graceMs`. */
  close(graceMs: number): Promise<void>;
  /** Open downstream connections (UDP: live sessions). */
  readonly connections: number;
  /** Extra admin-status fields (refused connections, sessions…), or undefined. */
  describe?(): Record<string, unknown>;
}

/** The object of a TCP-based listener: it is handed each accepted connection. */
export interface StreamListener extends Listener {
  accept(socket: net.Socket): void;
}
