import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatHostPort } from '../../src/net/address.js';
import { logLines } from '../helpers/log-file.js';
import { loadConfigText, validateConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/observability/logger.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The `udp` listener with real datagram sockets on loopback. Requests are
 * retransmitted while unanswered (UDP may lose a datagram even on
 * loopback), so counts at the servers are checked as "at least" where a
 * retransmission could add to them.
 */

/** The largest UDP payload over IPv4 (65535 − 20 IP − 8 UDP header bytes). */
const MAX_DATAGRAM = 65_507;

interface EchoServer {
  id: string;
  address: string;
  port: number;
  /** Payloads received, in order. */
  received: Buffer[];
  close(): Promise<void>;
}

/**
 * A DNS-like server: answers each datagram with `<id>|<payload>`, or with
 * the payload alone when that would not fit in one datagram.
 */
async function startEcho(id: string, port = 0, host = '127.0.0.1'): Promise<EchoServer> {
  const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const received: Buffer[] = [];
  socket.on('message', (msg, rinfo) => {
    received.push(msg);
    const reply = msg.length + id.length + 1 > MAX_DATAGRAM ? msg : Buffer.concat([Buffer.from(`${id}|`), msg]);
    socket.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind({ port, address: host, exclusive: true }, resolve));
  const bound = socket.address().port;
  return { id, address: formatHostPort({ host, port: bound }), port: bound, received, close: () => new Promise((r) => socket.close(() => r())) };
}

/** A port with nothing listening on it (bound, then released). */
async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A client socket on its own port: one gateway session. */
class Client {
  readonly inbox: Buffer[] = [];
  private readonly socket: dgram.Socket;
  private readonly host: string;
  private wake: (() => void) | null = null;

  private constructor(host: string) {
    this.host = host;
    this.socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  }

  static async open(host = '127.0.0.1'): Promise<Client> {
    const c = new Client(host);
    c.socket.on('message', (m) => {
      c.inbox.push(m);
      c.wake?.();
    });
    await new Promise<void>((r) => c.socket.bind(0, host, r));
    return c;
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** Sends once, without waiting for anything. */
  send(payload: Buffer | string, port: number): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(Buffer.from(payload), port, this.host, (err) => (err ? reject(err) : resolve())));
  }

  /**
   * Sends `payload` until a reply carrying it arrives (up to 10 tries, 300 ms
   * apart); returns the reply split into the server's id and the payload.
   */
  async ask(payload: Buffer | string, port: number): Promise<{ id: string; payload: Buffer }> {
    const want = Buffer.from(payload);
    const find = () => {
      for (const m of this.inbox) {
        const r = parseReply(m, want);
        if (r !== undefined) return r;
      }
      return undefined;
    };
    for (let attempt = 0; attempt < 10; attempt++) {
      await this.send(want, port);
      const deadline = Date.now() + 300;
      for (;;) {
        const r = find();
        if (r !== undefined) return r;
        const left = deadline - Date.now();
        if (left <= 0) break;
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wake = null;
      }
    }
    throw new Error(`no reply to ${want.length} bytes from port ${this.port}`);
  }

  close(): Promise<void> {
    return new Promise((r) => this.socket.close(() => r()));
  }
}

/** `<id>|<payload>` (or the bare payload of a maximum-size echo) if it answers `want`. */
function parseReply(m: Buffer, want: Buffer): { id: string; payload: Buffer } | undefined {
  if (m.equals(want)) return { id: '', payload: m };
  const bar = m.indexOf('|');
  if (bar < 0) return undefined;
  const payload = m.subarray(bar + 1);
  return payload.equals(want) ? { id: m.subarray(0, bar).toString(), payload } : undefined;
}

interface ListenerStatus {
  name: string;
  connections: number;
  sessions: number;
  dropped: Record<string, number>;
  upstreamErrors: number;
}
interface Status {
  listeners: ListenerStatus[];
  upstreams: { name: string; targets: { address: string; inflight: number }[] }[];
}

function listenerStatus(gw: TestGateway, name = 'dns'): ListenerStatus {
  return (gw.gateway.status() as Status).listeners.find((l) => l.name === name)!;
}

function inflight(gw: TestGateway, upstream: string): number[] {
  return (gw.gateway.status() as Status).upstreams.find((u) => u.name === upstream)!.targets.map((t) => t.inflight);
}

function udpDoc(targets: string[], listener: Record<string, unknown> = {}, upstream: Record<string, unknown> = {}) {
  return {
    listeners: [{ name: 'dns', protocol: 'udp', listen: '127.0.0.1:0', upstream: 'dns', ...listener }],
    upstreams: [{ name: 'dns', targets: targets.map((address) => ({ address })), ...upstream }],
  };
}

const portOf = (gw: TestGateway, name = 'dns') => gw.gateway.listenerAddress(name)!.port;


/** Closes these after the test, in order (the client first, then the gateway, then what is behind it). */
function closeAfter(t: TestContext, ...items: { close(): unknown }[]): void {
  t.after(async () => {
    for (const item of items) await item.close();
  });
}

describe('udp listener', () => {
  test('a client gets its replies, from the listening address; empty and maximum-size datagrams pass', async (t) => {
    const echo = await startEcho('one');
    const gw = await startGateway(udpDoc([echo.address]));
    const client = await Client.open();
    closeAfter(t, client, gw, echo);
    const port = portOf(gw);
    for (const q of ['example.com A', 'example.org AAAA', 'x']) {
      const r = await client.ask(q, port);
      assert.equal(r.id, 'one');
      assert.equal(r.payload.toString(), q);
    }
    assert.equal((await client.ask(Buffer.alloc(0), port)).id, 'one', 'an empty datagram is forwarded and answered');
    const big = Buffer.alloc(MAX_DATAGRAM, 7);
    big.write('large', 0);
    const echoed = await client.ask(big, port);
    assert.equal(echoed.payload.length, MAX_DATAGRAM, 'a 65507-byte datagram went up and came back whole');
    assert.ok(echo.received.some((m) => m.length === MAX_DATAGRAM && m.equals(big)));
    assert.equal(gw.gateway.connections('dns'), 1, 'one client address, one session');
    assert.deepEqual(inflight(gw, 'dns'), [1], 'the target counts the session while it lives');
    const s = listenerStatus(gw);
    assert.equal(s.sessions, 1);
    assert.deepEqual(s.dropped, {});
  });

  test('round-robin: each client sticks to one target, different clients spread', async (t) => {
    const a = await startEcho('a');
    const b = await startEcho('b');
    const gw = await startGateway(udpDoc([a.address, b.address], {}, { balancer: 'round-robin' }));
    const clients = await Promise.all([1, 2, 3, 4].map(() => Client.open()));
    t.after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await gw.close();
      await a.close();
      await b.close();
    });
    const port = portOf(gw);
    const seen: string[] = [];
    for (const [n, c] of clients.entries()) {
      const ids = new Set<string>();
      for (let i = 0; i < 10; i++) ids.add((await c.ask(`client ${n} query ${i}`, port)).id);
      assert.equal(ids.size, 1, `client ${n} kept its target over 10 datagrams`);
      seen.push([...ids][0]!);
    }
    assert.deepEqual([...seen].sort(), ['a', 'a', 'b', 'b'], 'sessions alternate between the two targets');
    assert.equal(gw.gateway.connections('dns'), 4);
    assert.deepEqual(inflight(gw, 'dns'), [2, 2]);
  });

  test('consistent-hash: every port of one client IP goes to the target its IP hashes to', async (t) => {
    const servers = await Promise.all(['a', 'b', 'c'].map((id) => startEcho(id)));
    const gw = await startGateway(udpDoc(servers.map((s) => s.address), {}, { balancer: 'consistent-hash', hashKey: 'ip' }));
    const clients = await Promise.all([1, 2, 3, 4, 5, 6].map(() => Client.open()));
    t.after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await gw.close();
      await Promise.all(servers.map((s) => s.close()));
    });
    const expected = gw.gateway.current.upstreams.get('dns')!.pickForConnection('127.0.0.1')!.address;
    const expectedId = servers.find((s) => s.address === expected)!.id;
    const port = portOf(gw);
    for (const [n, c] of clients.entries()) {
      assert.equal((await c.ask(`hash ${n}`, port)).id, expectedId, `client port ${c.port}`);
    }
    assert.equal(gw.gateway.connections('dns'), 6, 'one session per client port, all on one target');
  });

  test('many clients at once each get only their own replies', async (t) => {
    const a = await startEcho('a');
    const b = await startEcho('b');
    const gw = await startGateway(udpDoc([a.address, b.address]));
    const clients = await Promise.all(Array.from({ length: 40 }, () => Client.open()));
    t.after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await gw.close();
      await a.close();
      await b.close();
    });
    const port = portOf(gw);
    await Promise.all(
      clients.map(async (c, n) => {
        for (let i = 0; i < 5; i++) await c.ask(`c${n}:${i}`, port);
      }),
    );
    for (const [n, c] of clients.entries()) {
      assert.ok(c.inbox.length >= 5);
      for (const m of c.inbox) assert.match(m.toString(), new RegExp(`^[ab]\\|c${n}:\\d$`), `client ${n} got ${m.toString()}`);
    }
    assert.equal(gw.gateway.connections('dns'), 40);
  });

  test('idle sessions expire; the next datagram opens a new one; each session is logged when it ends', async (t) => {
    const echo = await startEcho('one');
    const dir = mkdtempSync(join(tmpdir(), 'portico-udp-'));
    const log = join(dir, 'access.log');
    const gw = await startGateway(udpDoc([echo.address], { idleTimeout: '150ms', accessLog: { path: log } }));
    const client = await Client.open();
    t.after(async () => {
      await client.close();
      await gw.close();
      await echo.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const port = portOf(gw);
    await client.ask('first', port);
    await waitFor(() => gw.gateway.connections('dns') === 0, 'the idle session to end');
    assert.deepEqual(inflight(gw, 'dns'), [0]);
    const [line] = await waitFor(() => (logLines(log).length === 1 ? logLines(log) : undefined), 'the session line');
    assert.equal(line!.type, 'connection');
    assert.equal(line!.listener, 'dns');
    assert.equal(line!.protocol, 'udp');
    assert.equal(line!.client, '127.0.0.1');
    assert.equal(line!.clientPort, client.port);
    assert.equal(line!.outcome, 'ok');
    assert.equal(line!.closedBy, 'idle');
    assert.equal(line!.upstream, 'dns');
    assert.equal(line!.target, echo.address);
    assert.ok((line!.datagramsUp as number) >= 1);
    assert.equal(line!.bytesUp, (line!.datagramsUp as number) * 'first'.length);
    assert.equal(line!.bytesDown, (line!.datagramsDown as number) * 'one|first'.length);
    assert.equal(typeof line!.durationMs, 'number');

    assert.equal((await client.ask('second', port)).id, 'one', 'a datagram after expiry is served');
    const lines = await waitFor(() => (logLines(log).length === 2 ? logLines(log) : undefined), 'the second session line');
    assert.equal(lines[1]!.clientPort, client.port, 'the same client address got a second session');
    assert.ok((lines[1]!.bytesUp as number) >= 'second'.length);
  });

  test('maxSessions: a new client beyond the cap is dropped and counted; live sessions go on', async (t) => {
    const echo = await startEcho('one');
    const gw = await startGateway(udpDoc([echo.address], { maxSessions: 2 }));
    const [a, b, c] = await Promise.all([Client.open(), Client.open(), Client.open()]);
    t.after(async () => {
      await Promise.all([a!.close(), b!.close(), c!.close()]);
      await gw.close();
      await echo.close();
    });
    const port = portOf(gw);
    await a!.ask('from a', port);
    await b!.ask('from b', port);
    await c!.send('from c', port);
    await c!.send('from c again', port);
    await waitFor(() => listenerStatus(gw).dropped['max-sessions'] === 2, 'both datagrams of the third client to be dropped');
    const s = listenerStatus(gw);
    assert.equal(s.sessions, 2);
    assert.equal(s.connections, 2);
    assert.ok(!echo.received.some((m) => m.toString().startsWith('from c')), 'nothing of the third client reached the target');
    assert.equal(c!.inbox.length, 0);
    assert.equal((await a!.ask('a again', port)).id, 'one');
  });

  test('ip-restriction: a denied client is dropped and counted; an allowed one is served; no target: dropped', async (t) => {
    const echo = await startEcho('one');
    const doc = {
      listeners: [
        { name: 'denied', protocol: 'udp', listen: '127.0.0.1:0', upstream: 'dns', middlewares: [{ 'ip-restriction': { deny: ['127.0.0.0/8'] } }] },
        { name: 'allowed', protocol: 'udp', listen: '127.0.0.1:0', upstream: 'dns', middlewares: [{ 'ip-restriction': { allow: ['127.0.0.1'] } }] },
        { name: 'drained', protocol: 'udp', listen: '127.0.0.1:0', upstream: 'drained' },
      ],
      upstreams: [
        { name: 'dns', targets: [{ address: echo.address }] },
        { name: 'drained', targets: [{ address: echo.address, weight: 0 }] },
      ],
    };
    const gw = await startGateway(doc);
    const client = await Client.open();
    closeAfter(t, client, gw, echo);
    for (let i = 0; i < 3; i++) await client.send(`denied ${i}`, portOf(gw, 'denied'));
    await client.send('to drained', portOf(gw, 'drained'));
    await waitFor(() => listenerStatus(gw, 'denied').dropped['ip-restriction'] === 3, 'three refusals');
    await waitFor(() => listenerStatus(gw, 'drained').dropped['no-target'] === 1, 'the drop for want of a target');
    assert.equal(gw.gateway.connections('denied'), 0);
    assert.equal(gw.gateway.connections('drained'), 0);
    assert.equal((await client.ask('allowed', portOf(gw, 'allowed'))).id, 'one');
    assert.deepEqual(
      echo.received.map((m) => m.toString()).filter((m) => m !== 'allowed'),
      [],
      'only the allowed datagram reached the target',
    );
    assert.deepEqual(client.inbox.map((m) => m.toString()).filter((m) => m !== 'one|allowed'), []);
  });

  test('a target with nothing listening ends the session (ICMP port unreachable), and it recovers once the server is up', async (t) => {
    const deadPort = await freeUdpPort();
    const dir = mkdtempSync(join(tmpdir(), 'portico-udp-'));
    const log = join(dir, 'access.log');
    const gw = await startGateway(udpDoc([`127.0.0.1:${deadPort}`], { accessLog: { path: log } }));
    const client = await Client.open();
    let echo: EchoServer | undefined;
    t.after(async () => {
      await client.close();
      await gw.close();
      await echo?.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const port = portOf(gw);
    await client.send('anyone there?', port);
    await waitFor(() => listenerStatus(gw).upstreamErrors === 1 && gw.gateway.connections('dns') === 0, 'the session to end on the upstream error');
    assert.deepEqual(inflight(gw, 'dns'), [0]);
    const [line] = await waitFor(() => (logLines(log).length === 1 ? logLines(log) : undefined), 'the session line');
    assert.equal(line!.outcome, 'UPSTREAM_ERROR');
    assert.equal(line!.error, 'ECONNREFUSED');
    assert.equal(line!.closedBy, 'upstream');

    echo = await startEcho('late', deadPort);
    assert.equal((await client.ask('now?', port)).id, 'late', 'the next datagram opened a new session to the now-running target');
    assert.equal(gw.gateway.connections('dns'), 1);
  });

  test('reload: a session stays on its target while the upstream keeps it, and moves when the upstream changes', async (t) => {
    const a = await startEcho('a');
    const b = await startEcho('b');
    const doc = (upstream: string, idleTimeout: string) => ({
      listeners: [{ name: 'dns', protocol: 'udp', listen: '127.0.0.1:0', upstream, idleTimeout }],
      upstreams: [
        { name: 'first', targets: [{ address: a.address }] },
        { name: 'second', targets: [{ address: b.address }] },
      ],
    });
    const gw = await startGateway(doc('first', '30s'));
    const client = await Client.open();
    closeAfter(t, client, gw, a, b);
    const port = portOf(gw);
    assert.equal((await client.ask('q1', port)).id, 'a');

    assert.deepEqual(await gw.reload(doc('first', '20s')), { ok: true, version: 2 });
    assert.equal(portOf(gw), port, 'the socket was kept');
    assert.equal(gw.gateway.connections('dns'), 1, 'the session survived the reload');
    assert.deepEqual(inflight(gw, 'first'), [1], 'its count moved to the new snapshot\'s target');
    assert.equal((await client.ask('q2', port)).id, 'a');

    assert.deepEqual(await gw.reload(doc('second', '20s')), { ok: true, version: 3 });
    assert.equal((await client.ask('q3', port)).id, 'b', 'the same client address now reaches the new upstream');
    assert.equal(gw.gateway.connections('dns'), 1);
    assert.deepEqual(inflight(gw, 'second'), [1]);
    assert.deepEqual(inflight(gw, 'first'), [0]);
  });

  test('IPv6: a listener on ::1 forwards to an IPv6 target', async (t) => {
    const echo = await startEcho('six', 0, '::1');
    const gw = await startGateway(udpDoc([echo.address], { listen: '[::1]:0' }));
    const client = await Client.open('::1');
    closeAfter(t, client, gw, echo);
    assert.equal(echo.address, `[::1]:${echo.port}`);
    assert.equal((await client.ask('AAAA?', portOf(gw))).id, 'six');
    assert.equal(gw.gateway.connections('dns'), 1);
  });

  test('host-name targets are resolved per session; a name that does not resolve ends the session, counted', async (t) => {
    // Bind where `localhost` resolves here (127.0.0.1 or ::1), so the test holds on either kind of host.
    const local = await lookup('localhost');
    const echo = await startEcho('named', 0, local.address);
    const doc = {
      listeners: [
        { name: 'named', protocol: 'udp', listen: '127.0.0.1:0', upstream: 'named' },
        // RFC 6761 §6.4: names under .invalid never resolve.
        { name: 'nowhere', protocol: 'udp', listen: '127.0.0.1:0', upstream: 'nowhere' },
      ],
      upstreams: [
        { name: 'named', targets: [{ address: `localhost:${echo.port}` }] },
        { name: 'nowhere', targets: [{ address: 'no-such-host.invalid:53' }] },
      ],
    };
    const gw = await startGateway(doc);
    const client = await Client.open();
    closeAfter(t, client, gw, echo);
    assert.equal((await client.ask('by name', portOf(gw, 'named'))).id, 'named');
    await client.send('lost', portOf(gw, 'nowhere'));
    await waitFor(() => listenerStatus(gw, 'nowhere').upstreamErrors === 1, 'the failed lookup to end the session');
    assert.equal(gw.gateway.connections('nowhere'), 0);
    assert.deepEqual(inflight(gw, 'nowhere'), [0]);
    assert.equal((await client.ask('still fine', portOf(gw, 'named'))).id, 'named', 'the gateway carries on');
  });

  test('an error on the listening socket is logged, not thrown', async (t) => {
    const echo = await startEcho('one');
    const gw = await startGateway(udpDoc([echo.address]));
    const client = await Client.open();
    closeAfter(t, client, gw, echo);
    // The bound socket as the gateway holds it (there is no public way to make a bound UDP socket fail).
    const bindings = (gw.gateway as unknown as { bindings: Map<string, { server: dgram.Socket }> }).bindings;
    const socket = [...bindings.values()][0]!.server;
    assert.ok(socket.listenerCount('error') >= 1, 'the frontend keeps an error handler after the bind');
    socket.emit('error', new Error('simulated socket failure'));
    assert.equal((await client.ask('after the error', portOf(gw))).id, 'one');
  });

  test('stop ends the sessions and closes the socket: the port can be bound again', async (t) => {
    const echo = await startEcho('one');
    const gw = await startGateway(udpDoc([echo.address]));
    const client = await Client.open();
    const rebound = dgram.createSocket('udp4');
    t.after(async () => {
      await client.close();
      await gw.close(); // a no-op once stopped
      await new Promise<void>((r) => rebound.close(() => r()));
      await echo.close();
    });
    const port = portOf(gw);
    await client.ask('hello', port);
    const upstream = gw.gateway.current.upstreams.get('dns')!;
    await gw.close();
    assert.equal(upstream.targets[0]!.inflight, 0, 'the session ended');
    await new Promise<void>((resolve, reject) => {
      rebound.once('error', reject);
      rebound.bind({ port, address: '127.0.0.1', exclusive: true }, () => resolve());
    });
    assert.equal(rebound.address().port, port);
  });

  test('a udp address already in use fails the apply cleanly', async (t) => {
    const blocker = dgram.createSocket('udp4');
    await new Promise<void>((r) => blocker.bind({ port: 0, address: '127.0.0.1', exclusive: true }, r));
    const gateway = new Gateway(createLogger('silent'));
    t.after(async () => {
      await gateway.stop(0);
      await new Promise<void>((r) => blocker.close(() => r()));
    });
    const loaded = validateConfig(udpDoc(['127.0.0.1:53'], { listen: `127.0.0.1:${blocker.address().port}` }));
    assert.ok(loaded.ok);
    const result = await gateway.apply(loaded.config);
    assert.equal(result.ok, false);
    assert.match((result as { error: string }).error, /cannot bind udp 127\.0\.0\.1:\d+/);
  });

  test('config: the issue\'s fragment validates with the documented defaults; bad values are refused', () => {
    const loaded = loadConfigText(
      [
        'listeners:',
        '  - { name: dns, protocol: udp, listen: 127.0.0.1:0, upstream: dns }',
        'upstreams:',
        '  - { name: dns, targets: [{ address: 127.0.0.1:53 }] }',
      ].join('\n'),
    );
    assert.ok(loaded.ok, JSON.stringify(!loaded.ok && loaded.errors));
    const l = loaded.config.listeners[0]!;
    assert.equal(l.protocol, 'udp');
    assert.ok(l.protocol === 'udp');
    assert.equal(l.idleTimeout, 30_000);
    assert.equal(l.maxSessions, 10_000);
    assert.equal(l.accessLog, false);
    assert.deepEqual(l.middlewares, []);

    const bad = validateConfig(udpDoc(['127.0.0.1:53'], { idleTimeout: '10ms', maxSessions: 0, proxyProtocol: 'accept' }));
    assert.equal(bad.ok, false);
    const text = JSON.stringify(!bad.ok && bad.errors);
    assert.match(text, /idleTimeout/);
    assert.match(text, /maxSessions/);
    assert.match(text, /proxyProtocol/, 'stream-only settings are not accepted on udp');
  });
});
