// The tunnel and relay config exactly as the documentation shows it (examples/tunnel/
// and docs/tunnel.md), served by the real binaries: `portico start` and `portico agent`
// as child processes; only ports and file paths differ. Every service of the agent is
// reached the way a user would: HTTP by a configured route and by a claimed host, TCP
// and UDP through remote ports, gRPC by service code through the relay.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, spawnLogged, startCli, type Running } from '../helpers/cli.js';
import { startTcpServer, echo, type TcpServer } from '../helpers/tcp.js';
import { freePort } from '../helpers/upstream.js';
import { send } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';
import { healthMethods, grpcClient, startGrpcServer, unaryCall, type GrpcTestServer } from '../helpers/grpc.js';
import { tunnelPki } from '../helpers/tunnel.js';
import type { Pki } from '../helpers/certs.js';

const TOKENS = { OFFICE1_TOKEN: 'office-1-token-abcdefghijklmnop', DEVICE_TOKEN: 'device-token-abcdefghijklmnop', RELAY_CLIENT_TOKEN: 'relay-client-token-abcdefghijk' };

/** A port in [from, to] nobody listens on (TCP and UDP). */
async function freePortIn(from: number, to: number, taken: Set<number>): Promise<number> {
  for (let p = from; p <= to; p++) {
    if (taken.has(p)) continue;
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.createServer().once('error', () => resolve(false)).listen(p, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (ok) {
      taken.add(p);
      return p;
    }
  }
  throw new Error(`no free port in ${from}-${to}`);
}

/** An HTTP server behind a PROXY protocol v2 reader: records each header's command (LOCAL or PROXY). */
function proxiedHttpServer(): { server: net.Server; commands: string[] } {
  const commands: string[] = [];
  const inner = http.createServer((req, res) => res.end(`crm ${req.url} ${req.headers.host}`));
  const server = net.createServer((socket) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 16) return;
      const len = buf.readUInt16BE(14);
      if (buf.length < 16 + len) return;
      socket.off('data', onData);
      commands.push((buf[12]! & 0x0f) === 0 ? 'LOCAL' : 'PROXY');
      socket.pause();
      socket.unshift(buf.subarray(16 + len));
      inner.emit('connection', socket);
      socket.resume();
    };
    socket.on('data', onData);
  });
  return { server, commands };
}

describe('the documented tunnel config, served by the real binaries', () => {
  let pki: Pki;
  let gateway: Running;
  let agent: ChildProcess;
  let agentLogs: Record<string, unknown>[] = [];
  let crm: ReturnType<typeof proxiedHttpServer>;
  let ssh: TcpServer;
  let dns: dgram.Socket;
  let device: GrpcTestServer;
  const ports: Record<string, number> = {};

  before(async () => {
    const { pki: p, gw } = await tunnelPki();
    pki = p;
    crm = proxiedHttpServer();
    await new Promise<void>((r) => crm.server.listen(0, '127.0.0.1', r));
    ssh = await startTcpServer(echo);
    dns = dgram.createSocket('udp4');
    dns.on('message', (m, rinfo) => dns.send(Buffer.concat([Buffer.from('dns:'), m]), rinfo.port, rinfo.address));
    await new Promise<void>((r) => dns.bind(0, '127.0.0.1', r));
    device = await startGrpcServer({ health: true });
    const taken = new Set<number>();
    for (const name of ['web', 'tunnel', 'relay']) ports[name] = await freePort();
    ports.sshRemote = await freePortIn(20000, 20100, taken);
    ports.dnsRemote = await freePortIn(20000, 20100, taken);

    const dir = pki.dir;
    const gatewayYaml = `
listeners:
  - name: web
    protocol: http
    listen: 127.0.0.1:${ports.web}
  - name: tunnel
    protocol: tunnel
    listen: 127.0.0.1:${ports.tunnel}
    tls: { certificates: [{ cert: ${gw.cert}, key: ${gw.key} }] }
    agents:
      - { id: office-1, token: "\${OFFICE1_TOKEN}", codes: [crm, ssh, "device-*"], allowPorts: ["20000-20100"] }
    http: { listener: web, hosts: ["*.tunnel.example.com"] }   # agents may claim hosts here, nowhere else
  - name: relay
    protocol: relay
    listen: 127.0.0.1:${ports.relay}
    tls: { certificates: [{ cert: ${gw.cert}, key: ${gw.key} }] }
    services: [{ code: "device-*", token: "\${DEVICE_TOKEN}" }]
    clients: [{ token: "\${RELAY_CLIENT_TOKEN}", codes: ["device-*"] }]
upstreams:
  - name: crm
    targets: [{ tunnel: crm }]          # a tunnelled service is a target like any other
routes:
  - { name: crm, listener: web, match: { host: crm.example.com }, upstream: crm }
`;
    const agentYaml = `
servers: [127.0.0.1:${ports.tunnel}]               # several: tried in order, failover
id: office-1
token: "\${OFFICE1_TOKEN}"
tls: { ca: ${pki.caCert} }
services:
  - { code: crm, local: 127.0.0.1:${(crm.server.address() as net.AddressInfo).port}, type: http, hosts: [crm.tunnel.example.com], proxyProtocol: v2 }
  - { code: ssh, local: 127.0.0.1:${ssh.port}, type: tcp, remotePort: ${ports.sshRemote} }
  - { code: dns, local: 127.0.0.1:${(dns.address() as net.AddressInfo).port}, type: udp, remotePort: ${ports.dnsRemote} }
  - { code: device-42, local: ${device.address}, type: grpc, healthCheck: { interval: 5s } }
`;
    writeFileSync(join(dir, 'gateway.yaml'), gatewayYaml);
    writeFileSync(join(dir, 'agent.yaml'), agentYaml);
    gateway = await startCli(join(dir, 'gateway.yaml'), TOKENS);
    const spawned = spawnLogged(process.execPath, [CLI, 'agent', join(dir, 'agent.yaml')], TOKENS);
    agent = spawned.child;
    agentLogs = spawned.logs;
    await waitFor(() => agentLogs.find((l) => l.msg === 'agent: services registered'), 'the agent to register its services');
  });

  after(async () => {
    agent?.kill('SIGTERM');
    await gateway?.stop();
    crm?.server.close();
    await ssh?.close();
    dns?.close();
    await device?.close();
    await pki?.cleanup();
  });

  it('serves the crm route, with a PROXY v2 header to the local service', async () => {
    const res = await send(`http://127.0.0.1:${ports.web}`, { path: '/leads', headers: { host: 'crm.example.com' } });
    assert.equal(res.status, 200);
    assert.equal(res.body, 'crm /leads crm.example.com');
    assert.ok(crm.commands.length > 0 && crm.commands.every((c) => c === 'LOCAL' || c === 'PROXY'), `PROXY headers seen: ${crm.commands.join(',')}`);
  });

  it('serves the host the agent claimed', async () => {
    const res = await send(`http://127.0.0.1:${ports.web}`, { path: '/x', headers: { host: 'crm.tunnel.example.com' } });
    assert.equal(res.status, 200);
    assert.equal(res.body, 'crm /x crm.tunnel.example.com');
  });

  it('carries TCP through the remote port of ssh', async () => {
    const sock = net.connect(ports.sshRemote!, '127.0.0.1');
    const got: Buffer[] = [];
    sock.on('data', (d) => got.push(d));
    sock.end('hello ssh');
    await new Promise((r) => sock.once('close', r));
    assert.equal(Buffer.concat(got).toString(), 'hello ssh');
  });

  it('refuses dns, whose code the agent policy does not list, and says why in the agent log', async () => {
    const refusal = await waitFor(() => agentLogs.find((l) => l.msg === 'agent: the gateway refused a service' && l.code === 'dns'), 'the dns refusal');
    assert.match(String(refusal.reason), /not allowed/);
    // Nothing listens on its remote port.
    const refused = await new Promise<boolean>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.on('error', () => resolve(true));
      s.send('q', ports.dnsRemote!, '127.0.0.1');
      s.once('message', () => resolve(false));
      setTimeout(() => resolve(true), 500).unref();
      s.unref();
    });
    assert.equal(refused, true);
  });

  it('serves dns over UDP once a reload lets the agent register it (the agent reconnects under its new entry)', async () => {
    const file = join(pki.dir, 'gateway.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('codes: [crm, ssh, "device-*"]', 'codes: [crm, ssh, dns, "device-*"]'));
    const registered = agentLogs.length;
    gateway.child.kill('SIGHUP');
    await waitFor(() => agentLogs.slice(registered).find((l) => l.msg === 'agent: services registered' && Array.isArray(l.accepted) && (l.accepted as string[]).includes('dns')), 'dns to be registered');
    const client = dgram.createSocket('udp4');
    try {
      const answer = await waitFor(
        () =>
          new Promise<string | undefined>((resolve) => {
            const timer = setTimeout(() => resolve(undefined), 300);
            client.once('message', (m) => {
              clearTimeout(timer);
              resolve(m.toString());
            });
            client.send('query-1', ports.dnsRemote!, '127.0.0.1');
          }),
        'a UDP answer through the remote port',
      );
      assert.equal(answer, 'dns:query-1');
    } finally {
      client.close();
    }
  });

  it('reaches device-42 by service code through the relay (gRPC health, via portico connect)', async () => {
    const local = await freePort();
    const forwarder = spawn(process.execPath, [CLI, 'connect', '--relay', `127.0.0.1:${ports.relay}`, '--code', 'device-42', '--listen', `127.0.0.1:${local}`, '--ca', pki.caCert], {
      env: { ...process.env, PORTICO_RELAY_TOKEN: TOKENS.RELAY_CLIENT_TOKEN },
      stdio: 'ignore',
    });
    try {
      await waitFor(
        () =>
          new Promise<boolean>((resolve) => {
            const s = net.connect(local, '127.0.0.1', () => (s.destroy(), resolve(true))).once('error', () => resolve(false));
          }),
        'portico connect to listen',
      );
      const client = grpcClient(`127.0.0.1:${local}`);
      const reply = await unaryCall<{ status: string }>(client, healthMethods().Check, { service: '' });
      assert.equal(reply.responses[0]?.status, 'SERVING');
      client.close();
    } finally {
      forwarder.kill('SIGTERM');
    }
  });
});
