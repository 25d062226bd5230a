// `protocol: tls` listeners end to end, with real node:tls peers and
// certificates from a throwaway PKI: termination (certificates by SNI,
// routes by SNI, half-close, client certificates required), SNI
// passthrough (the backend's own handshake proves the bytes went through
// untouched; wildcard and default routes; no SNI, garbage, a late or a
// byte-at-a-time ClientHello), and TLS origination to upstream targets
// (a verified CA, and a CA that does not verify).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { createPki, type Issued, type Pki } from '../helpers/certs.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { connect, readAll, startTcpServer, type TcpServer } from '../helpers/tcp.js';
import { waitFor } from '../helpers/wait.js';

let pki: Pki;
let logDir: string;

before(async () => {
  pki = await createPki();
  logDir = mkdtempSync(join(tmpdir(), 'portico-l4-tls-'));
});
after(async () => {
  await pki.cleanup();
  rmSync(logDir, { recursive: true, force: true });
});

interface TlsBackend {
  readonly address: string;
  /** TCP connections accepted (before any handshake). */
  readonly connections: () => number;
  /** Plaintext each secured connection received, in order. */
  readonly received: string[];
  close(): Promise<void>;
}

/** A TLS echo server with `cert`: each secured connection gets its bytes back, and an end for its end. */
async function startTlsBackend(cert: Issued): Promise<TlsBackend> {
  const received: string[] = [];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = tls.createServer({ cert: cert.certPem, key: cert.keyPem, allowHalfOpen: true }, (s) => {
    const i = received.push('') - 1;
    s.on('data', (c: Buffer) => (received[i] += c.toString()));
    s.pipe(s);
  });
  server.on('connection', (s: net.Socket) => {
    connections++;
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    connections: () => connections,
    received,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A plain TCP upstream that answers `<tag>:<what it got>` once the client has ended its side (so only a working half-close gets an answer). */
function startAnswerAtEnd(tag: string): Promise<TcpServer> {
  return startTcpServer((s) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => s.end(`${tag}:${Buffer.concat(chunks).toString()}`));
  });
}

interface Exchange {
  /** CN of the certificate the peer presented; undefined when no handshake completed. */
  cn?: string;
  /** Everything read until the connection ended. */
  reply: string;
  /** The first error (a refused handshake, a reset). */
  error?: string;
}

/**
 * One TLS connection: handshake (verifying the peer against the test CA
 * and `servername` unless overridden), send `data`, end, read to the end.
 */
function exchange(port: number, data: string, o: tls.ConnectionOptions = {}): Promise<Exchange> {
  return new Promise((resolve) => {
    const out: Exchange = { reply: '' };
    // allowHalfOpen reaches the socket (missing from @types/node 20's ConnectionOptions).
    const s = tls.connect({ host: '127.0.0.1', port, ca: pki.caPem, allowHalfOpen: true, ...o } as tls.ConnectionOptions);
    s.on('secureConnect', () => {
      const cn = s.getPeerCertificate().subject?.CN;
      out.cn = Array.isArray(cn) ? cn[0] : cn;
      s.end(data);
    });
    s.on('data', (c: Buffer) => (out.reply += c.toString()));
    s.on('error', (err: Error & { code?: string }) => (out.error ??= err.code ?? err.message));
    s.on('end', () => s.end());
    s.on('close', () => resolve(out));
  });
}

/** The access log's connection lines for `listener`. */
function logLines(path: string, listener: string): Record<string, unknown>[] {
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.type === 'connection' && l.listener === listener);
}

/** Waits for the first log line of `listener` that has every field of `match` (a RegExp tests the field as a string). */
function logged(path: string, listener: string, match: Record<string, unknown>): Promise<Record<string, unknown>> {
  const fits = (l: Record<string, unknown>) => Object.entries(match).every(([k, v]) => (v instanceof RegExp ? l[k] !== undefined && v.test(String(l[k])) : l[k] === v));
  return waitFor(() => logLines(path, listener).find(fits), `a log line ${JSON.stringify(match)}`);
}

/** Resolves once the peer has ended or closed the connection (the test sockets are half-open capable); the socket is then destroyed. */
function hungUp(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      socket.destroy();
      resolve();
    };
    if (socket.readableEnded || socket.destroyed) return done();
    socket.once('end', done);
    socket.once('close', done);
  });
}

interface RelayOptions {
  /** Sent before the client's bytes, in the same write as its first chunk (a PROXY protocol header). */
  prefix?: Buffer;
  /** Forward client → gateway one byte per write (Nagle off), a turn of the event loop apart. */
  dribble?: boolean;
}

/** A TCP relay on port 0 in front of `target` (half-close aware), to shape what the gateway receives. */
async function startRelay(target: number, o: RelayOptions): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const relay = net.createServer({ allowHalfOpen: true }, (down) => {
    const up = net.connect({ host: '127.0.0.1', port: target, noDelay: true, allowHalfOpen: true });
    for (const s of [up, down]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    }
    up.on('error', () => down.destroy());
    down.on('error', () => up.destroy());
    up.pipe(down);
    let queue = o.prefix ?? Buffer.alloc(0);
    let first = true;
    let pumping = false;
    const pump = () => {
      pumping = queue.length > 0 && !up.destroyed;
      if (!pumping) {
        if (down.readableEnded) up.end();
        return;
      }
      const n = o.dribble ? 1 : queue.length;
      up.write(queue.subarray(0, n));
      queue = queue.subarray(n);
      setImmediate(pump);
    };
    down.on('data', (c: Buffer) => {
      queue = Buffer.concat([queue, c]);
      if (first && o.prefix !== undefined && !o.dribble) {
        first = false;
        up.write(queue);
        queue = Buffer.alloc(0);
        return;
      }
      if (!pumping) pump();
    });
    down.on('end', () => {
      if (!pumping) up.end();
    });
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  return {
    port: (relay.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        relay.close(() => r());
      }),
  };
}

const PROXY_V1 = Buffer.from('PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n', 'latin1');

function port(gw: TestGateway, name: string): number {
  return gw.gateway.listenerAddress(name)!.port;
}

describe('tls listener: termination', () => {
  let gw: TestGateway;
  let plain: TcpServer;
  let plainB: TcpServer;
  let client: Issued;
  const log = () => join(logDir, 'termination.log');

  before(async () => {
    const [a, b] = await Promise.all([pki.issue('a.test'), pki.issue('b.test', { sans: ['b.test', '*.b.test'] })]);
    client = await pki.issue('client.test', { client: true });
    plain = await startAnswerAtEnd('plain');
    plainB = await startAnswerAtEnd('plain-b');
    const certificates = [
      { cert: a.cert, key: a.key, default: true },
      { cert: b.cert, key: b.key },
    ];
    gw = await startGateway({
      log: { level: 'silent' },
      listeners: [
        {
          name: 'term',
          protocol: 'tls',
          listen: '127.0.0.1:0',
          accessLog: { path: log() },
          tls: { certificates },
          routes: [{ sni: '*.b.test', upstream: 'plain-b' }],
          upstream: 'plain',
        },
        {
          name: 'term-pp',
          protocol: 'tls',
          listen: '127.0.0.1:0',
          proxyProtocol: 'require',
          accessLog: { path: log() },
          tls: { certificates },
          upstream: 'plain',
        },
        {
          name: 'mtls',
          protocol: 'tls',
          listen: '127.0.0.1:0',
          accessLog: { path: log() },
          tls: { certificates, clientCa: pki.caCert, clientAuth: 'require' },
          upstream: 'plain',
        },
      ],
      upstreams: [
        { name: 'plain', targets: [{ address: plain.address }] },
        { name: 'plain-b', targets: [{ address: plainB.address }] },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await plain.close();
    await plainB.close();
  });

  it('serves each SNI name its own certificate and forwards the plaintext, half-close included', async () => {
    const a = await exchange(port(gw, 'term'), 'hello a', { servername: 'a.test' });
    assert.deepEqual(a, { cn: 'a.test', reply: 'plain:hello a' });
    // b.test's certificate (verified for its SAN), routed to plain-b by *.b.test.
    const b = await exchange(port(gw, 'term'), 'hello b', { servername: 'x.b.test' });
    assert.deepEqual(b, { cn: 'b.test', reply: 'plain-b:hello b' });
    const line = await logged(log(), 'term', { sni: 'x.b.test' });
    assert.equal(line.outcome, 'ok');
    assert.equal(line.upstream, 'plain-b');
    assert.equal(line.bytesUp, 'hello b'.length, 'the upstream got the plaintext');
    await waitFor(() => gw.gateway.connections('term') === 0, 'the connections to be gone');
  });

  it('a name with no route goes to the default upstream, on the default certificate', async () => {
    const r = await exchange(port(gw, 'term'), 'other', { servername: 'unknown.test', checkServerIdentity: () => undefined });
    assert.deepEqual(r, { cn: 'a.test', reply: 'plain:other' });
  });

  it('after a PROXY protocol header sent with the ClientHello, terminates and logs the real client', async () => {
    // The relay writes the header and the ClientHello at once: the gateway reads past the header into the hello.
    const relay = await startRelay(port(gw, 'term-pp'), { prefix: PROXY_V1 });
    try {
      const r = await exchange(relay.port, 'proxied', { servername: 'b.test' });
      assert.deepEqual(r, { cn: 'b.test', reply: 'plain:proxied' });
      const line = await logged(log(), 'term-pp', { outcome: 'ok' });
      assert.equal(line.client, '203.0.113.7');
      assert.equal(line.sni, 'b.test');
    } finally {
      await relay.close();
    }
  });

  it('clientAuth require: no client certificate → the handshake is refused and nothing is dialled', async () => {
    const before = plain.accepted.length;
    const r = await exchange(port(gw, 'mtls'), 'no cert', { servername: 'a.test' });
    assert.ok(r.error !== undefined, 'the client saw an error');
    assert.equal(r.reply, '');
    const line = await logged(log(), 'mtls', { outcome: 'TLS_HANDSHAKE_FAILED' });
    assert.match(String(line.error), /certificate/i);
    assert.equal(plain.accepted.length, before, 'the upstream was not dialled');
  });

  it('clientAuth require: a client certificate from another CA is refused', async () => {
    const stranger = await pki.issue('stranger.test', { client: true, otherCa: true });
    const before = plain.accepted.length;
    // With TLS 1.3 the client's handshake is over before the server checks its certificate: it sees a close, no answer.
    const r = await exchange(port(gw, 'mtls'), 'bad cert', { servername: 'a.test', cert: stranger.certPem, key: stranger.keyPem });
    assert.equal(r.reply, '');
    const line = await logged(log(), 'mtls', { outcome: 'TLS_HANDSHAKE_FAILED', error: /^UNABLE_TO_VERIFY_LEAF_SIGNATURE/ });
    assert.equal(line.sni, undefined);
    assert.equal(plain.accepted.length, before, 'the upstream was not dialled');
  });

  it('clientAuth require: a valid client certificate passes', async () => {
    const r = await exchange(port(gw, 'mtls'), 'with cert', { servername: 'a.test', cert: client.certPem, key: client.keyPem });
    assert.deepEqual(r, { cn: 'a.test', reply: 'plain:with cert' });
  });

  it('a reload with new certificate files serves them to new connections', async () => {
    const [first, second] = await Promise.all([pki.issue('reload.test'), pki.issue('reload.test')]);
    const doc = (c: Issued) => ({
      log: { level: 'silent' },
      listeners: [{ name: 'r', protocol: 'tls', listen: '127.0.0.1:0', accessLog: false, tls: { certificates: [{ cert: c.cert, key: c.key }] }, upstream: 'plain' }],
      upstreams: [{ name: 'plain', targets: [{ address: plain.address }] }],
    });
    const served = (p: number) =>
      new Promise<string>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port: p, ca: pki.caPem, servername: 'reload.test' }, () => {
          resolve(s.getPeerCertificate().fingerprint256);
          s.destroy();
        });
        s.on('error', reject);
      });
    const fingerprint = (c: Issued) => new X509Certificate(c.certPem).fingerprint256;
    const gw2 = await startGateway(doc(first));
    try {
      const p = port(gw2, 'r');
      assert.equal(await served(p), fingerprint(first));
      const result = await gw2.reload(doc(second));
      assert.ok(result.ok);
      assert.equal(port(gw2, 'r'), p, 'the same socket');
      assert.equal(await served(p), fingerprint(second));
    } finally {
      await gw2.close();
    }
  });

  it('a client that never finishes its handshake is closed after timeouts.handshake', async () => {
    const gw2 = await startGateway({
      log: { level: 'silent' },
      listeners: [
        { name: 'slow', protocol: 'tls', listen: '127.0.0.1:0', accessLog: { path: log() }, tls: { certificates: [{ cert: client.cert, key: client.key }] }, upstream: 'plain', timeouts: { handshake: '200ms' } },
      ],
      upstreams: [{ name: 'plain', targets: [{ address: plain.address }] }],
    });
    try {
      const c = await connect(port(gw2, 'slow'));
      c.write(Buffer.from([22, 3, 1, 0, 200, 1])); // the start of a ClientHello, and then nothing
      await hungUp(c);
      const line = await logged(log(), 'slow', { outcome: 'TLS_HANDSHAKE_FAILED' });
      assert.match(String(line.error), /ETIMEDOUT|timed out|timeout/i);
    } finally {
      await gw2.close();
    }
  });
});

describe('tls listener: SNI passthrough', () => {
  let gw: TestGateway;
  const backends: Record<string, TlsBackend> = {};
  const log = () => join(logDir, 'passthrough.log');
  const total = () => Object.values(backends).reduce((n, b) => n + b.connections(), 0);

  before(async () => {
    const [a, b, w, d] = await Promise.all([
      pki.issue('backend-a', { sans: ['a.test'] }),
      pki.issue('backend-b', { sans: ['b.test'] }),
      pki.issue('backend-w', { sans: ['*.wild.test'] }),
      pki.issue('backend-d', { sans: ['default.test', 'unknown.test'] }),
    ]);
    backends.a = await startTlsBackend(a);
    backends.b = await startTlsBackend(b);
    backends.w = await startTlsBackend(w);
    backends.d = await startTlsBackend(d);
    const routes = [
      { sni: 'a.test', upstream: 'back-a' },
      { sni: 'B.Test', upstream: 'back-b' },
      { sni: '*.wild.test', upstream: 'back-w' },
    ];
    gw = await startGateway({
      listeners: [
        { name: 'sni', protocol: 'tls', listen: '127.0.0.1:0', passthrough: true, accessLog: { path: log() }, routes, upstream: 'back-d' },
        { name: 'strict', protocol: 'tls', listen: '127.0.0.1:0', passthrough: true, accessLog: { path: log() }, routes: routes.slice(0, 1), timeouts: { handshake: '300ms' } },
        { name: 'sni-pp', protocol: 'tls', listen: '127.0.0.1:0', passthrough: true, proxyProtocol: 'require', accessLog: { path: log() }, routes },
      ],
      upstreams: Object.entries(backends).map(([k, b]) => ({ name: `back-${k}`, targets: [{ address: b.address }] })),
    });
  });
  after(async () => {
    await gw.close();
    await Promise.all(Object.values(backends).map((b) => b.close()));
  });

  it('routes by SNI to the backend that owns the name; its own handshake verifies end to end', async () => {
    const a = await exchange(port(gw, 'sni'), 'to a', { servername: 'a.test' });
    assert.deepEqual(a, { cn: 'backend-a', reply: 'to a' });
    const b = await exchange(port(gw, 'sni'), 'to b', { servername: 'b.test' });
    assert.deepEqual(b, { cn: 'backend-b', reply: 'to b' });
    assert.deepEqual(backends.a!.received, ['to a']);
    assert.deepEqual(backends.b!.received, ['to b']);
    const line = await logged(log(), 'sni', { sni: 'b.test' });
    assert.equal(line.outcome, 'ok');
    assert.equal(line.upstream, 'back-b');
    await waitFor(() => gw.gateway.connections('sni') === 0, 'the connections to be gone');
  });

  it('a wildcard route takes names under its suffix; other names go to the default upstream', async () => {
    assert.deepEqual(await exchange(port(gw, 'sni'), 'w', { servername: 'api.wild.test' }), { cn: 'backend-w', reply: 'w' });
    assert.deepEqual(await exchange(port(gw, 'sni'), 'd', { servername: 'unknown.test' }), { cn: 'backend-d', reply: 'd' });
    // A client that sends no SNI (an IP host) gets the default too; it checks the certificate itself.
    assert.deepEqual(await exchange(port(gw, 'sni'), 'n', { checkServerIdentity: () => undefined }), { cn: 'backend-d', reply: 'n' });
  });

  it('no SNI and no default upstream: closed without dialling', async () => {
    const before = total();
    const r = await exchange(port(gw, 'strict'), 'x', { checkServerIdentity: () => undefined });
    assert.equal(r.cn, undefined, 'no handshake');
    assert.equal(r.reply, '');
    const line = await logged(log(), 'strict', { outcome: 'NO_ROUTE' });
    assert.equal(line.sni, undefined);
    const miss = await exchange(port(gw, 'strict'), 'x', { servername: 'b.test' });
    assert.equal(miss.cn, undefined, 'an unrouted name is closed too');
    await logged(log(), 'strict', { outcome: 'NO_ROUTE', sni: 'b.test' });
    assert.equal(total(), before, 'no backend was dialled');
  });

  it('bytes that are not a ClientHello: closed without dialling', async () => {
    const before = total();
    const c = await connect(port(gw, 'sni'));
    const got = readAll(c);
    c.on('error', () => undefined);
    c.write('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n');
    await hungUp(c);
    assert.equal((await got).length, 0);
    const line = await logged(log(), 'sni', { outcome: 'BAD_CLIENT_HELLO' });
    assert.match(String(line.error), /not-tls/);
    assert.equal(total(), before, 'no backend was dialled');
  });

  it('a ClientHello that does not arrive within timeouts.handshake: closed without dialling', async () => {
    const before = total();
    const c = await connect(port(gw, 'strict'));
    c.on('error', () => undefined);
    c.write(Buffer.from([22, 3, 1, 0, 200, 1, 0])); // a record promising 200 bytes, 2 of which come
    await hungUp(c);
    await logged(log(), 'strict', { outcome: 'HANDSHAKE_TIMEOUT' });
    assert.equal(total(), before);
  });

  it('a ClientHello dribbled one byte per segment still routes', async () => {
    const relay = await startRelay(port(gw, 'sni'), { dribble: true });
    try {
      const r = await exchange(relay.port, 'slowly', { servername: 'b.test' });
      assert.deepEqual(r, { cn: 'backend-b', reply: 'slowly' });
    } finally {
      await relay.close();
    }
  });

  it('after a PROXY protocol header sent with the ClientHello, routes and logs the real client', async () => {
    const relay = await startRelay(port(gw, 'sni-pp'), { prefix: PROXY_V1 });
    try {
      const r = await exchange(relay.port, 'proxied', { servername: 'a.test' });
      assert.deepEqual(r, { cn: 'backend-a', reply: 'proxied' });
      const line = await logged(log(), 'sni-pp', { outcome: 'ok' });
      assert.equal(line.client, '203.0.113.7');
      assert.equal(line.sni, 'a.test');
    } finally {
      await relay.close();
    }
  });
});

describe('TLS origination to upstream targets', () => {
  let gw: TestGateway;
  let good: TlsBackend;
  let stranger: TlsBackend;
  const log = () => join(logDir, 'origination.log');

  before(async () => {
    good = await startTlsBackend(await pki.issue('origin.test'));
    stranger = await startTlsBackend(await pki.issue('origin.test', { otherCa: true }));
    const front = await pki.issue('front.test');
    gw = await startGateway({
      listeners: [
        { name: 'tcp-good', protocol: 'tcp', listen: '127.0.0.1:0', accessLog: { path: log() }, upstream: 'good' },
        { name: 'tcp-bad', protocol: 'tcp', listen: '127.0.0.1:0', accessLog: { path: log() }, upstream: 'bad', retry: 1 },
        { name: 'reencrypt', protocol: 'tls', listen: '127.0.0.1:0', accessLog: { path: log() }, tls: { certificates: [{ cert: front.cert, key: front.key }] }, upstream: 'good' },
      ],
      upstreams: [
        { name: 'good', targets: [{ address: good.address }], tls: { ca: pki.caCert, serverName: 'origin.test' } },
        // The right name, from a CA the upstream does not trust.
        { name: 'bad', targets: [{ address: stranger.address }], tls: { ca: pki.caCert, serverName: 'origin.test' } },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await good.close();
    await stranger.close();
  });

  it('a tcp listener speaks TLS to a target whose certificate verifies against the CA', async () => {
    const c = await connect(port(gw, 'tcp-good'));
    const got = readAll(c);
    c.end('over tls');
    assert.equal((await got).toString(), 'over tls');
    assert.ok(good.received.includes('over tls'), 'the target decrypted what the client sent');
  });

  it('a terminating tls listener re-encrypts to the target', async () => {
    const r = await exchange(port(gw, 'reencrypt'), 'twice', { servername: 'front.test' });
    assert.deepEqual(r, { cn: 'front.test', reply: 'twice' });
    assert.ok(good.received.includes('twice'));
  });

  it('a target whose certificate does not verify: the client is closed and the failure logged', async () => {
    const c = await connect(port(gw, 'tcp-bad'));
    c.on('error', () => undefined);
    const got = readAll(c);
    c.write('secret');
    await hungUp(c);
    assert.equal((await got).length, 0);
    const line = await logged(log(), 'tcp-bad', { outcome: 'DIAL_FAILED' });
    assert.match(String(line.error), /^TLS: unable to verify/);
    assert.ok(stranger.received.every((r) => r === ''), 'no byte reached the target');
  });
});
