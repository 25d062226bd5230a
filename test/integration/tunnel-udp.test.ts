import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import { formatHostPort } from '../../src/net/address.js';
import type { Agent } from '../../src/tunnel/agent/agent.js';
import type { Pki } from '../helpers/certs.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startAgent, tunnelListener, tunnelPki } from '../helpers/tunnel.js';
import { freePort } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

/**
 * `type: udp` services through a remotePort: the gateway binds a UDP port,
 * each client address is a session with its own tunnel stream (datagrams
 * framed both ways), and the agent gives each stream its own local UDP
 * socket, so every client gets its own answers.
 */

interface UdpEcho {
  port: number;
  /** Datagrams received, by sender `address:port` (the agent's socket of each session). */
  senders: Map<string, number>;
  close(): Promise<void>;
}

/** A UDP server answering `echo:<payload>` to each datagram. */
async function startUdpEcho(): Promise<UdpEcho> {
  const socket = dgram.createSocket('udp4');
  const senders = new Map<string, number>();
  socket.on('message', (msg, rinfo) => {
    const key = `${rinfo.address}:${rinfo.port}`;
    senders.set(key, (senders.get(key) ?? 0) + 1);
    socket.send(Buffer.concat([Buffer.from('echo:'), msg]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  return { port: socket.address().port, senders, close: () => new Promise((r) => socket.close(() => r())) };
}

/** A UDP client of `port` that collects what comes back. */
async function udpClient(port: number): Promise<{ send(text: string): void; received: string[]; close(): Promise<void> }> {
  const socket = dgram.createSocket('udp4');
  const received: string[] = [];
  socket.on('message', (msg) => received.push(msg.toString()));
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  return {
    send: (text) => socket.send(text, port, '127.0.0.1'),
    received,
    close: () => new Promise((r) => socket.close(() => r())),
  };
}

describe('tunnel: UDP through a remotePort', () => {
  let pki: Pki;
  let gw: { cert: string; key: string };
  let gateway: TestGateway;
  let echo: UdpEcho;
  let tunnelAddr: string;

  before(async () => {
    ({ pki, gw } = await tunnelPki());
    echo = await startUdpEcho();
    gateway = await startGateway({ listeners: [tunnelListener(gw, { agents: [{ id: 'office-1', token: 'office-1-token-0123456789', codes: ['dns'], allowPorts: ['20000-65000'] }] })] });
    tunnelAddr = formatHostPort(gateway.gateway.listenerAddress('tunnel')!);
  });

  after(async () => {
    await gateway?.close();
    await echo?.close();
    await pki?.cleanup();
  });

  it('several clients each get their own answers, one session (stream) each; the port closes with the agent', async () => {
    const port = await freePort();
    const fdsBefore = openFds();
    const agent: Agent = await startAgent(tunnelAddr, pki.caCert, [{ code: 'dns', local: `127.0.0.1:${echo.port}`, type: 'udp', remotePort: port }]);
    await waitFor(() => gateway.gateway.connectionRegistry.list({ kind: 'tunnel-port' }).length === 1 || agent.refused.get('dns'), 'the udp port');
    assert.equal(agent.refused.size, 0, [...agent.refused.values()].join());

    const clients = await Promise.all([0, 1, 2].map(() => udpClient(port)));
    const expected = clients.map((_, i) => [0, 1, 2, 3, 4].map((n) => `echo:client${i}-${n}`));
    // UDP may lose a datagram: resend what is missing, a bounded number of times.
    for (let round = 0; round < 20; round++) {
      clients.forEach((c, i) => {
        for (const text of expected[i]!) if (!c.received.includes(text)) c.send(text.slice('echo:'.length));
      });
      const done = await waitFor(() => clients.every((c, i) => expected[i]!.every((t) => c.received.includes(t))), 'answers', 500).catch(() => false);
      if (done) break;
    }
    clients.forEach((c, i) => {
      for (const text of expected[i]!) assert.ok(c.received.includes(text), `client ${i} got ${text}`);
      assert.ok(c.received.every((t) => t.startsWith(`echo:client${i}-`)), `client ${i} got only its own answers: ${c.received.join()}`);
    });
    // One tunnel stream per client, hence one local socket per client at the agent.
    assert.equal(gateway.gateway.connectionRegistry.list({ kind: 'tunnel-stream' }).length, 3);
    assert.equal(echo.senders.size, 3);
    const entry = gateway.gateway.connectionRegistry.list({ kind: 'tunnel-port' })[0]!;
    assert.equal(entry.route, 'dns');
    assert.ok(entry.bytesIn! >= 15 * 'client0-0'.length, `bytesIn ${entry.bytesIn}`);
    assert.ok(entry.bytesOut! >= 15 * 'echo:client0-0'.length, `bytesOut ${entry.bytesOut}`);

    await agent.stop();
    await waitFor(() => gateway.gateway.connectionRegistry.list({ kind: 'tunnel-port' }).length === 0, 'the port entry gone');
    assert.equal(gateway.gateway.connectionRegistry.list({ kind: 'tunnel-stream' }).length, 0);
    // The port is free again: it can be bound.
    const probe = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.bind(port, '127.0.0.1', () => resolve());
    });
    await new Promise<void>((r) => probe.close(() => r()));
    await Promise.all(clients.map((c) => c.close()));
    await fdsSettle(fdsBefore);
  });

  it('carries a datagram of 60000 bytes whole, both ways (framing across HTTP/2 frames)', async () => {
    const port = await freePort();
    const agent = await startAgent(tunnelAddr, pki.caCert, [{ code: 'dns', local: `127.0.0.1:${echo.port}`, type: 'udp', remotePort: port }]);
    const socket = dgram.createSocket('udp4');
    try {
      await waitFor(() => gateway.gateway.connectionRegistry.list({ kind: 'tunnel-port' }).length === 1, 'the udp port');
      const big = Buffer.alloc(60_000);
      for (let i = 0; i < big.length; i++) big[i] = (i * 13) % 256;
      const replies: Buffer[] = [];
      socket.on('message', (m) => replies.push(m));
      await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
      await waitFor(() => {
        if (replies.length > 0) return true;
        socket.send(big, port, '127.0.0.1');
        return false;
      }, 'the big datagram echoed');
      assert.ok(replies[0]!.equals(Buffer.concat([Buffer.from('echo:'), big])), `a reply of ${replies[0]!.length} bytes, the datagram whole`);
    } finally {
      await new Promise<void>((r) => socket.close(() => r()));
      await agent.stop();
    }
  });

  it('a local UDP service that is down (ICMP port unreachable) ends the session and its stream; nothing leaks', async () => {
    const port = await freePort();
    const dead = await freePort();
    const agent = await startAgent(tunnelAddr, pki.caCert, [{ code: 'dns', local: `127.0.0.1:${dead}`, type: 'udp', remotePort: port }]);
    const client = await udpClient(port);
    try {
      await waitFor(() => gateway.gateway.connectionRegistry.list({ kind: 'tunnel-port' }).length === 1, 'the udp port');
      // Sessions are counted at the agent: each is one stream, ended by the local socket's error (too fast to poll for).
      const sessions = () => agent.conn.streamsTotal;
      const open = () => agent.conn.streams + gateway.gateway.connectionRegistry.list({ kind: 'tunnel-stream' }).length;
      const run = async (text: string) => {
        const n = sessions();
        await waitFor(() => {
          if (sessions() > n && open() === 0) return true;
          // The agent's socket reports ECONNREFUSED after a datagram: keep sending until the session has come and gone.
          client.send(text);
          return false;
        }, 'a session begun and ended by the local error');
      };
      await run('warm-up'); // the first session's one-time allocations
      const before = openFds();
      for (let i = 0; i < 10; i++) await run(`lost ${i}`);
      assert.deepEqual(client.received, []);
      await fdsSettle(before);
    } finally {
      await client.close();
      await agent.stop();
    }
  });

  it('refuses a udp remotePort already bound (EADDRINUSE)', async () => {
    const squatter = dgram.createSocket('udp4');
    await new Promise<void>((r) => squatter.bind(0, '127.0.0.1', r));
    const port = squatter.address().port;
    const agent = await startAgent(tunnelAddr, pki.caCert, [{ code: 'dns', local: `127.0.0.1:${echo.port}`, type: 'udp', remotePort: port }]);
    try {
      const reason = await waitFor(() => agent.refused.get('dns'), 'the refusal');
      assert.match(reason, /\(udp\) on 127\.0\.0\.1 cannot be opened: .*EADDRINUSE/);
    } finally {
      await agent.stop();
      await new Promise<void>((r) => squatter.close(() => r()));
    }
  });
});
