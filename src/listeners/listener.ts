/*
 * Listeners: where a listener lives.
 *
 * Rule: every listener protocol has ONE file here, named after the
 * protocol (`http.ts` serves `http` and `https`, `tcp.ts`, `tls.ts`,
 * `udp.ts`, `sealed.ts`, `forward-proxy.ts`; `stream.ts` is what the
 * TCP-based L4 ones share). That file holds the listener's long-lived
 * object — the `Frontend` below — which the gateway hands each accepted
 * connection and, on every reload, the listener's new runtime. Everything
 * else a protocol needs and that is not "being a listener" (parsers,
 * routers, codecs, dialing, splicing) lives below, in http/ and l4/.
 *
 * Two words only: the *listener* (this folder: bound socket owned by the
 * gateway + the protocol file's object, both kept across reloads) and its
 * *listener runtime* (snapshot/snapshot.ts: what one config compiled for it,
 * replaced on reload). `Frontend` and `Binding` below are the names the code
 * still uses for the listener's object and for its view of the gateway.
 */
import type net from 'node:net';
import type { Snapshot } from '../snapshot/snapshot.js';
import type { ConnectionRegistry } from '../runtime/connection-registry.js';
import type { ListenerConfig } from '../config/schema.js';
import type { AnyListenerRuntime } from '../snapshot/snapshot.js';

/** What a listener's frontend needs from the gateway; `name` may change on reload. */
export interface Binding {
  name: string;
  readonly current: () => Snapshot;
  /** True while the gateway is stopping. */
  readonly draining: () => boolean;
  /** The process's connection registry: the frontend lists there every connection, stream and session it carries. */
  readonly registry: ConnectionRegistry;
}

/**
 * Which frontend class serves a listener: `http` and `https` share the
 * HTTP frontend; every other protocol has its own. A reload that changes
 * a listener's kind at the same address swaps its frontend.
 */
export type FrontendKind = 'http' | Exclude<ListenerConfig['protocol'], 'http' | 'https'>;

export function frontendKind(protocol: ListenerConfig['protocol']): FrontendKind {
  return protocol === 'https' ? 'http' : protocol;
}

/**
 * The protocol side of a listener. The gateway owns the bound socket (kept
 * across reloads) and hands the frontend each accepted connection (stream
 * listeners) or the bound datagram socket (udp); a reload calls `update`
 * with the listener's new runtime, always of the frontend's own kind.
 */
export interface Frontend {
  readonly kind: FrontendKind;
  update(runtime: AnyListenerRuntime): void;
  /** Graceful close after the bound socket stopped accepting: open connections get up to `graceMs`. */
  close(graceMs: number): Promise<void>;
  /** Open downstream connections (UDP: live sessions). */
  readonly connections: number;
  /** Extra admin-status fields (refused connections, sessions…), or undefined. */
  describe?(): Record<string, unknown>;
}

/** A frontend of a TCP-based listener. */
export interface StreamFrontend extends Frontend {
  accept(socket: net.Socket): void;
}
