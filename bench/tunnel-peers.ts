/**
 * The processes of the tunnel scenario (bench/tunnel.ts): the two reverse
 * tunnels compared — OpenSSH `ssh -R` (a throwaway sshd on a loopback port
 * and an `ssh -N -R` client) and Portico (a gateway with a `protocol:
 * tunnel` listener and a `portico agent`) — plus the delay relay of the
 * long-link measure, the idle origin and the RSS readings of the memory
 * measure, and the installation of what they need.
 *
 * Every process is a `Managed` child (stopped by cleanup() on any exit) in
 * a temp dir that cleanup() removes; keys, configs, pid files and logs are
 * written only there. Both ends of one tunnel are pinned to the same CPU.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir } from './nginx.js';
import { PORTICO_MAIN, PROFILE_DIR, stopPortico } from './portico.js';
import { waitListening } from './tcp-peers.js';
import { makeCert } from './tls-cert.js';
import { Managed, REPO_ROOT, findBinary, httpGet, pinned, waitUntil } from './util.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const NODE_FLAGS = ['--max-semi-space-size=32'];

// --- installation ---

/** Binaries the tunnel scenario runs, and the Debian package of each. */
const TUNNEL_DEPS: readonly { binary: string; pkg: string }[] = [
  { binary: 'sshd', pkg: 'openssh-server' },
  { binary: 'ssh', pkg: 'openssh-client' },
  { binary: 'ssh-keygen', pkg: 'openssh-client' },
  { binary: 'iperf3', pkg: 'iperf3' },
  // The origin of the request/response and connect measures, and their load generator.
  { binary: 'nginx', pkg: 'nginx' },
  { binary: 'wrk', pkg: 'wrk' },
];

/**
 * Installs what the tunnel scenario lacks with apt-get, as root (bounded:
 * update 120 s, install 240 s). Never throws: returns notes on what is
 * still missing, and the bench skips what needs it.
 */
export function ensureTunnelDeps(): string[] {
  const missing = [...new Set(TUNNEL_DEPS.filter((d) => findBinary(d.binary) === undefined).map((d) => d.pkg))];
  if (missing.length === 0) return [];
  const canInstall = process.getuid?.() === 0 && findBinary('apt-get') !== undefined;
  if (!canInstall) return [`tunnel: not installed: ${missing.join(', ')} (as root: apt-get install ${missing.join(' ')})`];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  process.stderr.write(`bench: tunnel: installing ${missing.join(', ')} with apt-get\n`);
  spawnSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'inherit', 'inherit'], env, timeout: 120_000 });
  // Packaged services are not started by the install where policy-rc.d forbids it; the bench never uses them.
  spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: ['ignore', 'inherit', 'inherit'], env, timeout: 240_000 });
  const still = [...new Set(TUNNEL_DEPS.filter((d) => findBinary(d.binary) === undefined).map((d) => d.pkg))];
  return still.length > 0 ? [`tunnel: apt-get could not install ${still.join(', ')}`] : [];
}

// --- what every tunnel here is ---

/** A running reverse tunnel: its two ends, and the remote ports (on the far end) of each forward. */
export interface Tunnel {
  name: string;
  /** Remote (public) port of each forward, by forward name. */
  ports: Record<string, number>;
  /** The two ends: the one that listens on the remote ports, the one that dials the origins. */
  ends: { name: string; proc: Managed }[];
  /** Why one end is not running, or undefined. */
  exitReason(): string | undefined;
  /** Stops both ends; returns notes (unclean exits, profiles written). */
  stop(): Promise<string[]>;
}

/** A forward: `remotePort` on the tunnel's far end reaches `localPort` on 127.0.0.1 through the tunnel. */
export interface Forward {
  name: string;
  localPort: number;
  remotePort: number;
  /** Portico only: an `http` service (reached by a `{ tunnel: name }` upstream), not a remote port. */
  http?: boolean;
}

// --- OpenSSH ---

/**
 * sshd on 127.0.0.1:`sshPort` with a fresh host key and authorized user key
 * in a temp dir, running as the current user (root here: PermitRootLogin
 * yes), and `ssh -N -R` with one `-R remotePort:127.0.0.1:localPort` per
 * forward, cipher aes128-gcm@openssh.com. `via` makes the client dial that
 * port instead of sshd's (the delay relay in front of sshd). Resolves once
 * every remote port listens.
 */
export async function startSshTunnel(o: { forwards: Forward[]; cpu: number | undefined; sshPort: number; via?: number }): Promise<Tunnel> {
  const sshd = findBinary('sshd');
  const ssh = findBinary('ssh');
  const keygen = findBinary('ssh-keygen');
  if (sshd === undefined || ssh === undefined || keygen === undefined) throw new Error('OpenSSH is not installed (apt-get install openssh-server openssh-client)');
  const dir = await makeTempDir('sshd');
  const p = (f: string): string => path.join(dir, f);
  for (const key of ['host_key', 'user_key']) {
    const r = spawnSync(keygen, ['-q', '-t', 'ed25519', '-N', '', '-C', 'portico-bench', '-f', p(key)], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
    if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr?.toString().trim()}`);
  }
  await writeFile(p('authorized_keys'), readFileSync(p('user_key.pub')));
  // sshd as root refuses to start without its privilege-separation directory (Debian: /run/sshd).
  if (process.getuid?.() === 0 && !existsSync('/run/sshd')) await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  await writeFile(
    p('sshd_config'),
    `# generated by bench/tunnel-peers.ts
ListenAddress 127.0.0.1
Port ${o.sshPort}
HostKey ${p('host_key')}
AuthorizedKeysFile ${p('authorized_keys')}
PidFile ${p('sshd.pid')}
StrictModes no
UsePAM no
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowTcpForwarding yes
GatewayPorts no
PrintMotd no
MaxStartups 100
LogLevel ERROR
`,
  );
  const [dCmd, dArgs] = pinned(o.cpu, sshd, ['-D', '-e', '-f', p('sshd_config')]);
  const server = new Managed('sshd', dCmd, dArgs, { cwd: dir });
  const ends: { name: string; proc: Managed }[] = [{ name: 'sshd', proc: server }];
  const stop = async (): Promise<string[]> => {
    const client = ends[1]?.proc;
    if (client !== undefined) {
      await client.stop(5_000);
      // The session process ends once it sees the client go; the listener must outlive it to reap
      // it (a session orphaned to a pid 1 that does not reap stays a zombie).
      const listener = server.pid;
      if (listener !== undefined) {
        await waitUntil('sshd sessions ending', async () => childPids(listener).length === 0, { intervalMs: 50, timeoutMs: 5_000 }).catch(() => undefined);
      }
    }
    await server.stop(5_000);
    return [];
  };
  try {
    await waitListening('sshd', o.sshPort, server);
    const forwards = o.forwards.filter((f) => f.http !== true).flatMap((f) => ['-R', `127.0.0.1:${f.remotePort}:127.0.0.1:${f.localPort}`]);
    const [cCmd, cArgs] = pinned(o.cpu, ssh, [
      '-N',
      '-F', '/dev/null',
      ...forwards,
      '-o', 'Ciphers=aes128-gcm@openssh.com',
      '-o', 'StrictHostKeyChecking=no',
      '-o', 'UserKnownHostsFile=/dev/null',
      '-o', 'BatchMode=yes',
      '-o', 'IdentitiesOnly=yes',
      '-o', 'ExitOnForwardFailure=yes',
      '-o', 'LogLevel=ERROR',
      '-i', p('user_key'),
      '-p', String(o.via ?? o.sshPort),
      'root@127.0.0.1',
    ]);
    const client = new Managed('ssh -R', cCmd, cArgs, { cwd: dir });
    ends.push({ name: 'ssh', proc: client });
    for (const f of o.forwards) {
      if (f.http !== true) await waitListening(`ssh -R remote port ${f.remotePort}`, f.remotePort, client);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    name: 'ssh -R',
    ports: Object.fromEntries(o.forwards.filter((f) => f.http !== true).map((f) => [f.name, f.remotePort])),
    ends,
    exitReason: () => ends.map((e) => e.proc.exitReason()).find((r) => r !== undefined),
    stop,
  };
}

// --- Portico ---

const AGENT_ID = 'bench';
/** The agent's shared secret (bench only, never leaves loopback). */
const AGENT_TOKEN = 'portico-bench-agent-token-0123456789abcdef';

/** Host names of the `tunnel-http` measure: the same nginx behind a plain upstream and behind a `{ tunnel }` upstream. */
export const PLAIN_HOST = 'plain.example.com';
export const TUNNEL_HOST = 'tunnel.example.com';

export interface PorticoTunnelOptions {
  forwards: Forward[];
  cpu: number | undefined;
  cpuProf: boolean;
  main?: string;
  /** The plain HTTP upstream of the `tunnel-http` measure (the same origin as the `http` forward). */
  plainHttpPort?: number;
  /** A port in front of the tunnel listener (the delay relay) that the agent dials instead of the listener. */
  via?: (tunnelPort: number) => Promise<number>;
  /**
   * How the gateway exposes the tcp forwards: `remotePort` (the agent's services carry a remotePort
   * the gateway opens), or `tcpListener` (the gateway has a `protocol: tcp` listener on that port
   * whose upstream is `{ tunnel: CODE }`: the same path, through the config instead of the agent).
   */
  expose: 'remotePort' | 'tcpListener';
  /** Extra node flags for both ends (diagnostics, e.g. --heapsnapshot-signal=SIGUSR2). */
  nodeArgs?: string[];
}

/** The gateway refused the agent's remote ports (a build that does not open them): retry with `expose: tcpListener`. */
export class RemotePortsRefused extends Error {}

export interface PorticoTunnel extends Tunnel {
  /** The gateway's http listener (routes by Host: PLAIN_HOST, TUNNEL_HOST), when an `http` forward was asked for. */
  httpPort: number | undefined;
}

/**
 * The gateway config: an http listener with two host routes to the same
 * origin (one plain upstream, one `{ tunnel: CODE }` upstream), and a TLS
 * `protocol: tunnel` listener accepting the bench agent with every code and
 * any remote port. maxStreams is raised above the memory measure's 1,000
 * streams plus the http pool, and the access log is off as in the other
 * scenarios; everything else (windows 8 MiB/64 MiB, heartbeats) is at its
 * default.
 */
export function gatewayConfig(o: {
  adminPort: number;
  httpPort: number;
  tunnelPort: number;
  cert: string;
  key: string;
  plainHttpPort?: number;
  httpCode?: string;
  /** `expose: tcpListener`: one tcp listener per forward, to a `{ tunnel: CODE }` upstream. */
  tcpForwards?: Forward[];
}): string {
  const httpParts = o.plainHttpPort !== undefined && o.httpCode !== undefined;
  const tcp = o.tcpForwards ?? [];
  const upstreams = [
    ...(httpParts
      ? [`  - { name: plain, targets: [{ address: "127.0.0.1:${o.plainHttpPort}" }] }`, `  - { name: tunnelled, targets: [{ tunnel: ${o.httpCode} }] }`]
      : []),
    ...tcp.map((f) => `  - { name: tun-${f.name}, targets: [{ tunnel: ${f.name} }] }`),
  ];
  return `# generated by bench/tunnel-peers.ts
admin: { listen: 127.0.0.1:${o.adminPort} }
listeners:
  - { name: web, protocol: http, listen: 127.0.0.1:${o.httpPort}, accessLog: false }
  - name: tunnel
    protocol: tunnel
    listen: 127.0.0.1:${o.tunnelPort}
    tls: { certificates: [{ cert: ${JSON.stringify(o.cert)}, key: ${JSON.stringify(o.key)} }] }
    agents:
      - { id: ${AGENT_ID}, token: ${JSON.stringify(AGENT_TOKEN)}, codes: ["*"], allowPorts: ["1024-65535"] }
    limits: { maxStreams: 8192 }
    accessLog: false
${tcp.map((f) => `  - { name: fwd-${f.name}, protocol: tcp, listen: 127.0.0.1:${f.remotePort}, upstream: tun-${f.name}, accessLog: false }\n`).join('')}${
  upstreams.length > 0 ? `upstreams:\n${upstreams.join('\n')}\n` : ''
}${
  httpParts
    ? `routes:
  - { name: plain, listener: web, match: { host: ${PLAIN_HOST} }, upstream: plain }
  - { name: tunnelled, listener: web, match: { host: ${TUNNEL_HOST} }, upstream: tunnelled }
`
    : ''
}`;
}

/** The agent config: one service per forward (tcp with a remote port, or http reached by a `{ tunnel }` upstream). */
export function agentConfig(o: { server: number; ca: string; forwards: Forward[]; remotePorts: boolean }): string {
  const services = o.forwards.map((f) =>
    f.http === true
      ? `  - { code: ${f.name}, local: "127.0.0.1:${f.localPort}", type: http }`
      : `  - { code: ${f.name}, local: "127.0.0.1:${f.localPort}", type: tcp${o.remotePorts ? `, remotePort: ${f.remotePort}` : ''} }`,
  );
  return `# generated by bench/tunnel-peers.ts
servers: ["127.0.0.1:${o.server}"]
id: ${AGENT_ID}
token: ${JSON.stringify(AGENT_TOKEN)}
tls: { ca: ${JSON.stringify(o.ca)}, serverName: localhost }
log: { level: warn }
services:
${services.join('\n')}
`;
}

/**
 * A Portico gateway and a `portico agent` (same CPU, same V8 flags as the
 * other scenarios, `--cpu-prof` honoured for both), connected over TLS with
 * a fresh self-signed certificate. Resolves once every remote port listens
 * on the gateway and, with an http forward, GET /small answers 200 through
 * the tunnelled route.
 */
export async function startPorticoTunnel(o: PorticoTunnelOptions, freePort: () => Promise<number>): Promise<PorticoTunnel> {
  const main = o.main ?? PORTICO_MAIN;
  if (!existsSync(main)) throw new Error(`${path.relative(REPO_ROOT, main)} not found (run \`npm run build\`)`);
  const dir = await makeTempDir('tunnel');
  const cert = await makeCert(dir);
  const adminPort = await freePort();
  const httpPort = await freePort();
  const tunnelPort = await freePort();
  const httpForward = o.forwards.find((f) => f.http === true);
  await writeFile(
    path.join(dir, 'gateway.yaml'),
    gatewayConfig({
      adminPort,
      httpPort,
      tunnelPort,
      cert: cert.cert,
      key: cert.key,
      plainHttpPort: o.plainHttpPort,
      httpCode: httpForward?.name,
      ...(o.expose === 'tcpListener' ? { tcpForwards: o.forwards.filter((f) => f.http !== true) } : {}),
    }),
  );
  const nodeArgs = [...NODE_FLAGS, ...(o.nodeArgs ?? [])];
  let before: Set<string> | null = null;
  if (o.cpuProf) {
    await mkdir(PROFILE_DIR, { recursive: true });
    before = new Set(await readdir(PROFILE_DIR));
    nodeArgs.push('--cpu-prof', '--cpu-prof-dir', PROFILE_DIR);
  }
  const ends: { name: string; proc: Managed }[] = [];
  const stop = async (): Promise<string[]> => {
    const notes: string[] = [];
    // The agent first: the gateway then sees its session end, as in a real shutdown.
    for (const e of [...ends].reverse()) {
      // Each end's note lists only its own profile: what the previous end wrote counts as "before".
      const seen = before !== null ? new Set(await readdir(PROFILE_DIR).catch(() => [] as string[])) : null;
      notes.push(...(await stopPortico(e.name, e.proc, seen)));
    }
    return notes;
  };
  try {
    const [gCmd, gArgs] = pinned(o.cpu, process.execPath, [...nodeArgs, main, 'start', '--config', path.join(dir, 'gateway.yaml')]);
    const gateway = new Managed('portico gateway', gCmd, gArgs, { cwd: REPO_ROOT, stopSignal: 'SIGTERM' });
    ends.push({ name: 'portico gateway', proc: gateway });
    await waitUntil('portico gateway admin /health', async () => (await httpGet(adminPort, '/health', {}, 1000)).status === 200, { abort: () => gateway.exitReason() });
    const server = o.via !== undefined ? await o.via(tunnelPort) : tunnelPort;
    await writeFile(path.join(dir, 'agent.yaml'), agentConfig({ server, ca: cert.cert, forwards: o.forwards, remotePorts: o.expose === 'remotePort' }));
    // The agent runs as `portico agent` runs it: without the gateway's `npm start` heap flag (a larger young generation is
    // for the gateway's request throughput; the agent's bin starts with Node's defaults).
    const agentArgs = nodeArgs.filter((a) => !NODE_FLAGS.includes(a));
    const [aCmd, aArgs] = pinned(o.cpu, process.execPath, [...agentArgs, main, 'agent', '--config', path.join(dir, 'agent.yaml')]);
    const agent = new Managed('portico agent', aCmd, aArgs, { cwd: REPO_ROOT, stopSignal: 'SIGTERM' });
    ends.push({ name: 'portico agent', proc: agent });
    const abort = (): string | undefined => gateway.exitReason() ?? agent.exitReason();
    if (o.expose === 'tcpListener') {
      // The tcp listeners listen from the start; they lead somewhere once the agent's codes are registered.
      const names = o.forwards.filter((f) => f.http !== true).map((f) => `tun-${f.name}`);
      await waitUntil('the agent\'s services registered at the gateway', async () => registered(adminPort, names), { intervalMs: 50, timeoutMs: 15_000, abort });
    }
    for (const f of o.forwards) {
      if (f.http === true) continue;
      await waitUntil(
        `portico tunnel remote port ${f.remotePort}`,
        async () => {
          if (o.expose === 'remotePort' && /refused[^\n]*remote port/i.test(gateway.output.toString())) throw new RemotePortsRefused('the gateway refused the remote ports');
          return listeningNow(f.remotePort);
        },
        { intervalMs: 25, timeoutMs: 15_000, abort },
      ).catch((err: unknown) => {
        // waitUntil keeps polling on a throwing check; the refusal is read from its message.
        if (err instanceof Error && /refused the remote ports/.test(err.message)) throw new RemotePortsRefused(err.message);
        throw err;
      });
    }
    if (httpForward !== undefined) {
      await waitUntil(
        'GET /small through the tunnelled route',
        async () => (await httpGet(httpPort, '/small', { host: TUNNEL_HOST }, 1000)).status === 200,
        { timeoutMs: 15_000, abort },
      );
    }
  } catch (err) {
    const notes = await stop();
    if (err instanceof RemotePortsRefused) throw err;
    const out = ends.map((e) => `${e.name}: ${e.proc.output.toString().trim().slice(-1500)}`).join('\n');
    throw new Error(`${(err as Error).message}${notes.length ? `\n${notes.join('\n')}` : ''}\n${out}`);
  }
  return {
    name: 'portico',
    ports: Object.fromEntries(o.forwards.filter((f) => f.http !== true).map((f) => [f.name, f.remotePort])),
    ends,
    httpPort: httpForward !== undefined ? httpPort : undefined,
    exitReason: () => ends.map((e) => e.proc.exitReason()).find((r) => r !== undefined),
    stop,
  };
}

/** Whether every upstream named has at least one target in the gateway's GET /status. */
async function registered(adminPort: number, upstreams: string[]): Promise<boolean> {
  const r = await httpGet(adminPort, '/status', {}, 1000);
  if (r.status !== 200) return false;
  const status = JSON.parse(r.body.toString('utf8')) as { upstreams?: { name: string; targets?: unknown[] }[] };
  return upstreams.every((name) => (status.upstreams?.find((u) => u.name === name)?.targets?.length ?? 0) > 0);
}

/** A LISTEN socket on the port, per /proc/net/tcp (no probe connection: iperf3 -s takes any connection as a test). */
function listeningNow(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '0A' && f[1]?.endsWith(hex)) return true;
    }
  }
  return false;
}

// --- the delay relay ---

/** bench/delay-relay.ts on `port`, forwarding to `targetPort` with `delayMs` per direction. */
export async function startDelayRelay(port: number, targetPort: number, delayMs: number, cpu: number | undefined): Promise<Managed> {
  const [cmd, args] = pinned(cpu, process.execPath, [...NODE_FLAGS, path.join(HERE, 'delay-relay.js'), String(port), String(targetPort), String(delayMs)]);
  const proc = new Managed('delay relay', cmd, args);
  await waitListening('delay relay', port, proc);
  return proc;
}

// --- the memory measure ---

/**
 * An origin that accepts connections and never writes: the far end of the
 * idle streams. `live` counts its open connections.
 */
export async function startIdleOrigin(): Promise<{ port: number; live(): number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => s.destroy());
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', 4096, resolve);
  });
  const addr = server.address() as net.AddressInfo;
  return {
    port: addr.port,
    live: () => sockets.size,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Opens `count` TCP connections to 127.0.0.1:port (at most 100 connecting
 * at once) and keeps them open and silent. Rejects on the first error.
 */
export async function openIdle(port: number, count: number): Promise<net.Socket[]> {
  const open: net.Socket[] = [];
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.removeListener('error', reject);
        s.on('error', () => undefined);
        open.push(s);
        resolve();
      });
      s.once('error', reject);
    });
  try {
    for (let i = 0; i < count; i += 100) await Promise.all(Array.from({ length: Math.min(100, count - i) }, one));
  } catch (err) {
    for (const s of open) s.destroy();
    throw err;
  }
  return open;
}

/** Parent pid → child pids, from /proc. */
function processChildren(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      /* exited meanwhile */
    }
  }
  return children;
}

/** The children of `pid`, zombies included (the listener has not reaped them yet). */
function childPids(pid: number): number[] {
  return processChildren().get(pid) ?? [];
}

/** VmRSS of `pid` and every process below it, in bytes (0 when gone). */
export function treeRss(pid: number): number {
  const children = processChildren();
  let total = 0;
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m !== null) total += Number(m[1]) * 1024;
    } catch {
      /* exited meanwhile */
    }
    stack.push(...(children.get(p) ?? []));
  }
  return total;
}
