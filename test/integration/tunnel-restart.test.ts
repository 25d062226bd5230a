import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Pki } from '../helpers/certs.js';
import { CLI, processGone, spawnLogged, startCli, type Running } from '../helpers/cli.js';
import { send } from '../helpers/http.js';
import { TEST_TOKEN, tunnelPki } from '../helpers/tunnel.js';
import { freePort, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The real binaries: `portico start` (gateway) and `portico agent`, as
 * processes. Faults are signals: SIGKILL the gateway and start it again;
 * SIGKILL the agent mid-transfer; SIGSTOP it (an agent gone silent, its
 * TCP connection still open). Figures are reported as test diagnostics.
 */

const HEARTBEAT = { interval: 200, timeout: 500 };
const RECONNECT_MAX = 1000;

interface AgentProcess {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  exited: Promise<number | null>;
}

function startAgentProcess(file: string, env: NodeJS.ProcessEnv): AgentProcess {
  const { child, logs, exited } = spawnLogged(process.execPath, [CLI, 'agent', file], env);
  return { child, logs, exited };
}

/** A GET through the gateway whose response starts (a first chunk) and then never ends: the transfer in flight. */
function midTransfer(url: string): Promise<{ closed: Promise<{ complete: boolean }>; req: http.ClientRequest }> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${url}/hold`, { agent: false, headers: { host: 'crm.test' } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
      res.once('data', () => resolve({ req, closed: new Promise((r) => res.once('close', () => r({ complete: res.complete }))) }));
      res.on('error', () => undefined);
    });
    req.on('error', reject);
  });
}

describe('tunnel restarts and kills with the real binaries', () => {
  let pki: Pki;
  let origin: TestUpstream;
  let gatewayFile: string;
  let agentFile: string;
  let gateway: Running | undefined;
  let agent: AgentProcess | undefined;
  let webPort = 0;
  let adminPort = 0;
  const env = { OFFICE1_TOKEN: TEST_TOKEN };
  const web = () => `http://127.0.0.1:${webPort}`;

  async function agentsListed(): Promise<{ id: string; connection: string; services: { code: string }[] }[]> {
    const r = await send(`http://127.0.0.1:${adminPort}`, { path: '/agents' });
    return (JSON.parse(r.body) as { agents: { id: string; connection: string; services: { code: string }[] }[] }).agents;
  }

  async function served(): Promise<boolean> {
    try {
      const r = await send(web(), { path: '/ping', headers: { host: 'crm.test' } });
      return r.status === 200 && r.body === 'origin /ping';
    } catch {
      return false;
    }
  }

  let dir = '';

  before(async () => {
    let gw: { cert: string; key: string };
    ({ pki, gw } = await tunnelPki());
    origin = await startUpstream((req, res) => {
      if (req.url === '/hold') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first chunk\n');
        return; // never ends: the transfer is in flight until something breaks it
      }
      res.end(`origin ${req.url}`);
    });
    dir = mkdtempSync(join(tmpdir(), 'portico-tunnel-restart-'));
    [webPort, adminPort] = [await freePort(), await freePort()];
    const tunnelPort = await freePort();
    gatewayFile = join(dir, 'gateway.yaml');
    agentFile = join(dir, 'agent.yaml');
    writeFileSync(
      gatewayFile,
      JSON.stringify({
        admin: { listen: `127.0.0.1:${adminPort}` },
        listeners: [
          { name: 'web', protocol: 'http', listen: `127.0.0.1:${webPort}`, accessLog: false },
          {
            name: 'tunnel',
            protocol: 'tunnel',
            listen: `127.0.0.1:${tunnelPort}`,
            tls: { certificates: [{ cert: gw.cert, key: gw.key }] },
            agents: [{ id: 'office-1', token: '${OFFICE1_TOKEN}', codes: ['crm'] }],
            heartbeat: { interval: `${HEARTBEAT.interval}ms`, timeout: `${HEARTBEAT.timeout}ms` },
          },
        ],
        upstreams: [{ name: 'crm', targets: [{ tunnel: 'crm' }] }],
        routes: [{ name: 'crm', listener: 'web', match: { host: 'crm.test' }, upstream: 'crm' }],
      }),
    );
    writeFileSync(
      agentFile,
      JSON.stringify({
        servers: [`127.0.0.1:${tunnelPort}`],
        id: 'office-1',
        token: '${OFFICE1_TOKEN}',
        tls: { ca: pki.caCert },
        heartbeat: { interval: `${HEARTBEAT.interval}ms`, timeout: `${HEARTBEAT.timeout}ms` },
        reconnect: { initial: '100ms', max: `${RECONNECT_MAX}ms` },
        services: [{ code: 'crm', local: origin.address, type: 'http' }],
      }),
    );
    gateway = await startCli(gatewayFile, env);
    agent = startAgentProcess(agentFile, env);
    await waitFor(served, 'traffic through the tunnel', 15_000);
  });

  after(async () => {
    for (const p of [agent?.child, gateway?.child]) if (p !== undefined && p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await Promise.all([agent?.exited, gateway?.exited]);
    await origin?.close();
    await pki?.cleanup();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('gateway SIGKILLed and started again: the agent comes back by itself within the backoff cap and traffic resumes', async (t) => {
    const before = agent!.logs.filter((l) => l.msg === 'agent connected').length;
    const killedAt = Date.now();
    gateway!.child.kill('SIGKILL');
    await gateway!.exited;
    await waitFor(() => agent!.logs.some((l) => l.msg === 'agent: not connected, retrying' && Number(l.retryInMs) > 0), 'the agent retrying');
    gateway = await startCli(gatewayFile, env);
    const upAt = Date.now();
    await waitFor(served, 'traffic again', 15_000);
    const servedAt = Date.now();
    t.diagnostic(`gateway down for ${upAt - killedAt} ms; traffic back ${servedAt - upAt} ms after the new gateway started (backoff cap ${RECONNECT_MAX} ms)`);
    assert.equal(agent!.child.exitCode, null, 'the agent process kept running');
    assert.ok(agent!.logs.filter((l) => l.msg === 'agent connected').length > before, 'reconnected');
    const waits = agent!.logs.filter((l) => l.msg === 'agent: not connected, retrying').map((l) => Number(l.retryInMs));
    assert.ok(waits.length > 0);
    assert.ok(waits.every((ms) => ms >= 0 && ms <= RECONNECT_MAX), `backoff waits ${waits.join(',')}`);
    // The token never reaches either log.
    assert.equal(JSON.stringify(gateway!.logs).includes(TEST_TOKEN), false);
    assert.equal(JSON.stringify(agent!.logs).includes(TEST_TOKEN), false);
  });

  it('agent SIGKILLed mid-transfer: the client\'s response is cut (not hung) and the target leaves', async (t) => {
    const transfer = await midTransfer(web());
    assert.equal((await agentsListed()).length, 1);
    const killedAt = Date.now();
    agent!.child.kill('SIGKILL');
    const ended = await waitFor(async () => Promise.race([transfer.closed, new Promise<null>((r) => setTimeout(() => r(null), 50))]), 'the client response closed', 10_000);
    const cutAt = Date.now();
    assert.equal(ended.complete, false, 'the response was cut short, not completed');
    await waitFor(async () => (await agentsListed()).length === 0, 'the agent unlisted', 10_000);
    const goneAt = Date.now();
    t.diagnostic(`SIGKILL: client response cut after ${cutAt - killedAt} ms, agent and target gone after ${goneAt - killedAt} ms`);
    const r = await send(web(), { path: '/x', headers: { host: 'crm.test' } });
    assert.equal(r.status, 503);
    await agent!.exited;
    assert.ok(processGone(agent!.child.pid!));
  });

  it('agent SIGSTOPped (silent, its TCP connection open): the heartbeat drops it, the client is cut, the target leaves', async (t) => {
    agent = startAgentProcess(agentFile, env);
    await waitFor(served, 'traffic through the new agent', 15_000);
    const transfer = await midTransfer(web());
    const stoppedAt = Date.now();
    agent.child.kill('SIGSTOP');
    await waitFor(async () => (await agentsListed()).length === 0, 'the agent unlisted by the heartbeat', 10_000);
    const goneAt = Date.now();
    const ended = await waitFor(async () => Promise.race([transfer.closed, new Promise<null>((r) => setTimeout(() => r(null), 50))]), 'the client response closed', 10_000);
    const cutAt = Date.now();
    assert.equal(ended.complete, false);
    t.diagnostic(`SIGSTOP: target gone after ${goneAt - stoppedAt} ms (heartbeat ${HEARTBEAT.interval} ms + timeout ${HEARTBEAT.timeout} ms), client cut after ${cutAt - stoppedAt} ms`);
    assert.ok(gateway!.logs.some((l) => l.msg === 'tunnel agent disconnected' && l.reason === `no heartbeat answer within ${HEARTBEAT.timeout} ms`), 'the heartbeat named as the reason');
    const r = await send(web(), { path: '/x', headers: { host: 'crm.test' } });
    assert.equal(r.status, 503);
    agent.child.kill('SIGKILL');
    await agent.exited;
  });
});
