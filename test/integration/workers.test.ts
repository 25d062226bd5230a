// `workers: N` through the real binary: N worker processes serve one port
// (SO_REUSEPORT where Node has it, else node:cluster's shared handle), the
// primary forwards SIGHUP and SIGTERM, replaces a worker that dies, and a
// worker that cannot start fails the start. Which process holds which socket
// is read from /proc (Linux), the kernel's own account.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { runCli, startCli, stopAfter, tempDir, type Running } from '../helpers/cli.js';
import { freePort } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

// ---------------------------------------------------------------- /proc

interface TcpEntry {
  localPort: number;
  remotePort: number;
  /** /proc/net/tcp `st`: 0A = LISTEN, 01 = ESTABLISHED. */
  state: string;
  inode: string;
}

/** Every TCP socket of this network namespace (IPv4 and IPv6), from /proc/net/tcp{,6}. */
function tcpTable(): TcpEntry[] {
  const rows: TcpEntry[] = [];
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.trim().split('\n').slice(1)) {
      const c = line.trim().split(/\s+/);
      rows.push({ localPort: parseInt(c[1]!.split(':')[1]!, 16), remotePort: parseInt(c[2]!.split(':')[1]!, 16), state: c[3]!, inode: c[9]! });
    }
  }
  return rows;
}

/** Socket inodes held open by `pid` (its fd table). */
function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  let fds: string[] = [];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return inodes;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

/** Which of `pids` hold a listening socket on `port` (one entry per socket and holder). */
function listeningHolders(port: number, pids: number[]): number[] {
  const listening = tcpTable().filter((e) => e.state === '0A' && e.localPort === port);
  const holders: number[] = [];
  for (const pid of pids) {
    const inodes = socketInodes(pid);
    for (const e of listening) if (inodes.has(e.inode)) holders.push(pid);
  }
  return holders.sort();
}

function parentOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/** Whether `pid` runs (a zombie not yet reaped counts as exited). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- clients

interface Held {
  socket: net.Socket;
  body: string;
}

/** One GET / over a new connection that stays open afterwards (HTTP/1.1 keep-alive), with its response body. */
function getAndHold(port: number): Promise<Held> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(new Error('no response within 10 s')), 10_000);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('connect', () => socket.write('GET / HTTP/1.1\r\nHost: workers.test\r\n\r\n'));
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(buf.subarray(0, end).toString())?.[1] ?? NaN);
      if (!(buf.length >= end + 4 + length)) return;
      clearTimeout(timer);
      socket.removeAllListeners('data');
      resolve({ socket, body: buf.subarray(end + 4, end + 4 + length).toString() });
    });
  });
}

/**
 * Opens `n` connections at once, each answered, and returns each body with
 * the worker process holding the gateway's end of that connection.
 */
async function serveAndAttribute(port: number, n: number, workers: number[]): Promise<{ body: string; worker: number | undefined }[]> {
  const held = await Promise.all(Array.from({ length: n }, () => getAndHold(port)));
  try {
    const table = tcpTable();
    const owners = new Map<string, number>();
    for (const pid of workers) for (const inode of socketInodes(pid)) owners.set(inode, pid);
    return held.map((h) => {
      // The gateway's end: local port `port`, remote port the client's local port.
      const entry = table.find((e) => e.state === '01' && e.localPort === port && e.remotePort === h.socket.localPort);
      return { body: h.body, worker: entry && owners.get(entry.inode) };
    });
  } finally {
    for (const h of held) h.socket.destroy();
  }
}

/** GET over a fresh connection (agent: false): the status code. */
function status(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------- fixtures

/** A TCP echo server for the tcp listener's upstream. */
async function echoServer(t: TestContext): Promise<string> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

function echoOnce(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.end(text));
    let got = '';
    s.setTimeout(10_000, () => s.destroy(new Error('echo timed out')));
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.once('end', () => {
      s.destroy();
      resolve(got);
    });
    s.once('error', reject);
  });
}

/** A UDP echo server for the udp listener's upstream. */
async function udpEchoServer(t: TestContext): Promise<string> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, from) => socket.send(msg, from.port, from.address));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return `127.0.0.1:${socket.address().port}`;
}

/** One datagram to the gateway's udp listener and the one that comes back. */
function udpEchoOnce(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const client = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      client.close();
      reject(new Error('no datagram back within 10 s'));
    }, 10_000);
    client.once('message', (msg) => {
      clearTimeout(timer);
      client.close();
      resolve(msg.toString());
    });
    client.send(text, port, '127.0.0.1');
  });
}

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

interface Ports {
  web: number;
  tcp: number;
  udp: number;
  admin: number;
}

interface Echoes {
  tcp: string;
  udp: string;
}

function config(dir: string, ports: Ports, body: string, echo: Echoes) {
  return {
    workers: 2,
    pidFile: path.join(dir, 'portico.pid'),
    shutdownTimeout: '2s',
    log: { level: 'info' },
    admin: { listen: `127.0.0.1:${ports.admin}` },
    listeners: [
      { name: 'web', protocol: 'http', listen: `127.0.0.1:${ports.web}`, accessLog: false },
      { name: 'echo', protocol: 'tcp', listen: `127.0.0.1:${ports.tcp}`, upstream: 'echo' },
      { name: 'datagrams', protocol: 'udp', listen: `127.0.0.1:${ports.udp}`, upstream: 'udp-echo' },
    ],
    upstreams: [
      { name: 'echo', targets: [{ address: echo.tcp }] },
      { name: 'udp-echo', targets: [{ address: echo.udp }] },
    ],
    routes: [{ name: 'hello', listener: 'web', respond: { body } }],
  };
}

async function ports(): Promise<Ports> {
  return { web: await freePort(), tcp: await freePort(), udp: await freeUdpPort(), admin: await freePort() };
}

/** The sharing this Node should pick on Linux: SO_REUSEPORT from Node 22.12 / 23.1 on. */
function expectedSharing(): string {
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
  const reusePort = os.platform() === 'linux' && ((major === 22 && minor >= 12) || (major === 23 && minor >= 1) || major >= 24);
  return reusePort ? 'reuse-port' : 'cluster';
}

interface Started {
  gw: Running;
  workers: number[];
  sharing: string;
}

async function start(t: TestContext, file: string): Promise<Started> {
  const gw = await startCli(file);
  stopAfter(t, gw.child, gw.exited, 10_000);
  const line = gw.logs.find((l) => l.msg === 'portico started')!;
  return { gw, workers: line.workerPids as number[], sharing: line.sharing as string };
}

// ---------------------------------------------------------------- tests

test('workers: 2 — two processes serve one port, SIGHUP reloads both, SIGTERM stops all', async (t) => {
  const dir = tempDir(t, 'workers');
  const echo = { tcp: await echoServer(t), udp: await udpEchoServer(t) };
  const p = await ports();
  const file = path.join(dir, 'portico.yaml');
  fs.writeFileSync(file, stringify(config(dir, p, 'v1', echo)));
  const { gw, workers, sharing } = await start(t, file);
  const primary = gw.child.pid!;

  // The start line: two workers, children of the primary; the primary's pid in the pid file.
  assert.equal(sharing, expectedSharing());
  assert.equal(workers.length, 2);
  assert.equal(new Set(workers).size, 2);
  for (const pid of workers) {
    assert.notEqual(pid, primary);
    assert.equal(parentOf(pid), primary, `worker ${pid} is not a child of the primary`);
  }
  assert.equal(fs.readFileSync(path.join(dir, 'portico.pid'), 'utf8'), `${primary}\n`);
  // Listener URLs carry their protocol (an L4 listener is not http://).
  assert.equal(gw.urls.web, `http://127.0.0.1:${p.web}`);
  assert.equal(gw.urls.echo, `tcp://127.0.0.1:${p.tcp}`);
  assert.equal(gw.urls.datagrams, `udp://127.0.0.1:${p.udp}`);
  assert.equal(gw.admin, `http://127.0.0.1:${p.admin}`);

  // Who holds the listening socket: each worker its own (SO_REUSEPORT), or the primary alone (cluster hands connections over).
  const holders = listeningHolders(p.web, [primary, ...workers]);
  if (sharing === 'reuse-port') assert.deepEqual(holders, [...workers].sort());
  else assert.deepEqual(holders, [primary]);
  // The admin API: bound by the first worker only.
  assert.deepEqual(listeningHolders(p.admin, [primary, ...workers]), [workers[0]]);
  assert.equal(await status(`${gw.admin}/health`), 200);

  // 32 connections at once: every one answered, and both workers hold some of them.
  const before = await serveAndAttribute(p.web, 32, workers);
  assert.deepEqual(new Set(before.map((r) => r.body)), new Set(['v1']));
  assert.deepEqual(new Set(before.map((r) => r.worker)), new Set(workers), 'connections not spread over both workers');
  // The L4 listeners too (bound by both workers: a second exclusive bind would have failed the start).
  assert.equal(await echoOnce(p.tcp, 'ping over tcp'), 'ping over tcp');
  assert.equal(await udpEchoOnce(p.udp, 'ping over udp'), 'ping over udp');

  // SIGHUP to the primary: each worker reloads (its own log line), then every connection sees the new body.
  fs.writeFileSync(file, stringify(config(dir, p, 'v2', echo)));
  gw.child.kill('SIGHUP');
  await waitFor(() => workers.every((pid) => gw.logs.some((l) => l.msg === 'config reloaded' && l.pid === pid)), 'both workers to reload');
  const after = await serveAndAttribute(p.web, 32, workers);
  assert.deepEqual(new Set(after.map((r) => r.body)), new Set(['v2']));
  assert.deepEqual(new Set(after.map((r) => r.worker)), new Set(workers));

  // SIGTERM to the primary: everything exits, the port is free, the pid file is gone.
  assert.equal(await gw.stop('SIGTERM'), 0);
  for (const pid of workers) await waitFor(() => !alive(pid), `worker ${pid} to exit`);
  assert.equal(fs.existsSync(path.join(dir, 'portico.pid')), false);
  assert.deepEqual(listeningHolders(p.web, [primary, ...workers]), []);
  const refused = await new Promise<string>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: p.web });
    s.once('connect', () => (s.destroy(), resolve('connected')));
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
  assert.equal(refused, 'ECONNREFUSED');
});

test('workers: a worker that dies is replaced in its slot and serves again', async (t) => {
  const dir = tempDir(t, 'workers');
  const echo = { tcp: await echoServer(t), udp: await udpEchoServer(t) };
  const p = await ports();
  const file = path.join(dir, 'portico.yaml');
  fs.writeFileSync(file, stringify(config(dir, p, 'alive', echo)));
  const { gw, workers } = await start(t, file);

  // Kill the first worker (the admin API's): its slot is refilled, admin included.
  process.kill(workers[0]!, 'SIGKILL');
  const replaced = await waitFor(() => gw.logs.find((l) => l.msg === 'worker replaced'), 'the worker to be replaced');
  assert.equal(replaced.worker, 0);
  const fresh = replaced.workerPid as number;
  assert.ok(!workers.includes(fresh));
  assert.equal(parentOf(fresh), gw.child.pid);
  const exited = gw.logs.find((l) => l.msg === 'worker exited unexpectedly; replacing it')!;
  assert.equal(exited.workerPid, workers[0]);
  assert.equal(exited.signal, 'SIGKILL');

  const now = [fresh, workers[1]!];
  const served = await serveAndAttribute(p.web, 32, now);
  assert.deepEqual(new Set(served.map((r) => r.body)), new Set(['alive']));
  assert.deepEqual(new Set(served.map((r) => r.worker)), new Set(now));
  assert.deepEqual(listeningHolders(p.admin, [gw.child.pid!, ...now]), [fresh]);
  assert.equal(await status(`${gw.admin}/health`), 200);

  assert.equal(await gw.stop('SIGTERM'), 0);
  assert.equal(fs.existsSync(path.join(dir, 'portico.pid')), false);
});

test('workers: a port in use fails the start — exit 1, no worker left, pid file removed', async (t) => {
  const dir = tempDir(t, 'workers');
  const echo = { tcp: await echoServer(t), udp: await udpEchoServer(t) };
  const p = await ports();
  // Something else holds the web port (bound exclusively, without SO_REUSEPORT).
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen({ host: '127.0.0.1', port: p.web, exclusive: true }, resolve));
  t.after(() => new Promise<void>((resolve) => squatter.close(() => resolve())));
  const file = path.join(dir, 'portico.yaml');
  fs.writeFileSync(file, stringify(config(dir, p, 'never', echo)));

  const res = await runCli(['start', '--config', file], { timeoutMs: 30_000 });
  assert.equal(res.code, 1, res.stderr);
  const lines = res.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const cannot = lines.find((l) => l.msg === 'cannot start');
  assert.ok(cannot, res.stdout);
  assert.match(String(cannot.error), new RegExp(`cannot listen on 127\\.0\\.0\\.1:${p.web}: .*EADDRINUSE`));
  assert.ok(lines.some((l) => l.msg === 'worker failed to start; stopping'), res.stdout);
  assert.ok(!lines.some((l) => l.msg === 'portico started'));
  assert.equal(fs.existsSync(path.join(dir, 'portico.pid')), false);
  // No worker outlived the primary: none holds the other ports.
  const pids = [...new Set(lines.map((l) => l.pid as number))];
  for (const pid of pids) assert.equal(alive(pid), false, `process ${pid} still running`);
});

test('workers: a slot that keeps dying (a 6th time within a minute) stops everything with exit 1', async (t) => {
  const dir = tempDir(t, 'workers');
  const echo = { tcp: await echoServer(t), udp: await udpEchoServer(t) };
  const p = await ports();
  const file = path.join(dir, 'portico.yaml');
  fs.writeFileSync(file, stringify(config(dir, p, 'crashy', echo)));
  const { gw, workers } = await start(t, file);

  let victim = workers[1]!;
  for (let replaced = 1; replaced <= 5; replaced++) {
    process.kill(victim, 'SIGKILL');
    const line = await waitFor(() => gw.logs.filter((l) => l.msg === 'worker replaced' && l.worker === 1)[replaced - 1], `replacement ${replaced}`);
    victim = line.workerPid as number;
  }
  // The backoff doubles: 100, 200, 400, 800, 1600 ms.
  const delays = gw.logs.filter((l) => l.msg === 'worker exited unexpectedly; replacing it').map((l) => l.restartInMs);
  assert.deepEqual(delays, [100, 200, 400, 800, 1600]);

  process.kill(victim, 'SIGKILL');
  assert.equal(await gw.exited, 1);
  const gaveUp = gw.logs.find((l) => l.msg === 'worker keeps exiting; stopping');
  assert.ok(gaveUp);
  assert.equal(gaveUp.worker, 1);
  assert.equal(fs.existsSync(path.join(dir, 'portico.pid')), false);
  assert.equal(alive(workers[0]!), false, 'the healthy worker was stopped too');
});
