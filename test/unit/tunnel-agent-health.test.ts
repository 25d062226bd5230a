// The agent's health check of a local service, against real local
// servers: tcp (a server stopped and restarted on its port), http (500
// then 200, thresholds counted in requests, the path asked for, a large
// body read and discarded), grpc (grpc.health.v1 on a grpc-js server:
// SERVING / NOT_SERVING), timeouts of a server that never answers, udp
// (never checked, always up), the first check at start (not after an
// interval), and stop(): no timer, socket or callback afterwards.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { LocalHealth, type LocalHealthOptions } from '../../src/tunnel/agent/health.js';
import { startGrpcServer } from '../helpers/grpc.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { waitFor } from '../helpers/wait.js';

const HOUR = 3_600_000;
const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

/** A LocalHealth that records its transitions; stopped after the test. */
function watch(t: TestContext, options: LocalHealthOptions) {
  const changes: { up: boolean; reason: string }[] = [];
  /** Checks completed when each change happened. */
  const at: number[] = [];
  const health = new LocalHealth(options, (up, reason) => {
    changes.push({ up, reason });
    at.push(health.checks);
  });
  t.after(() => health.stop());
  return { health, changes, at };
}

function listen(server: net.Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

const close = (server: net.Server) => new Promise<void>((resolve) => server.close(() => resolve()));

/** Closes `server` (and its connections) when the test ends, whatever happened. */
function closeAfter(t: TestContext, server: () => net.Server): void {
  t.after(() => {
    const s = server();
    if (s instanceof http.Server) s.closeAllConnections();
    if (s.listening) return close(s);
  });
}

/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  const port = await listen(s);
  await close(s);
  return port;
}

describe('LocalHealth', () => {
  test('starts up and checks at once: a refused port goes down without waiting for the interval', async (t) => {
    const port = await freePort();
    const { health, changes } = watch(t, { type: 'tcp', address: { host: '127.0.0.1', port }, interval: HOUR, timeout: 2000, unhealthyThreshold: 1 });
    assert.equal(health.up, true, 'optimistic before the first check');
    health.start();
    await waitFor(() => changes.length === 1, 'the first check');
    assert.deepEqual(changes, [{ up: false, reason: 'ECONNREFUSED' }]);
    assert.equal(health.up, false);
  });

  test('tcp: a server stopped and restarted on its port goes down after 2 failures and back up', async (t) => {
    const fds = openFds();
    let connections = 0;
    const onConnection = (s: net.Socket) => {
      connections++;
      s.destroy();
    };
    let server = net.createServer(onConnection);
    closeAfter(t, () => server);
    const port = await listen(server);
    const { health, changes } = watch(t, { type: 'tcp', address: { host: '127.0.0.1', port }, interval: 20, timeout: 1000 });
    health.start();
    await waitFor(() => connections >= 3, 'three checks');
    assert.deepEqual(changes, [], 'up while the server accepts');
    await close(server);
    const before = health.checks;
    await waitFor(() => changes.length === 1, 'down');
    assert.deepEqual(changes[0], { up: false, reason: 'ECONNREFUSED' });
    assert.ok(health.checks - before >= 2, 'two failed checks (unhealthyThreshold 2)');
    server = net.createServer(onConnection);
    await listen(server, port);
    await waitFor(() => changes.length === 2, 'up again');
    assert.deepEqual(changes[1], { up: true, reason: 'connected' });
    health.stop();
    await close(server);
    await fdsSettle(fds);
  });

  test('http: 500 three times then 200 — down at the 2nd request, up at the 5th with healthyThreshold 2; path and body handled', async (t) => {
    const paths: string[] = [];
    const server = http.createServer((req, res) => {
      paths.push(req.url ?? '');
      const status = paths.length <= 3 ? 500 : 200;
      res.writeHead(status, { 'content-type': 'text/plain' });
      // Odd requests: a small body (verdict at its end); even ones: more than the 64 KiB read before the verdict.
      res.end(Buffer.alloc(paths.length % 2 === 1 ? 10 : 100_000, 0x61));
    });
    closeAfter(t, () => server);
    const port = await listen(server);
    const { health, changes, at } = watch(t, { type: 'http', address: { host: '127.0.0.1', port }, path: '/healthz?deep=1', interval: 10, timeout: 2000, healthyThreshold: 2 });
    const record = new LocalHealth({ type: 'udp', address: { host: '127.0.0.1', port }, interval: 1, timeout: 1 }, () => undefined);
    record.start(); // a udp LocalHealth alongside: never calls back, never checks
    health.start();
    await waitFor(() => changes.length === 2, 'down then up');
    health.stop();
    assert.deepEqual(changes, [
      { up: false, reason: 'HTTP status 500 (expected 2xx or 3xx)' },
      { up: true, reason: 'HTTP status 200' },
    ]);
    assert.ok(paths.every((p) => p === '/healthz?deep=1'), JSON.stringify(paths));
    assert.deepEqual(at, [2, 5], 'down at the 2nd failure (unhealthyThreshold 2); up at the 2nd pass after three failures (healthyThreshold 2)');
    assert.equal(record.up, true);
    record.stop();
    server.closeAllConnections();
    await close(server);
  });

  test('http: a server that never answers fails by timeout; its connection is closed', async (t) => {
    const fds = openFds();
    const sockets: net.Socket[] = [];
    const closed = new WeakSet<net.Socket>();
    const server = net.createServer((s) => {
      sockets.push(s);
      s.on('error', () => undefined);
      s.on('close', () => closed.add(s));
      s.resume();
    });
    closeAfter(t, () => server);
    const port = await listen(server);
    const { health, changes } = watch(t, { type: 'http', address: { host: '127.0.0.1', port }, interval: HOUR, timeout: 100, unhealthyThreshold: 1 });
    health.start();
    await waitFor(() => changes.length === 1, 'down by timeout');
    assert.deepEqual(changes[0], { up: false, reason: 'no answer within 100ms' });
    await waitFor(() => sockets.length === 1 && closed.has(sockets[0]!), 'the check connection closed');
    health.stop();
    await close(server);
    await fdsSettle(fds);
  });

  test('grpc: grpc.health.v1 Check — SERVING stays up, NOT_SERVING goes down, SERVING comes back', async (t) => {
    const grpc = await startGrpcServer({ health: true });
    t.after(() => grpc.close());
    grpc.setHealth('', 'SERVING');
    const { health, changes } = watch(t, { type: 'grpc', address: { host: '127.0.0.1', port: grpc.port }, interval: 20, timeout: 2000 });
    health.start();
    await waitFor(() => grpc.healthChecks() >= 3, 'three checks');
    assert.deepEqual(changes, []);
    grpc.setHealth('', 'NOT_SERVING');
    await waitFor(() => changes.length === 1, 'down');
    assert.deepEqual(changes[0], { up: false, reason: 'NOT_SERVING' });
    grpc.setHealth('', 'SERVING');
    await waitFor(() => changes.length === 2, 'up');
    assert.deepEqual(changes[1], { up: true, reason: 'SERVING' });
    health.stop();
  });

  test('grpc: a service the server does not know fails with its grpc-status', async (t) => {
    const grpc = await startGrpcServer({ health: true });
    t.after(() => grpc.close());
    const { health, changes } = watch(t, { type: 'grpc', address: { host: '127.0.0.1', port: grpc.port }, service: 'nope', interval: HOUR, timeout: 2000, unhealthyThreshold: 1 });
    health.start();
    await waitFor(() => changes.length === 1, 'down');
    assert.equal(changes[0]!.up, false);
    assert.match(changes[0]!.reason, /grpc-status 5 NOT_FOUND/);
  });

  test('stop() during a check in progress: no timer, no socket, no callback afterwards', async (t) => {
    const sockets: net.Socket[] = [];
    const closed = new WeakSet<net.Socket>();
    const server = net.createServer((s) => {
      sockets.push(s);
      s.on('error', () => undefined);
      s.on('close', () => closed.add(s));
      s.resume();
    });
    closeAfter(t, () => server);
    const port = await listen(server);
    const fds = openFds();
    const base = timers();
    const { health, changes } = watch(t, { type: 'http', address: { host: '127.0.0.1', port }, interval: 10, timeout: HOUR, unhealthyThreshold: 1 });
    health.start();
    await waitFor(() => sockets.length === 1, 'the check connected');
    assert.ok(timers() > base, 'the check has its timeout timer');
    health.stop();
    assert.equal(timers(), base, 'stop cleared every timer at once');
    await waitFor(() => closed.has(sockets[0]!), 'the check connection closed');
    await fdsSettle(fds);
    assert.deepEqual(changes, []);
    assert.equal(health.up, true);
    // A restart checks again.
    health.start();
    await waitFor(() => sockets.length === 2, 'checked again after start()');
    health.stop();
    await close(server);
  });

  test('udp: always up, no timer and no socket', async (t) => {
    const fds = openFds();
    const base = timers();
    const { health, changes } = watch(t, { type: 'udp', address: { host: '127.0.0.1', port: 9 }, interval: 1, timeout: 1 });
    health.start();
    assert.equal(timers(), base);
    assert.equal(openFds(), fds);
    assert.equal(health.up, true);
    assert.deepEqual(changes, []);
    assert.equal(health.reason, 'udp services are not checked');
  });

  test('invalid options are refused with a RangeError', () => {
    const ok: LocalHealthOptions = { type: 'tcp', address: { host: '127.0.0.1', port: 80 }, interval: 1000, timeout: 500 };
    for (const bad of [
      { ...ok, type: 'sctp' as never },
      { ...ok, address: { host: '', port: 80 } },
      { ...ok, address: { host: 'h', port: 0 } },
      { ...ok, address: { host: 'h', port: 65536 } },
      { ...ok, interval: 0 },
      { ...ok, timeout: Number.NaN },
      { ...ok, healthyThreshold: 0 },
      { ...ok, unhealthyThreshold: 1.5 },
      { ...ok, path: 'healthz' },
      { ...ok, path: '/a b' },
    ]) {
      assert.throws(() => new LocalHealth(bad, () => undefined), RangeError, JSON.stringify(bad));
    }
  });
});
