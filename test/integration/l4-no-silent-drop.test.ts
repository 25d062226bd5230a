// Every L4 connection ends with one access-log line and one count, whatever
// path ends it: a reload in the middle of an accept (the connection keeps
// the snapshot that accepted it), a listener closed while a PROXY header is
// pending or a dial in progress, a client that leaves during its header, a dial that
// fails without being retryable, and a refused UDP client. File
// descriptors are counted before and after each class.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { validateConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { closedWithin, connect, deadPort, readAll, startTcpServer, type TcpServer } from '../helpers/tcp.js';
import { waitFor } from '../helpers/wait.js';
import { logLines } from '../helpers/log-file.js';

type Line = Record<string, unknown>;


/** Waits for the one line of `listener` that matches `match`. */
function lineOf(path: string, listener: string, match: (l: Line) => boolean): Promise<Line> {
  return waitFor(() => logLines(path).find((l) => l.listener === listener && match(l)), `a log line of ${listener}`);
}

interface ListenerStatus {
  name: string;
  refused?: Record<string, number>;
  ended?: Record<string, number>;
  dropped?: Record<string, number>;
}

function status(gw: TestGateway, name: string): ListenerStatus {
  const s = gw.gateway.status() as { listeners: ListenerStatus[] };
  return s.listeners.find((l) => l.name === name)!;
}

const port = (gw: TestGateway, name: string) => gw.gateway.listenerAddress(name)!.port;

/** A TCP server that answers every connection with `tag:` and echoes what it gets. */
async function tagged(tag: string): Promise<TcpServer> {
  return startTcpServer((s) => {
    s.on('error', () => undefined);
    s.write(`${tag}:`);
    s.pipe(s);
  });
}

describe('L4: no connection ends without a log line and a count', () => {
  let dir: string;
  let log: string;
  let a: TcpServer;
  let b: TcpServer;
  let silent: TcpServer;
  let notTls: TcpServer;
  let notTls2: TcpServer;
  let gw: TestGateway;

  const doc = (upstreamOfT: 'a' | 'b', withP = true) => ({
    listeners: [
      // PROXY header required (from any peer): the connection waits in the accept phase until it is complete.
      { name: 't', protocol: 'tcp', listen: '127.0.0.1:0', upstream: upstreamOfT, proxyProtocol: 'require', accessLog: { path: log } },
      ...(withP ? [{ name: 'p', protocol: 'tcp', listen: '127.0.0.1:0', upstream: 'b', proxyProtocol: 'require', accessLog: { path: log } }] : []),
      { name: 'slow', protocol: 'tcp', listen: '127.0.0.1:0', upstream: 'silent-tls', accessLog: { path: log } },
      { name: 'bad-tls', protocol: 'tcp', listen: '127.0.0.1:0', upstream: 'not-tls', retry: 2, accessLog: { path: log } },
    ],
    upstreams: [
      ...(upstreamOfT === 'a' ? [{ name: 'a', targets: [{ address: a.address }] }] : []),
      { name: 'b', targets: [{ address: b.address }] },
      // Accepts and never answers the TLS handshake: the dial stays pending.
      { name: 'silent-tls', targets: [{ address: silent.address }], tls: { insecureSkipVerify: true }, timeouts: { connect: 60_000 } },
      // Two targets that answer a ClientHello with plain text: a TLS error, not retryable.
      { name: 'not-tls', targets: [{ address: notTls.address }, { address: notTls2.address }], tls: { insecureSkipVerify: true } },
    ],
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portico-l4-drop-'));
    log = join(dir, 'access.log');
    a = await tagged('A');
    b = await tagged('B');
    silent = await startTcpServer((s) => s.on('error', () => undefined));
    const plain = (s: net.Socket) => {
      s.on('error', () => undefined);
      s.once('data', () => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    };
    notTls = await startTcpServer(plain);
    notTls2 = await startTcpServer(plain);
    gw = await startGateway(doc('a'));
  });
  after(async () => {
    await gw.close();
    for (const s of [a, b, silent, notTls, notTls2]) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a reload in the middle of an accept: the connection keeps the snapshot (and upstream) that accepted it', async () => {
    const fds = openFds();
    const c = await connect(port(gw, 't'));
    c.on('error', () => undefined);
    const got = readAll(c);
    c.write('PROXY TCP4 203.0.113.9 ');
    await waitFor(() => (gw.gateway.connections('t') === 1 ? true : undefined), 'the connection in its PROXY header');
    // The new snapshot sends `t` to `b` and has no upstream `a` at all.
    const r = await gw.reload(doc('b'));
    assert.equal(r.ok, true);
    c.end('198.51.100.1 40000 443\r\nhello');
    assert.equal((await got).toString(), 'A:hello', 'relayed by the upstream of the snapshot that accepted it');
    const line = await lineOf(log, 't', (l) => l.client === '203.0.113.9');
    assert.equal(line.outcome, 'ok');
    assert.equal(line.upstream, 'a');
    assert.equal(a.accepted.length, 1);
    assert.equal(b.accepted.length, 0);
    // The next connection is accepted under the new snapshot.
    const c2 = await connect(port(gw, 't'));
    const got2 = readAll(c2);
    c2.end('PROXY TCP4 203.0.113.10 198.51.100.1 40000 443\r\nagain');
    assert.equal((await got2).toString(), 'B:again');
    await gw.reload(doc('a'));
    await fdsSettle(fds);
  });

  it('a client that leaves during its PROXY header: CLIENT_CLOSED (DOWNSTREAM_ABORTED), not a protocol refusal', async () => {
    const fds = openFds();
    const refusedBefore = status(gw, 't').refused?.['proxy-protocol'] ?? 0;
    const endedBefore = status(gw, 't').ended?.DOWNSTREAM_ABORTED ?? 0;
    const c = await connect(port(gw, 't'));
    c.write('PROXY TCP4 203.0.113.11');
    await waitFor(() => (gw.gateway.connections('t') === 1 ? true : undefined), 'the connection in its PROXY header');
    c.destroy();
    await waitFor(() => (status(gw, 't').ended?.DOWNSTREAM_ABORTED === endedBefore + 1 ? true : undefined), 'the count');
    const line = await lineOf(log, 't', (l) => l.code === 'DOWNSTREAM_ABORTED');
    assert.equal(line.outcome, 'CLIENT_CLOSED');
    assert.equal(status(gw, 't').refused?.['proxy-protocol'] ?? 0, refusedBefore);
    await fdsSettle(fds);
  });

  it('a listener removed while a connection is being dialled: one line, GATEWAY_CLOSING', async () => {
    const fds = openFds();
    const c = await connect(port(gw, 'slow'));
    c.on('error', () => undefined);
    c.write('early bytes');
    await waitFor(() => (silent.accepted.length === 1 ? true : undefined), 'the dial to reach the silent target');
    // `slow` goes; its open connections get shutdownTimeout (50 ms), then are closed.
    const next = doc('a');
    assert.equal((await gw.reload({ ...next, shutdownTimeout: '50ms', listeners: next.listeners.filter((l) => l.name !== 'slow') })).ok, true);
    assert.ok(await closedWithin(c, 10_000));
    c.destroy();
    const line = await lineOf(log, 'slow', () => true);
    assert.equal(line.outcome, 'GATEWAY_CLOSING');
    assert.equal(line.code, 'GATEWAY_CLOSING');
    assert.equal(line.upstream, 'silent-tls');
    assert.equal((await gw.reload(doc('a'))).ok, true);
    await fdsSettle(fds);
  });

  it('a dial error that is not retryable (TLS) does not go on to the next target', async () => {
    const fds = openFds();
    const c = await connect(port(gw, 'bad-tls'));
    c.on('error', () => undefined);
    c.write('x');
    assert.ok(await closedWithin(c, 10_000));
    c.destroy();
    const line = await lineOf(log, 'bad-tls', () => true);
    assert.equal(line.outcome, 'DIAL_FAILED');
    assert.equal(line.code, 'UPSTREAM_TLS_ERROR');
    assert.match(String(line.error), /^TLS: /);
    // retry: 2 and two targets, but UPSTREAM_TLS_ERROR is not retryable: one target was dialled.
    assert.equal(notTls.accepted.length + notTls2.accepted.length, 1);
    assert.equal(status(gw, 'bad-tls').ended?.UPSTREAM_TLS_ERROR, 1);
    await fdsSettle(fds);
  });

  it('a listener removed while a PROXY header is pending: GATEWAY_CLOSING, not a protocol refusal', async () => {
    const fds = openFds();
    const c = await connect(port(gw, 'p'));
    c.on('error', () => undefined);
    c.write('PROXY TCP4 203.0.113.12 ');
    await waitFor(() => (gw.gateway.connections('p') === 1 ? true : undefined), 'the connection in its PROXY header');
    // `p` goes; `t` keeps the same access-log file open.
    assert.equal((await gw.reload(doc('a', false))).ok, true);
    assert.ok(await closedWithin(c, 10_000));
    c.destroy();
    const line = await lineOf(log, 'p', () => true);
    assert.equal(line.outcome, 'GATEWAY_CLOSING');
    assert.equal(line.code, 'GATEWAY_CLOSING');
    await fdsSettle(fds);
  });
});

describe('UDP: a refused new client is logged and counted', () => {
  let dir: string;
  let log: string;
  let gw: TestGateway;
  let echo: dgram.Socket;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portico-udp-drop-'));
    log = join(dir, 'access.log');
    echo = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => echo.bind(0, '127.0.0.1', resolve));
    const target = `127.0.0.1:${echo.address().port}`;
    gw = await startGateway({
      listeners: [
        { name: 'denied', protocol: 'udp', listen: '127.0.0.1:0', upstream: 'u', middlewares: [{ 'ip-restriction': { deny: ['127.0.0.0/8'] } }], accessLog: { path: log } },
        { name: 'drained', protocol: 'udp', listen: '127.0.0.1:0', upstream: 'drained', accessLog: { path: log } },
      ],
      upstreams: [
        { name: 'u', targets: [{ address: target }] },
        { name: 'drained', targets: [{ address: target, weight: 0 }] },
      ],
    });
  });
  after(async () => {
    await gw.close();
    echo.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ip-restriction and no target: one line each with a stable code, and a count', async () => {
    const fds = openFds();
    const client = dgram.createSocket('udp4');
    const send = (p: number) => new Promise<void>((resolve, reject) => client.send('hi', p, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
    await send(port(gw, 'denied'));
    await send(port(gw, 'drained'));
    const denied = await lineOf(log, 'denied', () => true);
    assert.equal(denied.outcome, 'ip-restriction');
    assert.equal(denied.code, 'FORBIDDEN');
    assert.equal(denied.datagramsDropped, 1);
    const drained = await lineOf(log, 'drained', () => true);
    assert.equal(drained.outcome, 'no-target');
    assert.equal(drained.code, 'NO_TARGET');
    assert.equal(status(gw, 'denied').ended?.FORBIDDEN, 1);
    assert.equal(status(gw, 'drained').ended?.NO_TARGET, 1);
    assert.equal(status(gw, 'denied').dropped?.['ip-restriction'], 1);
    client.close();
    await fdsSettle(fds);
  });
});

describe('L4 without an access log: failures go to the gateway log', () => {
  it('a failed dial is reported at warn with its code, and counted', async () => {
    const records: Line[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l !== '') records.push(JSON.parse(l) as Line);
        done();
      },
    });
    const loaded = validateConfig({
      listeners: [{ name: 'quiet', protocol: 'tcp', listen: '127.0.0.1:0', upstream: 'dead', accessLog: false }],
      upstreams: [{ name: 'dead', targets: [{ address: `127.0.0.1:${await deadPort()}` }] }],
    });
    assert.ok(loaded.ok);
    const gateway = new Gateway(pino({ level: 'warn' }, sink));
    assert.equal((await gateway.apply(loaded.config)).ok, true);
    try {
      const fds = openFds();
      const c = await connect(gateway.listenerAddress('quiet')!.port);
      c.on('error', () => undefined);
      assert.ok(await closedWithin(c, 10_000));
      c.destroy();
      const r = await waitFor(() => records.find((l) => l.listener === 'quiet' && l.code === 'UPSTREAM_CONNECT_REFUSED'), 'the warn line');
      assert.equal(r.level, 40);
      assert.equal(r.source, 'upstream');
      assert.equal(r.upstream, 'dead');
      const s = gateway.status() as { listeners: ListenerStatus[] };
      assert.equal(s.listeners.find((l) => l.name === 'quiet')!.ended?.UPSTREAM_CONNECT_REFUSED, 1);
      await fdsSettle(fds);
    } finally {
      await gateway.stop(1000);
    }
  });
});

describe('L4: a listener removed while a connection is relayed', () => {
  it('the connection ends within shutdownTimeout and its line still reaches its own log file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portico-l4-gone-'));
    const own = join(dir, 'gone.log');
    const other = join(dir, 'other.log');
    const up = await tagged('U');
    const doc = (withGone: boolean) => ({
      shutdownTimeout: '50ms',
      listeners: [
        ...(withGone ? [{ name: 'gone', protocol: 'tcp', listen: '127.0.0.1:0', upstream: 'u', accessLog: { path: own } }] : []),
        { name: 'stays', protocol: 'tcp', listen: '127.0.0.1:0', upstream: 'u', accessLog: { path: other } },
      ],
      upstreams: [{ name: 'u', targets: [{ address: up.address }] }],
    });
    const gw = await startGateway(doc(true));
    try {
      const fds = openFds();
      const c = await connect(port(gw, 'gone'));
      c.on('error', () => undefined);
      const got = readAll(c);
      c.write('still here');
      await waitFor(() => (up.accepted.length === 1 ? true : undefined), 'the connection relayed');
      // The new config has no `gone`, and no listener writing to its log file.
      assert.equal((await gw.reload(doc(false))).ok, true);
      await got;
      c.destroy();
      const line = await lineOf(own, 'gone', () => true);
      assert.equal(line.outcome, 'ok');
      assert.equal(line.upstream, 'u');
      await fdsSettle(fds);
    } finally {
      await gw.close();
      await up.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
