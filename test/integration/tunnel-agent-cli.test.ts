// `portico agent` as the real binary (dist/cli/main.js):
// - a bad file exits 1 printing the bad field's path;
// - started before the gateway, it keeps running and logs its retries;
//   the gateway comes up later and the agent connects by itself;
// - SIGHUP adds a service and removes another without dropping the
//   connection, while a long transfer on a third keeps flowing;
// - a bad file on SIGHUP keeps the running services and logs why;
// - a wrong token: refused; the token (wrong or right) appears in neither
//   the agent's output nor the gateway binary's.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { CLI, runCli, spawnLogged, startCli, stopAfter, tempDir } from '../helpers/cli.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { TEST_TOKEN, tunnelListener, tunnelPki } from '../helpers/tunnel.js';
import { waitFor } from '../helpers/wait.js';
import type { Pki } from '../helpers/certs.js';

interface AgentProcess {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  output: () => string;
  exited: Promise<number | null>;
  running: () => boolean;
}

/** Spawns `portico agent FILE`; its stdout lines are parsed as JSON; stopped in `t.after`. */
function spawnAgent(t: TestContext | null, file: string, env: NodeJS.ProcessEnv = {}): AgentProcess {
  const { child, logs, output, exited } = spawnLogged(process.execPath, [CLI, 'agent', file], env);
  if (t !== null) stopAfter(t, child, exited);
  return { child, logs, output, exited, running: () => child.exitCode === null && child.signalCode === null };
}

const count = (a: AgentProcess, msg: string) => a.logs.filter((l) => l.msg === msg).length;

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function echoServer(): Promise<net.Server> {
  const s = net.createServer({ allowHalfOpen: true }, (c) => {
    c.on('error', () => undefined);
    c.pipe(c);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return s;
}

const portOf = (s: net.Server) => (s.address() as net.AddressInfo).port;

/** One round trip through a gateway tcp listener: what comes back. */
function echoVia(port: number, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let got = '';
    sock.on('data', (c: Buffer) => (got += c.toString()));
    sock.once('error', reject);
    sock.once('connect', () => sock.end(payload));
    sock.once('close', () => resolve(got));
  });
}

it('portico agent with a bad file exits 1 and prints the bad field\'s path', async (t) => {
  const dir = tempDir(t, 'agent');
  const file = join(dir, 'agent.yaml');
  fs.writeFileSync(file, `servers: [127.0.0.1:7000]\nid: office-1\ntoken: "${TEST_TOKEN}"\nservices:\n  - { code: crm, local: 127.0.0.1:8069, bandwidth: lots }\n`);
  const r = await runCli(['agent', file]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /services\[0\]\.bandwidth: must be a size/);
});

describe('portico agent: started before the gateway, reloaded in place', () => {
  let pki: Pki;
  let gw: { cert: string; key: string };
  let gateway: TestGateway | undefined;
  let tunnelPort: number;
  let dir: string;
  let file: string;
  let a: net.Server;
  let b: net.Server;
  let c: net.Server;
  let agent: AgentProcess;

  let adminAddress: string;
  const agentFile = (services: unknown[], host = '127.0.0.1') =>
    JSON.stringify({
      servers: [`${host}:${tunnelPort}`],
      admin: '127.0.0.1:0',
      id: 'office-1',
      token: TEST_TOKEN,
      tls: { ca: pki.caCert },
      heartbeat: { interval: '200ms', timeout: '1s' },
      reconnect: { initial: '50ms', max: '300ms' },
      services,
    });
  const svc = (code: string, s: net.Server) => ({ code, local: `127.0.0.1:${portOf(s)}` });
  const registered = (code: string) => gateway!.gateway.tunnels.registrations(code).length;
  const tcpPort = (name: string) => gateway!.gateway.listenerAddress(name)!.port;

  before(async () => {
    ({ pki, gw } = await tunnelPki());
    [a, b, c] = await Promise.all([echoServer(), echoServer(), echoServer()]);
    tunnelPort = await freePort();
    dir = fs.mkdtempSync(join(pki.dir, 'agent-'));
    file = join(dir, 'agent.yaml');
    fs.writeFileSync(file, agentFile([svc('a', a), svc('b', b)]));
  });

  after(async () => {
    if (agent?.running()) {
      agent.child.kill('SIGTERM');
      await agent.exited;
    }
    await gateway?.close();
    for (const s of [a, b, c]) s?.close();
    await pki?.cleanup();
  });

  it('keeps running and retrying while nothing listens; connects by itself once the gateway is up', async () => {
    agent = spawnAgent(null, file);
    await waitFor(() => count(agent, 'agent: not connected, retrying') >= 3, 'three logged retries');
    assert.ok(agent.running(), 'still running with the server unreachable');
    const retry = agent.logs.find((l) => l.msg === 'agent: not connected, retrying')!;
    assert.match(String(retry.reason), /ECONNREFUSED/);
    adminAddress = String(agent.logs.find((l) => l.msg === 'portico agent started')!.admin);
    const waiting = (await (await fetch(`http://${adminAddress}/status`)).json()) as { connection: { state: string; lastError: string; attempts: number } };
    assert.notEqual(waiting.connection.state, 'connected');
    assert.match(waiting.connection.lastError, /ECONNREFUSED/);
    const metricsDown = await (await fetch(`http://${adminAddress}/metrics`)).text();
    assert.match(metricsDown, /^portico_agent_connected 0$/m);
    assert.match(metricsDown, /^portico_agent_reconnects_total [1-9]\d*$/m);
    assert.match(metricsDown, /^portico_agent_service_up\{code="a"\} 1$/m);
    gateway = await startGateway({
      listeners: [
        { name: 'a', protocol: 'tcp', listen: '127.0.0.1:0', upstream: 'a', accessLog: false },
        { name: 'b', protocol: 'tcp', listen: '127.0.0.1:0', upstream: 'b', accessLog: false },
        { name: 'c', protocol: 'tcp', listen: '127.0.0.1:0', upstream: 'c', accessLog: false },
        tunnelListener(gw, { listen: `127.0.0.1:${tunnelPort}`, agents: [{ id: 'office-1', token: TEST_TOKEN, codes: ['*'] }] }),
      ],
      upstreams: ['a', 'b', 'c'].map((n) => ({ name: n, targets: [{ tunnel: n }] })),
    });
    await waitFor(() => count(agent, 'agent connected') === 1, 'the agent connected');
    await waitFor(() => registered('a') === 1 && registered('b') === 1, 'a and b registered');
    assert.equal(await echoVia(tcpPort('a'), 'via a'), 'via a');
    assert.equal(await echoVia(tcpPort('b'), 'via b'), 'via b');
    assert.match(await (await fetch(`http://${adminAddress}/metrics`)).text(), /^portico_agent_connected 1$/m);
  });

  it('SIGHUP adds c and removes b on the same connection, while a long transfer on a keeps flowing', async () => {
    const sock = net.connect(tcpPort('a'), '127.0.0.1');
    let received = 0;
    let sent = 0;
    let failed: Error | null = null;
    sock.on('data', (d: Buffer) => (received += d.length));
    sock.on('error', (e) => (failed = e));
    const closed = new Promise((r) => sock.once('close', r));
    await new Promise((r) => sock.once('connect', r));
    const chunk = Buffer.alloc(16 * 1024, 3);
    const pump = setInterval(() => {
      sock.write(chunk);
      sent += chunk.length;
    }, 10);
    try {
      await waitFor(() => received >= 64 * 1024, 'the transfer under way');
      fs.writeFileSync(file, agentFile([svc('a', a), svc('c', c)]));
      agent.child.kill('SIGHUP');
      await waitFor(() => registered('c') === 1 && registered('b') === 0, 'c registered, b gone');
      const at = received;
      await waitFor(() => received >= at + 64 * 1024, 'the transfer still flowing after the reload');
    } finally {
      clearInterval(pump);
    }
    sock.end();
    await closed;
    assert.equal(failed, null);
    assert.equal(received, sent, 'every byte echoed');
    assert.equal(count(agent, 'agent connected'), 1, 'the connection was never dropped');
    assert.equal(count(agent, 'agent reloaded'), 1);
    assert.equal(await echoVia(tcpPort('c'), 'via c'), 'via c');
    assert.equal(await echoVia(tcpPort('b'), 'via b'), '', 'b is no longer served');
  });

  it('a bad file on SIGHUP keeps the running services and logs why', async () => {
    fs.writeFileSync(file, agentFile([{ code: 'a', local: 'nowhere' }]));
    agent.child.kill('SIGHUP');
    await waitFor(() => agent.logs.find((l) => l.msg === 'agent reload refused: the file is invalid (the running services are kept)'), 'the refusal logged');
    const refusal = agent.logs.find((l) => l.msg === 'agent reload refused: the file is invalid (the running services are kept)')!;
    assert.match(JSON.stringify(refusal.errors), /services\[0\]\.local/);
    assert.ok(agent.running());
    assert.equal(registered('a'), 1);
    assert.equal(registered('c'), 1);
    assert.equal(await echoVia(tcpPort('a'), 'still a'), 'still a');
    assert.equal(count(agent, 'agent connected'), 1);
  });

  it('a change of servers reconnects, and the services register again', async () => {
    fs.writeFileSync(file, agentFile([svc('a', a), svc('c', c)], 'localhost'));
    agent.child.kill('SIGHUP');
    await waitFor(() => count(agent, 'agent connected') === 2, 'the agent reconnected');
    await waitFor(() => registered('a') === 1 && registered('c') === 1, 'a and c registered again');
    assert.equal(await echoVia(tcpPort('c'), 'c again'), 'c again');
  });

  it('exits 0 on SIGTERM', async () => {
    agent.child.kill('SIGTERM');
    assert.equal(await agent.exited, 0);
    await waitFor(() => registered('a') === 0, 'a unregistered');
  });
});

it('watch: true reloads when the file is replaced (written elsewhere, renamed over), with no gateway reachable', async (t) => {
  const dir = tempDir(t, 'agent-watch');
  const file = join(dir, 'agent.yaml');
  const doc = (codes: string[]) =>
    JSON.stringify({ servers: ['127.0.0.1:1'], id: 'office-1', token: TEST_TOKEN, watch: true, reconnect: { initial: '50ms', max: '500ms' }, services: codes.map((code, i) => ({ code, local: `127.0.0.1:${1000 + i}` })) });
  fs.writeFileSync(file, doc(['one']));
  const agent = spawnAgent(t, file);
  await waitFor(() => count(agent, 'portico agent started') === 1, 'the agent started');
  for (const [i, codes] of [['two'], ['two', 'three']].entries()) {
    fs.writeFileSync(join(dir, 'next.tmp'), doc(codes));
    fs.renameSync(join(dir, 'next.tmp'), file);
    await waitFor(() => agent.logs.filter((l) => l.msg === 'agent reloaded').length === i + 1, `reload ${i + 1}`);
    const last = agent.logs.filter((l) => l.msg === 'agent reloaded').at(-1)!;
    assert.equal(last.why, 'file changed');
    assert.deepEqual(last.services, codes);
  }
  assert.ok(agent.running());
});

it('a wrong token is refused, and no token appears in the agent\'s or the gateway\'s output', async (t) => {
  const { pki, gw } = await tunnelPki();
  t.after(() => pki.cleanup());
  const dir = tempDir(t, 'agent-token');
  const gatewayFile = join(dir, 'gateway.yaml');
  const rightToken = 'right-token-3f9a1c77e2b84d0f';
  const wrongToken = 'wrong-token-8d2e6b13c5a94f71';
  fs.writeFileSync(
    gatewayFile,
    JSON.stringify({
      listeners: [
        { name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false },
        { ...tunnelListener(gw), agents: [{ id: 'office-1', token: '${OFFICE1_TOKEN}', codes: ['*'] }] },
      ],
      upstreams: [{ name: 'crm', targets: [{ tunnel: 'crm' }] }],
      routes: [{ name: 'crm', listener: 'web', upstream: 'crm' }],
    }),
  );
  const gwProc = await startCli(gatewayFile, { OFFICE1_TOKEN: rightToken });
  t.after(() => gwProc.stop());
  const tunnelUrl = gwProc.urls.tunnel!;
  const agentFile = join(dir, 'agent.yaml');
  fs.writeFileSync(
    agentFile,
    JSON.stringify({
      servers: [tunnelUrl.replace(/^[a-z]+:\/\//, '')],
      id: 'office-1',
      token: '${AGENT_TOKEN}',
      tls: { ca: pki.caCert },
      reconnect: { initial: '50ms', max: '200ms' },
      log: { level: 'debug' },
      services: [{ code: 'crm', local: '127.0.0.1:9' }],
    }),
  );
  const agent = spawnAgent(t, agentFile, { AGENT_TOKEN: wrongToken });
  await waitFor(() => count(agent, 'agent: the gateway refused this agent (check id and token)') >= 2, 'two refusals logged by the agent');
  await waitFor(() => gwProc.logs.filter((l) => l.level === 40 && l.id === 'office-1').length >= 2, 'the failed logins logged by the gateway');
  assert.ok(agent.running(), 'a refusal is retried, never an exit');
  agent.child.kill('SIGTERM');
  assert.equal(await agent.exited, 0);
  const everything = [agent.output(), JSON.stringify(gwProc.logs), gwProc.stderr.join('')].join('\n');
  assert.ok(!everything.includes(wrongToken), 'the wrong token is never printed');
  assert.ok(!everything.includes(rightToken), 'the right token is never printed');
  assert.ok(!everything.includes('wrong-token'), 'not even a part of it');
});
