import http from 'node:http';
import pino from 'pino';
import { validateConfig } from '../../src/config/load.js';
import { formatHostPort } from '../../src/net/address.js';
import { Gateway } from '../../src/gateway.js';
import type { Upstream } from '../../src/upstream/upstream.js';
import { startUpstream, type TestUpstream } from './upstream.js';

/**
 * How a flaky upstream answers data-plane requests (anything but its health path):
 * - `ok`: 200 and a JSON echo (with `x-upstream: NAME`);
 * - `status`: `status` with the text body `failed attempt from NAME`;
 * - `reset`: destroys the connection without answering;
 * - `hang`: answers only when `release()` is called (or never);
 * - `slow`: answers `ok` after `delayMs`;
 * - `midbody`: sends a 200 head and part of the body, then resets;
 * - `endless`: sends `status` with a chunked body that never ends.
 */
export type FlakyMode = 'ok' | 'status' | 'reset' | 'hang' | 'slow' | 'midbody' | 'endless';

export interface FlakyUpstream extends TestUpstream {
  readonly name: string;
  mode: FlakyMode;
  status: number;
  delayMs: number;
  /** Status of `GET /healthz` (and any path starting with /healthz); 0 = never answer. */
  healthStatus: number;
  /** Data-plane requests received (health checks excluded). */
  hits(): number;
  /** Health-check requests received on `path` (prefix match). */
  checks(path?: string): number;
  /** Answers every request held in `hang` mode (with 200). */
  release(): void;
  /** Stops listening and drops every connection: connects are refused until `up()`. */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
}

/** A real upstream on 127.0.0.1:0 that fails and heals on command. */
export async function startFlaky(name: string): Promise<FlakyUpstream> {
  const held: http.ServerResponse[] = [];
  const ok = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => {
    const text = JSON.stringify({ upstream: name, method: req.method, url: req.url, body, length: body.length });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-upstream': name });
    res.end(text);
  };
  // eslint-disable-next-line prefer-const
  let f: FlakyUpstream;
  const up = await startUpstream((req, res, body) => {
    if (req.url!.startsWith('/healthz')) {
      if (f.healthStatus === 0) return; // never answers
      res.writeHead(f.healthStatus, { 'content-length': '0' });
      res.end();
      return;
    }
    switch (f.mode) {
      case 'ok':
        return ok(req, res, body);
      case 'status': {
        const text = `failed attempt from ${name}`;
        res.writeHead(f.status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text), 'x-upstream': name });
        res.end(text);
        return;
      }
      case 'reset':
        req.socket.destroy();
        return;
      case 'hang':
        held.push(res);
        res.on('close', () => held.splice(held.indexOf(res) >>> 0, 1));
        return;
      case 'slow':
        setTimeout(() => {
          if (!res.destroyed) ok(req, res, body);
        }, f.delayMs);
        return;
      case 'endless':
        res.writeHead(f.status, { 'content-type': 'text/plain', 'x-upstream': name });
        res.write('failed attempt, and more to come');
        return;
      case 'midbody':
        res.writeHead(200, { 'content-length': '100000', 'x-upstream': name });
        res.write(Buffer.alloc(1000, 97));
        setTimeout(() => res.socket?.destroy(), 20);
        return;
    }
  });
  const port = up.port;
  const closeServer = up.close;
  f = Object.assign(up, {
    name,
    mode: 'ok' as FlakyMode,
    status: 503,
    delayMs: 0,
    healthStatus: 200,
    hits: () => up.received.filter((r) => !r.url.startsWith('/healthz')).length,
    checks: (path = '/healthz') => up.received.filter((r) => r.url.startsWith(path)).length,
    release() {
      for (const res of held.splice(0)) if (!res.destroyed) ok(res.req, res, '');
    },
    down: () =>
      new Promise<void>((resolve) => {
        up.server.close(() => resolve());
        up.server.closeAllConnections();
      }),
    up: () => new Promise<void>((resolve, reject) => {
      up.server.once('error', reject);
      up.server.listen(port, '127.0.0.1', () => {
        up.server.off('error', reject);
        resolve();
      });
    }),
    close: async () => {
      f.release();
      if (up.server.listening) await closeServer();
    },
  });
  return f;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request over a fresh connection (agent: false). `body` may be a Buffer; `chunked` streams it without Content-Length. */
export function send(
  url: string,
  opts: { method?: string; path?: string; headers?: Record<string, string>; body?: string | Buffer; chunked?: boolean } = {},
): Promise<Reply> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...opts.headers };
    if (opts.body !== undefined && !opts.chunked) headers['content-length'] = Buffer.byteLength(opts.body);
    const req = http.request({ host: u.hostname, port: u.port, method: opts.method ?? 'GET', path: opts.path ?? '/', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.body !== undefined && opts.chunked) {
      // Two writes so Node uses chunked framing.
      const b = Buffer.from(opts.body);
      req.write(b.subarray(0, b.length >> 1));
      req.end(b.subarray(b.length >> 1));
    } else {
      req.end(opts.body);
    }
  });
}

/** The `code` of a gateway error body, or undefined. */
export function codeOf(r: Reply): string | undefined {
  try {
    return (JSON.parse(r.body) as { code?: string }).code;
  } catch {
    return undefined;
  }
}

export interface LoggedGateway {
  gateway: Gateway;
  /** The gateway's own log lines, parsed. */
  logs: Record<string, unknown>[];
  url(listener?: string): string;
  upstream(name?: string): Upstream;
  reload(doc: unknown): ReturnType<Gateway['apply']>;
  close(): Promise<void>;
}

/** A real gateway in this process whose own log (level info) is captured in `logs`. */
export async function startLoggedGateway(doc: unknown): Promise<LoggedGateway> {
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const loaded = validateConfig(doc);
  if (!loaded.ok) throw new Error(`invalid test config: ${JSON.stringify(loaded.errors)}`);
  const gateway = new Gateway(logger);
  const result = await gateway.apply(loaded.config);
  if (!result.ok) throw new Error(result.error);
  return {
    gateway,
    logs,
    url(listener = 'web') {
      const a = gateway.listenerAddress(listener);
      if (!a) throw new Error(`no listener ${listener}`);
      return `http://${formatHostPort(a)}`;
    },
    upstream: (name = 'up') => gateway.current.upstreams.get(name)!,
    reload(next: unknown) {
      const l = validateConfig(next);
      if (!l.ok) throw new Error(`invalid test config: ${JSON.stringify(l.errors)}`);
      return gateway.apply(l.config);
    },
    close: () => gateway.stop(1000),
  };
}

/** A one-listener, one-upstream, one-route document (round-robin, access log off). */
export function policyConfig(targets: string[], upstream: Record<string, unknown> = {}, route: Record<string, unknown> = {}) {
  return {
    listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
    upstreams: [{ name: 'up', balancer: 'round-robin', targets: targets.map((address) => ({ address })), ...upstream }],
    routes: [{ name: 'r', listener: 'web', upstream: 'up', ...route }],
  };
}
