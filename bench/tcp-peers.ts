/**
 * The processes of the TCP scenarios (`tcp-bulk`, `tcp-connect`): the bulk
 * server (iperf3 -s, or bench/tcp-bulk.ts sink), and the four proxies put
 * in front of a target — Portico with one `protocol: tcp` listener,
 * HAProxy in `mode tcp` (one thread), nginx's `stream` module (one worker)
 * and the bare Node pipe (bench/tcp-pipe.ts). Each is a `Managed` child
 * pinned to the CPU it is given; config files live in a temp dir that
 * cleanup() removes. Readiness is read from /proc/net/tcp (a LISTEN
 * socket on the port), so no probe connection reaches the target: iperf3's
 * server takes any connection as the start of a test.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir, nginxMainContext } from './nginx.js';
import { PORTICO_MAIN, PROFILE_DIR, buildStamp, stopPortico } from './portico.js';
import { Managed, REPO_ROOT, findBinary, httpGet, pinned, waitUntil } from './util.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** A proxy or server of the TCP scenarios. `stop()` returns notes (profile paths, unclean exits). */
export interface TcpProcess {
  name: string;
  proc: Managed;
  port: number;
  stop(): Promise<string[]>;
}

/** True when a socket of this machine listens on 127.0.0.1:port (or any address), per /proc/net/tcp{,6}. */
function listening(port: number): boolean | undefined {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  let seen = false;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    seen = true;
    // "  sl  local_address rem_address   st ...": state 0A is LISTEN.
    for (const line of text.split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '0A' && f[1]?.endsWith(`:${hex}`)) return true;
    }
  }
  return seen ? false : undefined;
}

/** A TCP connect to 127.0.0.1:port that is closed at once: the fallback readiness check without /proc. */
function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Waits until `port` is listening, failing early when the process exits. */
export function waitListening(what: string, port: number, proc: Managed): Promise<void> {
  return waitUntil(`${what} listening on ${port}`, async () => listening(port) ?? (await connects(port)), { intervalMs: 25, abort: () => proc.exitReason() });
}

async function started(name: string, proc: Managed, port: number): Promise<TcpProcess> {
  await waitListening(name, port, proc);
  return {
    name,
    proc,
    port,
    async stop() {
      await proc.stop(5_000);
      return [];
    },
  };
}

const NODE_FLAGS = ['--max-semi-space-size=32'];

// --- bulk servers ---

export const iperf3Binary = (): string | undefined => findBinary('iperf3');

/** `iperf3 -s` on 127.0.0.1:port: one test at a time, kept running between tests. */
export function startIperf3Server(bin: string, port: number, cpu: number | undefined): Promise<TcpProcess> {
  const [cmd, args] = pinned(cpu, bin, ['-s', '-B', '127.0.0.1', '-p', String(port)]);
  return started('iperf3 server', new Managed('iperf3 server', cmd, args), port);
}

/** bench/tcp-bulk.ts in sink mode: reads and drops whatever it is sent. */
export function startBulkSink(port: number, cpu: number | undefined): Promise<TcpProcess> {
  const [cmd, args] = pinned(cpu, process.execPath, [...NODE_FLAGS, path.join(HERE, 'tcp-bulk.js'), 'sink', String(port)]);
  return started('node bulk sink', new Managed('node bulk sink', cmd, args), port);
}

// --- proxies ---

export interface ProxyOptions {
  /** Where the proxy listens (127.0.0.1). */
  port: number;
  /** The target (127.0.0.1). */
  targetPort: number;
  cpu: number | undefined;
}

/**
 * Portico with one `protocol: tcp` listener to a one-target upstream,
 * every other setting at its default (TCP keep-alive 60 s, 64 KiB
 * buffers, idle timeout 1 h, retry 2) except the access log, which is off
 * as in the HTTP scenarios.
 */
export function tcpPorticoConfig(o: { port: number; adminPort: number; targetPort: number }): string {
  return `admin: { listen: 127.0.0.1:${o.adminPort} }
listeners:
  - { name: tcp, protocol: tcp, listen: 127.0.0.1:${o.port}, upstream: tcp-target, accessLog: false }
upstreams:
  - { name: tcp-target, targets: [{ address: "127.0.0.1:${o.targetPort}" }] }
`;
}

export async function startTcpPortico(o: ProxyOptions & { adminPort: number; cpuProf: boolean; main?: string }): Promise<TcpProcess & { build: string }> {
  const main = o.main ?? PORTICO_MAIN;
  if (!existsSync(main)) throw new Error(`${path.relative(REPO_ROOT, main)} not found (run \`npm run build\`)`);
  const dir = await makeTempDir('portico-tcp');
  const configPath = path.join(dir, 'portico.yaml');
  await writeFile(configPath, tcpPorticoConfig(o));
  const nodeArgs = [...NODE_FLAGS];
  let before = new Set<string>();
  if (o.cpuProf) {
    await mkdir(PROFILE_DIR, { recursive: true });
    before = new Set(await readdir(PROFILE_DIR));
    nodeArgs.push('--cpu-prof', '--cpu-prof-dir', PROFILE_DIR);
  }
  const build = buildStamp(main);
  const [cmd, args] = pinned(o.cpu, process.execPath, [...nodeArgs, main, 'start', '--config', configPath]);
  const name = 'portico (tcp)';
  const proc = new Managed(name, cmd, args, { cwd: REPO_ROOT, stopSignal: 'SIGTERM' });
  await waitUntil(`${name} admin /health`, async () => (await httpGet(o.adminPort, '/health', {}, 1000)).status === 200, {
    abort: () => proc.exitReason(),
  });
  await waitListening(name, o.port, proc);
  return {
    name,
    proc,
    port: o.port,
    build,
    stop: () => stopPortico(name, proc, o.cpuProf ? before : null),
  };
}

export const haproxyBinary = (): string | undefined => findBinary('haproxy');

/**
 * HAProxy 2.x in the foreground (`-db`), one thread, `mode tcp`, one
 * server, no health checks and no logging: the C yardstick.
 */
export async function startHaproxy(bin: string, o: ProxyOptions): Promise<TcpProcess> {
  const dir = await makeTempDir('haproxy');
  const cfg = path.join(dir, 'haproxy.cfg');
  await writeFile(
    cfg,
    `# generated by bench/tcp-peers.ts
global
  nbthread 1
  maxconn 4096

defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h

frontend bench
  bind 127.0.0.1:${o.port}
  default_backend target

backend target
  server t1 127.0.0.1:${o.targetPort}
`,
  );
  const [cmd, args] = pinned(o.cpu, bin, ['-db', '-f', cfg]);
  return started('haproxy', new Managed('haproxy', cmd, args, { cwd: dir }), o.port);
}

/**
 * How nginx gets its `stream` module: built in, a loadable module file
 * (Debian's libnginx-mod-stream), or not at all (undefined).
 */
export function nginxStreamModule(nginxBin: string | undefined): { load: string | undefined } | undefined {
  if (nginxBin === undefined) return undefined;
  const r = spawnSync(nginxBin, ['-V'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const flags = `${r.stderr ?? ''}${r.stdout ?? ''}`;
  if (/--with-stream(\s|$)/.test(flags)) return { load: undefined };
  if (!flags.includes('--with-stream=dynamic')) return undefined;
  const modulesPath = /--modules-path=(\S+)/.exec(flags)?.[1] ?? '/usr/lib/nginx/modules';
  const so = path.join(modulesPath, 'ngx_stream_module.so');
  return existsSync(so) ? { load: so } : undefined;
}

/** nginx (1 worker) with one `stream` server proxying to the target. */
export async function startNginxStream(bin: string, module: { load: string | undefined }, o: ProxyOptions): Promise<TcpProcess> {
  const prefix = await makeTempDir('nginx-stream');
  const p = (rel: string): string => path.join(prefix, rel);
  const conf = `${nginxMainContext(prefix, 'bench/tcp-peers.ts', module.load !== undefined ? `load_module ${module.load};\n` : '')}
stream {
  server {
    listen 127.0.0.1:${o.port} backlog=4096;
    proxy_pass 127.0.0.1:${o.targetPort};
  }
}
`;
  await writeFile(p('nginx.conf'), conf);
  const [cmd, args] = pinned(o.cpu, bin, ['-p', prefix + '/', '-c', p('nginx.conf'), '-e', p('error.log')]);
  return started('nginx stream', new Managed('nginx stream', cmd, args), o.port);
}

/** bench/tcp-pipe.ts: the bare Node pipe. */
export function startNodePipe(o: ProxyOptions): Promise<TcpProcess> {
  const [cmd, args] = pinned(o.cpu, process.execPath, [...NODE_FLAGS, path.join(HERE, 'tcp-pipe.js'), String(o.port), String(o.targetPort)]);
  return started('node pipe', new Managed('node pipe', cmd, args), o.port);
}
