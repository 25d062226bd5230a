import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { closedWithin, connect, deadPort, echo, readAll, startTcpServer, type TcpServer } from '../helpers/tcp.js';
import { startRedis } from '../helpers/redis.js';
import { deferred, waitFor } from '../helpers/wait.js';

function tcpDoc(targets: string[], listener: Record<string, unknown> = {}, upstream: Record<string, unknown> = {}) {
  return {
    listeners: [{ name: 't', protocol: 'tcp', listen: '127.0.0.1:0', upstream: 'u', accessLog: false, ...listener }],
    upstreams: [{ name: 'u', targets: targets.map((address) => ({ address })), ...upstream }],
  };
}

function portOf(gw: TestGateway, name = 't'): number {
  return gw.gateway.listenerAddress(name)!.port;
}

/** Open TCP sockets of this process (client, server and proxied sides alike). */
function openTcpHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
}

/** The access log's lines once it has at least `n` (the file is written asynchronously). */
async function logLines(path: string, n: number): Promise<Record<string, unknown>[]> {
  const read = () => readFileSync(path, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  await waitFor(() => read().length >= n, `${n} access-log lines`);
  return read();
}

interface ListenerStatus {
  name: string;
  connections: number;
  refused?: Record<string, number>;
}
function listenerStatus(gw: TestGateway, name = 't'): ListenerStatus {
  const s = gw.gateway.status() as { listeners: ListenerStatus[] };
  return s.listeners.find((l) => l.name === name)!;
}

describe('tcp listener: relaying', () => {
  let server: TcpServer;
  let gw: TestGateway;
  before(async () => {
    server = await startTcpServer(echo);
    gw = await startGateway(tcpDoc([server.address]));
  });
  after(async () => {
    await gw.close();
    await server.close();
  });

  it('relays bytes both ways and closes both sides when done', async () => {
    const c = await connect(portOf(gw));
    const got = readAll(c);
    c.write('hello ');
    c.end('world');
    assert.equal((await got).toString(), 'hello world');
    assert.ok(await closedWithin(c, 2000));
    await waitFor(() => gw.gateway.connections('t') === 0, 'the connection to be gone');
  });

  it('relays 8 MiB of random bytes unchanged', async () => {
    const payload = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE((Math.random() * 0xffffffff) >>> 0, i);
    const c = await connect(portOf(gw));
    const got = readAll(c);
    c.end(payload);
    assert.ok((await got).equals(payload));
  });
});

describe('tcp listener: half-close and resets', () => {
  it('a client that shuts down its write side still reads the answer', async () => {
    // The server answers only after it has seen the client's FIN.
    const server = await startTcpServer((s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => setTimeout(() => s.end(`got ${Buffer.concat(chunks).length} bytes`), 50));
    });
    const gw = await startGateway(tcpDoc([server.address]));
    try {
      const c = await connect(portOf(gw));
      const got = readAll(c);
      c.end('x'.repeat(1000));
      assert.equal((await got).toString(), 'got 1000 bytes');
    } finally {
      await gw.close();
      await server.close();
    }
  });

  it('an upstream that ends first still receives what the client sends afterwards', async () => {
    let received = '';
    const serverDone = deferred<void>();
    const server = await startTcpServer((s) => {
      s.end('bye');
      s.on('data', (c: Buffer) => (received += c.toString()));
      s.on('end', () => serverDone.resolve());
    });
    const gw = await startGateway(tcpDoc([server.address]));
    try {
      const c = await connect(portOf(gw));
      const got = readAll(c);
      assert.equal((await got).toString(), 'bye');
      // The client's write half is still open after the server's FIN.
      c.end('late data');
      await serverDone.promise;
      assert.equal(received, 'late data');
    } finally {
      await gw.close();
      await server.close();
    }
  });

  it('a client reset destroys the upstream connection promptly', async () => {
    const server = await startTcpServer(() => undefined);
    const gw = await startGateway(tcpDoc([server.address]));
    try {
      const c = await connect(portOf(gw));
      await waitFor(() => server.accepted.length === 1, 'the upstream connection');
      c.resetAndDestroy();
      assert.ok(await closedWithin(server.accepted[0]!, 2000), 'the upstream side closed');
      await waitFor(() => gw.gateway.connections('t') === 0, 'the connection to be gone');
    } finally {
      await gw.close();
      await server.close();
    }
  });

  it('an upstream reset destroys the client connection promptly', async () => {
    const server = await startTcpServer((s) => setTimeout(() => s.resetAndDestroy(), 20));
    const gw = await startGateway(tcpDoc([server.address]));
    try {
      const c = await connect(portOf(gw));
      c.on('error', () => undefined);
      assert.ok(await closedWithin(c, 2000), 'the client side closed');
    } finally {
      await gw.close();
      await server.close();
    }
  });

  it('1,000 connections opened and dropped leave no sockets behind', async () => {
    const server = await startTcpServer(echo);
    const gw = await startGateway(tcpDoc([server.address]));
    try {
      const before = openTcpHandles();
      const port = portOf(gw);
      for (let batch = 0; batch < 10; batch++) {
        await Promise.all(
          Array.from({ length: 100 }, async (_, i) => {
            const c = await connect(port);
            c.on('error', () => undefined);
            c.write('ping');
            // Three ways to go: reset, FIN, or destroy right after writing.
            if (i % 3 === 0) c.resetAndDestroy();
            else if (i % 3 === 1) c.end();
            else c.destroy();
            await closedWithin(c, 5000);
          }),
        );
      }
      await waitFor(() => gw.gateway.connections('t') === 0 && server.open() === 0, 'every proxied connection to close', 15_000);
      await waitFor(() => openTcpHandles() <= before, `open TCP handles back to ${before}`, 15_000);
      // And the kernel holds no half-closed socket on the listener's or the target's port.
      const closeWait = execFileSync('ss', ['-tanH', 'state', 'close-wait'], { encoding: 'utf8' })
        .split('\n')
        .filter((l) => l.includes(`:${port} `) || l.includes(`:${server.port} `));
      assert.deepEqual(closeWait, []);
    } finally {
      await gw.close();
      await server.close();
    }
  });
});

describe('tcp listener: backpressure', () => {
  it('a client that does not read stops the upstream; nothing is lost when it reads again', async () => {
    const total = 256 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 7);
    let written = 0;
    let stalledAt = -1;
    const stalled = deferred<void>();
    const server = await startTcpServer((s) => {
      const pump = () => {
        while (written < total) {
          written += chunk.length;
          if (!s.write(chunk)) {
            // Stalled: record how much went out before the client's side pushed back.
            if (stalledAt < 0) {
              setTimeout(() => {
                stalledAt = written;
                stalled.resolve();
              }, 500);
            }
            s.once('drain', pump);
            return;
          }
        }
        s.end();
      };
      pump();
    });
    const gw = await startGateway(tcpDoc([server.address], { buffer: 65_536 }));
    try {
      const c = await connect(portOf(gw));
      c.pause();
      await stalled.promise;
      // Kernel buffers on both hops plus Portico's two 64 KiB buffers: far below what was offered.
      assert.ok(stalledAt < 48 * 1024 * 1024, `upstream wrote ${stalledAt} bytes into a paused client`);
      let received = 0;
      c.on('data', (d: Buffer) => (received += d.length));
      c.resume();
      await new Promise((r) => c.once('end', r));
      assert.equal(received, total);
    } finally {
      await gw.close();
      await server.close();
    }
  });
});

describe('tcp listener: targets', () => {
  it('a failed dial goes to the next target', async () => {
    const server = await startTcpServer((s) => s.end('alive'));
    const dead = await deadPort();
    // Round robin starts with the dead target for the first connection.
    const gw = await startGateway(tcpDoc([`127.0.0.1:${dead}`, server.address], { retry: 2 }, { balancer: 'round-robin' }));
    try {
      for (let i = 0; i < 4; i++) {
        const c = await connect(portOf(gw));
        assert.equal((await readAll(c)).toString(), 'alive');
      }
    } finally {
      await gw.close();
      await server.close();
    }
  });

  it('with every target down the client connection is closed at once and logged', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portico-tcp-'));
    const log = join(dir, 'access.log');
    const dead = await deadPort();
    const gw = await startGateway(tcpDoc([`127.0.0.1:${dead}`], { retry: 1, accessLog: { path: log } }));
    try {
      const c = await connect(portOf(gw));
      c.on('error', () => undefined);
      assert.ok(await closedWithin(c, 2000));
      await gw.close();
      const lines = await logLines(log, 1);
      assert.equal(lines.length, 1);
      assert.equal(lines[0]!.type, 'connection');
      assert.equal(lines[0]!.outcome, 'DIAL_FAILED');
      assert.equal(lines[0]!.upstream, 'u');
    } finally {
      await gw.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('consistent hashing on the client IP sends every connection of a client to one target', async () => {
    const a = await startTcpServer((s) => s.end('a'));
    const b = await startTcpServer((s) => s.end('b'));
    const gw = await startGateway(tcpDoc([a.address, b.address], {}, { balancer: 'consistent-hash', hashKey: 'ip' }));
    try {
      const seen = new Set<string>();
      for (let i = 0; i < 20; i++) seen.add((await readAll(await connect(portOf(gw)))).toString());
      assert.equal(seen.size, 1);
    } finally {
      await gw.close();
      await a.close();
      await b.close();
    }
  });

  it('round robin spreads connections, and the access log names each target and the byte counts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portico-tcp-'));
    const log = join(dir, 'access.log');
    const a = await startTcpServer(echo);
    const b = await startTcpServer(echo);
    const gw = await startGateway(tcpDoc([a.address, b.address], { accessLog: { path: log } }, { balancer: 'round-robin' }));
    try {
      for (let i = 0; i < 4; i++) {
        const c = await connect(portOf(gw));
        const got = readAll(c);
        c.end('12345');
        assert.equal((await got).toString(), '12345');
      }
      await waitFor(() => gw.gateway.connections('t') === 0, 'connections to end');
      assert.equal(a.accepted.length, 2);
      assert.equal(b.accepted.length, 2);
      await gw.close();
      const lines = await logLines(log, 4);
      assert.equal(lines.length, 4);
      for (const l of lines) {
        assert.equal(l.outcome, 'ok');
        assert.equal(l.bytesUp, 5);
        assert.equal(l.bytesDown, 5);
        assert.equal(l.client, '127.0.0.1');
        assert.ok(l.target === a.address || l.target === b.address);
      }
    } finally {
      await gw.close();
      await a.close();
      await b.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('tcp listener: limits and connection middlewares', () => {
  let server: TcpServer;
  before(async () => {
    server = await startTcpServer(echo);
  });
  after(() => server.close());

  /** Opens a connection and tells whether it is relayed (an echo comes back) or refused (closed). */
  async function relayed(port: number): Promise<{ ok: boolean; socket: net.Socket }> {
    // A refused connection is reset, possibly before the client saw its handshake complete.
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    c.on('error', () => undefined);
    return new Promise((resolve) => {
      c.once('data', () => resolve({ ok: true, socket: c }));
      c.once('close', () => resolve({ ok: false, socket: c }));
      c.once('end', () => {
        c.destroy();
        resolve({ ok: false, socket: c });
      });
      c.write('?');
    });
  }

  it('maxConnectionsPerIp refuses the connection over the limit, and counts it', async () => {
    const gw = await startGateway(tcpDoc([server.address], { limits: { maxConnectionsPerIp: 2 } }));
    try {
      const port = portOf(gw);
      const one = await relayed(port);
      const two = await relayed(port);
      const three = await relayed(port);
      assert.deepEqual([one.ok, two.ok, three.ok], [true, true, false]);
      assert.equal(listenerStatus(gw).refused?.['max-connections-per-ip'], 1);
      one.socket.destroy();
      await waitFor(() => gw.gateway.connections('t') === 1, 'one connection to close');
      assert.equal((await relayed(port)).ok, true);
    } finally {
      await gw.close();
    }
  });

  it('maxConnections caps the listener', async () => {
    const gw = await startGateway(tcpDoc([server.address], { limits: { maxConnections: 1 } }));
    try {
      const one = await relayed(portOf(gw));
      const two = await relayed(portOf(gw));
      assert.deepEqual([one.ok, two.ok], [true, false]);
      assert.equal(listenerStatus(gw).refused?.['max-connections'], 1);
    } finally {
      await gw.close();
    }
  });

  it('ip-restriction refuses before dialling', async () => {
    const before = server.accepted.length;
    const gw = await startGateway(tcpDoc([server.address], { middlewares: [{ 'ip-restriction': { deny: ['127.0.0.0/8'] } }] }));
    try {
      assert.equal((await relayed(portOf(gw))).ok, false);
      assert.equal(server.accepted.length, before, 'the upstream was never dialled');
      assert.equal(listenerStatus(gw).refused?.['ip-restriction'], 1);
    } finally {
      await gw.close();
    }
  });

  it('a connection rate limit admits the burst, then refuses', async () => {
    const gw = await startGateway(tcpDoc([server.address], { middlewares: [{ 'rate-limit': { rate: 0.1, burst: 2, key: 'ip' } }] }));
    try {
      const results = [];
      for (let i = 0; i < 4; i++) results.push((await relayed(portOf(gw))).ok);
      assert.deepEqual(results, [true, true, false, false]);
      assert.equal(listenerStatus(gw).refused?.['rate-limit'], 2);
    } finally {
      await gw.close();
    }
  });

  it('with a Redis state store, two gateways share one connection-rate bucket (as HTTP limits do)', async () => {
    const redis = await startRedis();
    const doc = {
      ...tcpDoc([server.address], { middlewares: [{ 'rate-limit': { rate: 0.1, burst: 3, key: 'listener' } }] }),
      state: { store: 'redis', url: redis.url, keyPrefix: `l4-${process.pid}:` },
    };
    const one = await startGateway(doc);
    const two = await startGateway(doc);
    // Until its connection is ready a store answers from memory (state/fallback.ts): wait for both.
    const onRedis = (gw: TestGateway) => (gw.gateway as unknown as { state: { store: { usingRedis?: boolean } } }).state.store.usingRedis === true;
    await waitFor(() => onRedis(one) && onRedis(two), 'both gateways to use redis');
    try {
      const results = [];
      for (let i = 0; i < 6; i++) results.push((await relayed(portOf(i % 2 === 0 ? one : two))).ok);
      // Three tokens in all, whichever gateway takes them.
      assert.deepEqual(results, [true, true, true, false, false, false]);
      assert.equal((listenerStatus(one).refused?.['rate-limit'] ?? 0) + (listenerStatus(two).refused?.['rate-limit'] ?? 0), 3);
    } finally {
      await one.close();
      await two.close();
      await redis.stop();
    }
  });
});

describe('tcp listener: timeouts, keep-alive and reload', () => {
  it('an idle connection is closed on both sides after timeouts.idle', async () => {
    const server = await startTcpServer(() => undefined);
    const gw = await startGateway(tcpDoc([server.address], { timeouts: { idle: '300ms' } }));
    try {
      const c = await connect(portOf(gw));
      c.write('once');
      await waitFor(() => server.accepted.length === 1, 'the upstream connection');
      assert.ok(await closedWithin(c, 3000), 'client side closed');
      assert.ok(await closedWithin(server.accepted[0]!, 3000), 'upstream side closed');
    } finally {
      await gw.close();
      await server.close();
    }
  });

  it('TCP keep-alive is on for the upstream side', async () => {
    const server = await startTcpServer(() => undefined);
    const gw = await startGateway(tcpDoc([server.address], { tcpKeepAlive: '30s' }));
    try {
      const c = await connect(portOf(gw));
      await waitFor(() => server.accepted.length === 1, 'the upstream connection');
      // ss -o shows the keepalive timer of Portico's socket to the target.
      const out = execFileSync('ss', ['-tnoH', 'state', 'established', `dport = :${server.port}`], { encoding: 'utf8' });
      assert.match(out, /timer:\(keepalive/);
      const down = execFileSync('ss', ['-tnoH', 'state', 'established', `sport = :${portOf(gw)}`], { encoding: 'utf8' });
      assert.match(down, /timer:\(keepalive/);
      c.destroy();
    } finally {
      await gw.close();
      await server.close();
    }
  });

  it('a reload sends new connections to the new target; an open one keeps its own', async () => {
    const a = await startTcpServer(echo);
    const b = await startTcpServer((s) => s.end('b'));
    const gw = await startGateway(tcpDoc([a.address]));
    try {
      const open = await connect(portOf(gw));
      const echoed = deferred<string>();
      open.once('data', (d: Buffer) => echoed.resolve(d.toString()));
      open.write('first');
      assert.equal(await echoed.promise, 'first');
      const r = await gw.reload(tcpDoc([b.address]));
      assert.ok(r.ok);
      assert.equal((await readAll(await connect(portOf(gw)))).toString(), 'b');
      const got = readAll(open);
      open.end('second');
      assert.equal((await got).toString(), 'second');
    } finally {
      await gw.close();
      await a.close();
      await b.close();
    }
  });

  it('a reload can turn an http listener into a tcp one on the same port', async () => {
    const server = await startTcpServer((s) => s.end('raw'));
    const port = await deadPort();
    const http = {
      listeners: [{ name: 't', protocol: 'http', listen: `127.0.0.1:${port}`, accessLog: false }],
      upstreams: [{ name: 'u', targets: [{ address: server.address }] }],
      routes: [{ name: 'r', listener: 't', respond: { body: 'http' } }],
    };
    const gw = await startGateway(http);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(await res.text(), 'http');
      const r = await gw.reload(tcpDoc([server.address], { listen: `127.0.0.1:${port}` }));
      assert.ok(r.ok, JSON.stringify(r));
      assert.equal((await readAll(await connect(port))).toString(), 'raw');
    } finally {
      await gw.close();
      await server.close();
    }
  });

  it('stopping the gateway closes open connections after the grace period', async () => {
    const server = await startTcpServer(() => undefined);
    const gw = await startGateway(tcpDoc([server.address]));
    const c = await connect(portOf(gw));
    await waitFor(() => server.accepted.length === 1, 'the upstream connection');
    await gw.gateway.stop(200);
    assert.ok(await closedWithin(c, 2000));
    assert.ok(await closedWithin(server.accepted[0]!, 2000));
    await server.close();
  });
});
