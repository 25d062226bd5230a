import { createHmac } from 'node:crypto';
/**
 * Portico under test: writes the bench config to a temp file, starts
 * `node dist/cli/main.js start --config FILE` from the repo root (pinned to
 * CPU 1), waits for the admin /health endpoint, and stops it with SIGTERM.
 */
import { existsSync, readdirSync, statSync, type Dirent } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeTempDir, SMALL_BODY } from './nginx.js';
import { Managed, REPO_ROOT, h2Get, httpGet, pinned, waitUntil } from './util.js';

export const PORTICO_MAIN = path.join(REPO_ROOT, 'dist', 'cli', 'main.js');
export const PROFILE_DIR = path.join(REPO_ROOT, '.bench', 'profiles');

export interface PorticoOptions {
  port: number;
  adminPort: number;
  upstreamPort: number;
  accessLog: boolean;
  cpuProf: boolean;
  cpu: number | undefined;
  /** CLI entry to run; default dist/cli/main.js. */
  main?: string;
  /** Listeners, upstreams and routes of the protocol scenarios; absent parts are left out. */
  protocols?: ProtocolPorts;
  /**
   * The web listener's `timeouts.keepAlive` in seconds; absent: the gateway's default. The `idle`
   * scenario sets it above the time its connections stay open.
   */
  keepAliveS?: number;
}

/** Where the protocol scenarios' listeners bind and their upstreams listen. */
export interface ProtocolPorts {
  /** `h2`: an https listener (HTTP/2 by ALPN) with a route like users-api to the same upstream. */
  tls?: { port: number; cert: string; key: string };
  /** `websocket`: a /ws route on the web listener to this ws echo server (HTTP/1.1 upstream). */
  wsUpstreamPort?: number;
  /** `grpc-*`: an http listener (h2c prior knowledge) routing /echo.Echo/ to this h2c upstream. */
  grpc?: { port: number; upstreamPort: number };
}

/** The HS256 key of the `policies` route's jwt-auth (bench only). */
const POLICIES_JWT_KEY = 'bench-only-hs256-signing-key-0123456789';

/**
 * The bearer token the `policies` scenario sends on the `/p/users` route:
 * HS256 (RFC 7519), `sub` = the bench consumer, valid for a day.
 */
export const POLICIES_TOKEN = (() => {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'bench', exp: Math.floor(Date.now() / 1000) + 86_400 })}`;
  return `${body}.${createHmac('sha256', POLICIES_JWT_KEY).update(body).digest('base64url')}`;
})();

/**
 * The config document, in exactly the shape the gateway validates. The
 * `/p/users` route does the same work as `/users` plus the traffic policies
 * of the `policies` scenario: jwt-auth (and the consumer-quota check the
 * compiler adds after it) and a rate-limit high enough never to trigger;
 * `/rl/users` has the rate-limit alone, to tell the two costs apart.
 */
export function porticoConfig(o: Pick<PorticoOptions, 'port' | 'adminPort' | 'upstreamPort' | 'accessLog' | 'protocols' | 'keepAliveS'>): string {
  const p = o.protocols ?? {};
  const listeners: string[] = [];
  const upstreams: string[] = [];
  const routes: string[] = [];
  if (p.tls !== undefined) {
    listeners.push(
      `  - name: web-tls
    protocol: https
    listen: 127.0.0.1:${p.tls.port}
    accessLog: ${o.accessLog}
    tls: { certificates: [{ cert: ${JSON.stringify(p.tls.cert)}, key: ${JSON.stringify(p.tls.key)}, default: true }] }`,
    );
    // As users-api, without the host match: h2load's :authority is 127.0.0.1:PORT.
    routes.push(`  - name: users-tls
    listener: web-tls
    match: { pathPrefix: /users, methods: [GET, POST] }
    stripPrefix: true
    rewrite: [{ pattern: "^/v1/(.*)$", replacement: "/v2/$1" }]
    requestHeaders: { set: { X-Gateway: portico }, remove: [X-Debug] }
    responseHeaders: { set: { X-Served-By: portico } }
    upstream: users`);
  }
  if (p.wsUpstreamPort !== undefined) {
    upstreams.push(`  - { name: ws-echo, targets: [{ address: "127.0.0.1:${p.wsUpstreamPort}" }] }`);
    routes.push('  - { name: ws, listener: web, match: { pathPrefix: /ws }, upstream: ws-echo }');
  }
  if (p.grpc !== undefined) {
    listeners.push(`  - { name: grpc, protocol: http, listen: 127.0.0.1:${p.grpc.port}, accessLog: ${o.accessLog} }`);
    upstreams.push(`  - { name: echo-grpc, protocol: h2c, targets: [{ address: "127.0.0.1:${p.grpc.upstreamPort}" }] }`);
    routes.push('  - { name: echo, listener: grpc, match: { pathPrefix: /echo.Echo/ }, upstream: echo-grpc }');
  }
  const more = (lines: string[]): string => (lines.length > 0 ? lines.join('\n') + '\n' : '');
  return `admin: { listen: 127.0.0.1:${o.adminPort} }
listeners:
  - { name: web, protocol: http, listen: 127.0.0.1:${o.port}, accessLog: ${o.accessLog}${o.keepAliveS !== undefined ? `, timeouts: { keepAlive: ${o.keepAliveS}s }` : ''} }
${more(listeners)}upstreams:
  - name: users
    balancer: weighted-round-robin
    targets: [{ address: "127.0.0.1:${o.upstreamPort}", weight: 1 }]
    timeouts: { connect: 2s, response: 30s, idle: 60s }
${more(upstreams)}consumers:
  - { id: bench }
routes:
  - name: users-api
    listener: web
    match: { host: "*.example.com", pathPrefix: /users, methods: [GET, POST] }
    stripPrefix: true
    rewrite: [{ pattern: "^/v1/(.*)$", replacement: "/v2/$1" }]
    requestHeaders: { set: { X-Gateway: portico }, remove: [X-Debug] }
    responseHeaders: { set: { X-Served-By: portico } }
    upstream: users
  - name: users-policies
    listener: web
    match: { host: "*.example.com", pathPrefix: /p/users, methods: [GET, POST] }
    stripPrefix: true
    rewrite: [{ pattern: "^/v1/(.*)$", replacement: "/v2/$1" }]
    requestHeaders: { set: { X-Gateway: portico }, remove: [X-Debug] }
    responseHeaders: { set: { X-Served-By: portico } }
    middlewares:
      - jwt-auth: { signingKey: "${POLICIES_JWT_KEY}" }
      - rate-limit: { rate: 1e9 }
    upstream: users
  - name: users-ratelimit
    listener: web
    match: { host: "*.example.com", pathPrefix: /rl/users, methods: [GET, POST] }
    stripPrefix: true
    rewrite: [{ pattern: "^/v1/(.*)$", replacement: "/v2/$1" }]
    requestHeaders: { set: { X-Gateway: portico }, remove: [X-Debug] }
    responseHeaders: { set: { X-Served-By: portico } }
    middlewares:
      - rate-limit: { rate: 1e9 }
    upstream: users
${more(routes)}`;
}

/**
 * Newest modification time of the .js files next to and below the entry's
 * package dir (dist/), as an ISO string: two Portico starts with different
 * stamps ran different builds (dist/ is rebuilt by \`npm run build\`).
 */
export function buildStamp(main: string): string {
  const root = path.resolve(path.dirname(main), '..');
  let newest = 0;
  const walk = (dir: string): void => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules') walk(p);
      } else if (e.name.endsWith('.js')) {
        try {
          newest = Math.max(newest, statSync(p).mtimeMs);
        } catch {
          /* removed meanwhile */
        }
      }
    }
  };
  walk(root);
  return newest > 0 ? new Date(newest).toISOString() : 'unknown';
}

export interface RunningPortico {
  /** buildStamp() of the build this process loaded. */
  build: string;
  proc: Managed;
  port: number;
  adminPort: number;
  /** Things the sanity request noticed (wrong status, missing header, ...). */
  warnings: string[];
  /** Stop with SIGTERM and wait; returns notes (non-zero exit, profile files written). */
  stop(): Promise<string[]>;
}

export async function startPortico(name: string, o: PorticoOptions): Promise<RunningPortico> {
  const main = o.main ?? PORTICO_MAIN;
  if (!existsSync(main)) {
    throw new Error(`${name}: ${path.relative(REPO_ROOT, main)} not found (run \`npm run build\`, or pass --no-portico)`);
  }
  const dir = await makeTempDir('portico');
  const configPath = path.join(dir, 'portico.yaml');
  await writeFile(configPath, porticoConfig(o));

  // The same V8 flags as the `portico` binary's shebang and `npm start` (see README, Tuning).
  const nodeArgs: string[] = ['--max-semi-space-size=32'];
  let profilesBefore = new Set<string>();
  if (o.cpuProf) {
    await mkdir(PROFILE_DIR, { recursive: true });
    profilesBefore = new Set(await readdir(PROFILE_DIR));
    nodeArgs.push('--cpu-prof', '--cpu-prof-dir', PROFILE_DIR);
  }
  const build = buildStamp(main);
  const [cmd, args] = pinned(o.cpu, process.execPath, [...nodeArgs, main, 'start', '--config', configPath]);
  // With the access log on, stdout carries one line per request: discard it
  // (it is still produced and written), keep stderr for diagnostics.
  const proc = new Managed(name, cmd, args, {
    cwd: REPO_ROOT,
    stdio: ['ignore', o.accessLog ? 'ignore' : 'pipe', 'pipe'],
    stopSignal: 'SIGTERM',
  });

  await waitUntil(`${name} admin /health`, async () => (await httpGet(o.adminPort, '/health', {}, 1000)).status === 200, {
    intervalMs: 50,
    timeoutMs: 10_000,
    abort: () => proc.exitReason(),
  });

  // One request through the route, to catch a broken route before measuring.
  const warnings: string[] = [];
  try {
    const r = await httpGet(o.port, '/users/small', { host: 'api.example.com', 'x-debug': '1' });
    if (r.status !== 200) warnings.push(`GET /users/small through ${name} returned ${r.status}: ${r.body.toString('utf8').slice(0, 200)}`);
    else {
      if (r.body.toString('utf8') !== SMALL_BODY) warnings.push(`GET /users/small through ${name}: unexpected body ${JSON.stringify(r.body.toString('utf8').slice(0, 80))}`);
      if (r.headers['x-served-by'] !== 'portico') warnings.push(`GET /users/small through ${name}: response lacks X-Served-By: portico`);
    }
  } catch (err) {
    warnings.push(`GET /users/small through ${name} failed: ${(err as Error).message}`);
  }
  try {
    const r = await httpGet(o.port, '/p/users/small', { host: 'api.example.com', authorization: `Bearer ${POLICIES_TOKEN}` });
    if (r.status !== 200) warnings.push(`GET /p/users/small (policies) through ${name} returned ${r.status}: ${r.body.toString('utf8').slice(0, 200)}`);
    else if (r.headers['ratelimit'] === undefined) warnings.push(`GET /p/users/small through ${name}: response lacks the RateLimit header`);
  } catch (err) {
    warnings.push(`GET /p/users/small through ${name} failed: ${(err as Error).message}`);
  }

  if (o.protocols?.tls !== undefined) {
    try {
      const r = await h2Get(o.protocols.tls.port, '/users/small', true);
      if (r.status !== 200) warnings.push(`HTTP/2 GET /users/small on ${name}'s https listener returned ${r.status}: ${r.body.toString('utf8').slice(0, 200)}`);
      else if (r.body.toString('utf8') !== SMALL_BODY) warnings.push(`HTTP/2 GET /users/small on ${name}'s https listener: unexpected body`);
    } catch (err) {
      warnings.push(`HTTP/2 GET /users/small on ${name}'s https listener failed: ${(err as Error).message}`);
    }
  }

  return {
    build,
    proc,
    port: o.port,
    adminPort: o.adminPort,
    warnings,
    stop: () => stopPortico(name, proc, o.cpuProf ? profilesBefore : null),
  };
}

/**
 * Stops a Portico started by the bench (SIGTERM, graceful) and returns
 * notes: an unclean exit, and the CPU profiles written since `profilesBefore`
 * (null when profiling was off).
 */
export async function stopPortico(name: string, proc: Managed, profilesBefore: ReadonlySet<string> | null): Promise<string[]> {
  const notes: string[] = [];
  await proc.stop(15_000);
  if (proc.exitSignal !== null) notes.push(`${name} ended by signal ${proc.exitSignal} after SIGTERM (not a graceful exit)`);
  else if (proc.exitCode !== 0) notes.push(`${name} exited with code ${String(proc.exitCode)} after SIGTERM:\n${proc.output.toString().trim().slice(-2000)}`);
  if (profilesBefore !== null) {
    const after = (await readdir(PROFILE_DIR).catch(() => [] as string[])).filter((f) => !profilesBefore.has(f) && f.endsWith('.cpuprofile'));
    notes.push(
      after.length > 0
        ? `${name} CPU profile: ${after.map((f) => path.relative(REPO_ROOT, path.join(PROFILE_DIR, f))).join(', ')}`
        : `${name}: no CPU profile was written (did it exit gracefully?)`,
    );
  }
  return notes;
}
