// The PROXY protocol on `protocol: tcp` listeners, through a real gateway
// and real TCP servers: `proxyProtocol: accept` (v1 and v2 headers are
// stripped and their client address is the one the connection middlewares
// and the access log see; no header still works; a server-first upstream is
// reached after the handshake time), `require` (no header, a malformed one
// and a too-slow one are refused and counted, nothing dialled),
// `trustedProxies`, `upstream.proxyProtocol: v1|v2` (a test server parses
// what Portico sends with Portico's parser), and no connection leak when
// many clients drop mid-header or mid-stream.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { closedWithin, connect, echo, readAll, startTcpServer, type TcpServer } from '../helpers/tcp.js';
import { waitFor } from '../helpers/wait.js';
import { encodeProxyHeader, V2_SIGNATURE, type ProxiedAddresses } from '../../src/l4/proxy-protocol/encode.js';
import { readProxyHeader, type ProxyHeaderResult } from '../../src/l4/proxy-protocol/read.js';

const latin1 = (s: string) => Buffer.from(s, 'latin1');

interface ListenerStatus {
  name: string;
  connections: number;
  refused?: Record<string, number>;
}

function refused(gw: TestGateway, name: string, reason: string): number {
  const s = gw.gateway.status() as { listeners: ListenerStatus[] };
  return s.listeners.find((l) => l.name === name)?.refused?.[reason] ?? 0;
}

/** What the upstream behind a `proxyProtocol: v1|v2` upstream got on one connection: its header, then the data. */
interface Seen {
  header: ProxyHeaderResult;
  data: Buffer;
}

/** Open TCP sockets of this process (client, gateway and server sides alike). */
function openTcpHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
}

/** Connects, writes `bytes`, ends, and resolves with everything the gateway sent back and whether it closed. */
async function exchange(port: number, bytes: Buffer): Promise<Buffer> {
  const c = await connect(port);
  c.on('error', () => undefined);
  const got = readAll(c);
  c.end(bytes);
  const out = await got;
  c.destroy();
  return out;
}

/**
 * Connects and writes `bytes` (without ending); resolves true once the
 * gateway closes the connection (a refusal at accept may reset it before
 * the client even saw it connected).
 */
async function refusedAfter(port: number, bytes: Buffer): Promise<boolean> {
  let c: net.Socket;
  try {
    c = await connect(port);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ECONNRESET') return true;
    throw err;
  }
  c.on('error', () => undefined);
  c.on('data', () => assert.fail('a refused connection must not get data'));
  if (bytes.length > 0) c.write(bytes);
  const closed = await closedWithin(c, 10_000);
  c.destroy();
  return closed;
}

describe('PROXY protocol on tcp listeners', () => {
  let echoServer: TcpServer;
  let greeter: TcpServer;
  let ppServer: TcpServer;
  const seen: Seen[] = [];
  let gw: TestGateway;
  let logDir: string;
  const port = (name: string) => gw.gateway.listenerAddress(name)!.port;

  before(async () => {
    echoServer = await startTcpServer(echo);
    // A server-first protocol (SMTP, MySQL…): the server greets, the client waits for it.
    greeter = await startTcpServer((s) => s.end('220 ready\r\n'));
    // Reads the PROXY header Portico sends with Portico's own reader (required), then the data.
    ppServer = await startTcpServer((s) => {
      readProxyHeader(s, { required: true, timeoutMs: 10_000 }).then(
        (header) => {
          const chunks: Buffer[] = [header.rest];
          s.on('data', (c: Buffer) => chunks.push(c));
          s.on('end', () => {
            const data = Buffer.concat(chunks);
            seen.push({ header, data });
            s.end(data);
          });
          s.resume();
        },
        () => s.destroy(),
      );
    });
    logDir = mkdtempSync(join(tmpdir(), 'portico-pp-'));
    const tcp = (name: string, upstream: string, extra: Record<string, unknown>) => ({ name, protocol: 'tcp', listen: '127.0.0.1:0', upstream, accessLog: false, ...extra });
    gw = await startGateway({
      listeners: [
        tcp('acc', 'echo', {
          proxyProtocol: 'accept',
          accessLog: { path: join(logDir, 'access.log') },
          middlewares: [{ 'ip-restriction': { deny: ['203.0.113.7', '2001:db8::7'] } }],
        }),
        tcp('req', 'echo', { proxyProtocol: 'require', timeouts: { handshake: '300ms' } }),
        tcp('req-untrusted', 'echo', { proxyProtocol: 'require', trustedProxies: ['10.0.0.0/8'] }),
        tcp('acc-untrusted', 'echo', { proxyProtocol: 'accept', trustedProxies: ['192.0.2.1'] }),
        tcp('acc-trusted', 'echo', { proxyProtocol: 'accept', trustedProxies: ['127.0.0.0/8'] }),
        tcp('server-first', 'greeter', { proxyProtocol: 'accept', timeouts: { handshake: '200ms' } }),
        tcp('out-v1', 'pp-v1', {}),
        tcp('out-v2', 'pp-v2', { proxyProtocol: 'accept' }),
      ],
      upstreams: [
        { name: 'echo', targets: [{ address: echoServer.address }] },
        { name: 'greeter', targets: [{ address: greeter.address }] },
        { name: 'pp-v1', targets: [{ address: ppServer.address }], proxyProtocol: 'v1' },
        { name: 'pp-v2', targets: [{ address: ppServer.address }], proxyProtocol: 'v2' },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await echoServer.close();
    await greeter.close();
    await ppServer.close();
    rmSync(logDir, { recursive: true, force: true });
  });

  const client = (sourceAddress: string, sourcePort: number, destinationAddress = '198.51.100.1', destinationPort = 6380): ProxiedAddresses => ({
    sourceAddress,
    sourcePort,
    destinationAddress,
    destinationPort,
  });

  describe('accept', () => {
    test('v1 and v2 headers are stripped: the upstream gets the payload only, whether sent with the header or after it', async () => {
      for (const version of ['v1', 'v2'] as const) {
        const hdr = encodeProxyHeader(version, client('203.0.113.5', 40000));
        assert.equal((await exchange(port('acc'), Buffer.concat([hdr, latin1(`PING ${version}\r\n`)]))).toString(), `PING ${version}\r\n`);
        // Header alone first, payload in a later write.
        const c = await connect(port('acc'));
        const got = readAll(c);
        c.write(hdr);
        await new Promise((r) => setTimeout(r, 30));
        c.end(`late ${version}`);
        assert.equal((await got).toString(), `late ${version}`);
        c.destroy();
      }
      // v2 with TLVs (ALPN "h2", a NOOP): skipped, not relayed.
      const v2 = encodeProxyHeader('v2', client('203.0.113.5', 40001));
      const tlvs = Buffer.from([0x01, 0x00, 0x02, 0x68, 0x32, 0x04, 0x00, 0x00]);
      const withTlvs = Buffer.concat([v2.subarray(0, 14), Buffer.from([0x00, v2.readUInt16BE(14) + tlvs.length]), v2.subarray(16), tlvs]);
      assert.equal((await exchange(port('acc'), Buffer.concat([withTlvs, latin1('tlv payload')]))).toString(), 'tlv payload');
    });

    test('the header’s client address is the one ip-restriction checks and the access log records', async () => {
      const dialled = echoServer.accepted.length;
      const before = refused(gw, 'acc', 'ip-restriction');
      // 203.0.113.7 and 2001:db8::7 are denied; the real peer (127.0.0.1) is not, so only the header can refuse them.
      assert.ok(await refusedAfter(port('acc'), Buffer.concat([encodeProxyHeader('v1', client('203.0.113.7', 1234)), latin1('x')])));
      assert.ok(await refusedAfter(port('acc'), Buffer.concat([encodeProxyHeader('v2', client('2001:db8::7', 1234, '2001:db8::1')), latin1('x')])));
      assert.ok(await refusedAfter(port('acc'), Buffer.concat([latin1('PROXY TCP6 ::ffff:203.0.113.7 ::1 1 2\r\n'), latin1('x')])), 'IPv4-mapped form of a denied address');
      assert.equal(refused(gw, 'acc', 'ip-restriction'), before + 3);
      // A neighbour of the denied addresses passes, through v2 over IPv6.
      assert.equal((await exchange(port('acc'), Buffer.concat([encodeProxyHeader('v2', client('2001:db8::8', 5555, '2001:db8::1')), latin1('ok6')]))).toString(), 'ok6');
      assert.equal(echoServer.accepted.length, dialled + 1, 'refused connections never dial the upstream');
      await exchange(port('acc'), Buffer.concat([encodeProxyHeader('v1', client('203.0.113.5', 40123)), latin1('logged')]));
      const lines = await waitFor(() => {
        const text = readFileSync(join(logDir, 'access.log'), 'utf8');
        const all = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
        return all.some((l) => l.clientPort === 40123) && all.some((l) => l.outcome === 'ip-restriction') ? all : undefined;
      }, 'the access log lines');
      const ok = lines.find((l) => l.clientPort === 40123)!;
      assert.equal(ok.client, '203.0.113.5');
      assert.equal(ok.outcome, 'ok');
      assert.equal(ok.bytesUp, 'logged'.length, 'the header is not counted as relayed bytes');
      const denied = lines.filter((l) => l.outcome === 'ip-restriction').map((l) => l.client);
      assert.ok(denied.includes('203.0.113.7') && denied.includes('2001:db8::7'), JSON.stringify(denied));
      assert.ok(!lines.some((l) => l.client === '127.0.0.1'), 'no line names the proxy instead of the client');
    });

    test('a client without a header still works', async () => {
      assert.equal((await exchange(port('acc'), latin1('GET / HTTP/1.1\r\n\r\n'))).toString(), 'GET / HTTP/1.1\r\n\r\n');
      // Fewer bytes than a header's start, then a FIN: they were the client's data after all.
      assert.equal((await exchange(port('acc'), latin1('PROX'))).toString(), 'PROX');
      assert.equal((await exchange(port('acc'), latin1('\r\n'))).toString(), '\r\n');
    });

    test('a server-first protocol: a client that sends nothing is connected after the handshake time', async () => {
      const c = await connect(port('server-first'));
      assert.equal((await readAll(c)).toString(), '220 ready\r\n');
      c.destroy();
      // A client that half-closes at once (it only reads) is connected too.
      const d = await connect(port('server-first'));
      const got = readAll(d);
      d.end();
      assert.equal((await got).toString(), '220 ready\r\n');
      d.destroy();
    });

    test('a malformed header is refused in accept mode too (the spec forbids guessing)', async () => {
      const before = refused(gw, 'acc', 'proxy-protocol');
      assert.ok(await refusedAfter(port('acc'), latin1('PROXY TCP4 203.0.113.5 198.51.100.1 040000 6380\r\n')));
      const v2 = encodeProxyHeader('v2', client('203.0.113.5', 1));
      v2[12] = 0x23; // command 3
      assert.ok(await refusedAfter(port('acc'), v2));
      assert.equal(refused(gw, 'acc', 'proxy-protocol'), before + 2);
    });
  });

  describe('require', () => {
    test('a valid header is accepted', async () => {
      assert.equal((await exchange(port('req'), Buffer.concat([encodeProxyHeader('v2', client('203.0.113.5', 1)), latin1('yes')]))).toString(), 'yes');
    });

    test('no header, a malformed header and a too-slow header are refused and counted; nothing is dialled', async () => {
      const dialled = echoServer.accepted.length;
      const before = refused(gw, 'req', 'proxy-protocol');
      assert.ok(await refusedAfter(port('req'), latin1('GET / HTTP/1.1\r\n\r\n')), 'no header');
      assert.ok(await refusedAfter(port('req'), latin1('PROXY TCP4 203.0.113.5 198.51.100.1 40000 65536\r\nxx')), 'bad port');
      assert.ok(await refusedAfter(port('req'), Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])])), 'absurd v2 length');
      assert.ok(await refusedAfter(port('req'), latin1('PROXY TCP4 203.0.')), 'a header that never completes (timeouts.handshake)');
      assert.ok(await refusedAfter(port('req'), Buffer.alloc(0)), 'nothing at all (timeouts.handshake)');
      assert.equal(refused(gw, 'req', 'proxy-protocol'), before + 5);
      assert.equal(echoServer.accepted.length, dialled);
    });
  });

  describe('trustedProxies', () => {
    test('require: a header from a peer outside trustedProxies is refused', async () => {
      const before = refused(gw, 'req-untrusted', 'proxy-protocol');
      assert.ok(await refusedAfter(port('req-untrusted'), Buffer.concat([encodeProxyHeader('v1', client('203.0.113.5', 1)), latin1('x')])));
      assert.equal(refused(gw, 'req-untrusted', 'proxy-protocol'), before + 1);
    });

    test('accept: an untrusted peer’s header is not believed (relayed as data); a trusted one’s is', async () => {
      const hdr = encodeProxyHeader('v1', client('203.0.113.5', 1));
      assert.equal((await exchange(port('acc-untrusted'), Buffer.concat([hdr, latin1('data')]))).toString('latin1'), `${hdr.toString('latin1')}data`);
      assert.equal((await exchange(port('acc-trusted'), Buffer.concat([hdr, latin1('data')]))).toString('latin1'), 'data');
    });
  });

  describe('upstream proxyProtocol', () => {
    test('v1: the upstream sees the real client address and port, the listener as destination, then the payload', async () => {
      const c = await connect(port('out-v1'));
      const localPort = c.localPort;
      const got = readAll(c);
      c.end('payload one');
      assert.equal((await got).toString(), 'payload one');
      const s = seen.at(-1)!;
      assert.equal(s.header.header?.version, 1);
      assert.deepEqual(s.header.addresses, { sourceAddress: '127.0.0.1', sourcePort: localPort, destinationAddress: '127.0.0.1', destinationPort: port('out-v1') });
      assert.equal(s.data.toString(), 'payload one');
      c.destroy();
    });

    test('v2, behind an accept listener: the client’s header addresses are passed on (v2 in, v2 out)', async () => {
      const n = seen.length;
      const direct = await connect(port('out-v2'));
      const localPort = direct.localPort;
      const got = readAll(direct);
      direct.end('no header in');
      assert.equal((await got).toString(), 'no header in');
      assert.equal(seen.length, n + 1);
      assert.equal(seen[n]!.header.header?.version, 2);
      assert.deepEqual(seen[n]!.header.addresses, { sourceAddress: '127.0.0.1', sourcePort: localPort, destinationAddress: '127.0.0.1', destinationPort: port('out-v2') });
      direct.destroy();
      const original = client('2001:db8::5', 61000, '2001:db8::80', 443);
      assert.equal((await exchange(port('out-v2'), Buffer.concat([encodeProxyHeader('v1', original), latin1('chained')]))).toString(), 'chained');
      assert.equal(seen.length, n + 2);
      assert.deepEqual(seen[n + 1]!.header.addresses, original);
      assert.equal(seen[n + 1]!.data.toString(), 'chained');
    });
  });

  test('200 clients that drop mid-header or mid-stream leave no connection and no socket behind', async () => {
    const handles = openTcpHandles();
    const full = encodeProxyHeader('v2', client('203.0.113.5', 2));
    const text = encodeProxyHeader('v1', client('203.0.113.5', 3));
    for (let batch = 0; batch < 4; batch++) {
      await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const k = batch * 50 + i;
          const c = await connect(port(k % 2 === 0 ? 'acc' : 'req'));
          c.on('error', () => undefined);
          const hdr = k % 3 === 0 ? full : text;
          // Part of a header, or a whole header and part of the payload; then a FIN, a reset or a plain close.
          c.write(k % 4 < 2 ? hdr.subarray(0, 1 + (k % (hdr.length - 1))) : Buffer.concat([hdr, latin1('partial')]));
          await new Promise((r) => setImmediate(r));
          if (k % 3 === 0) c.end();
          else if (k % 3 === 1) c.resetAndDestroy();
          else c.destroy();
          await closedWithin(c, 10_000);
          c.destroy();
        }),
      );
    }
    await waitFor(() => gw.gateway.connections('acc') === 0 && gw.gateway.connections('req') === 0, 'every connection to be released', 15_000);
    await waitFor(() => echoServer.open() === 0, 'the upstream sides to close', 15_000);
    await waitFor(() => openTcpHandles() <= handles, `TCP handles back to ${handles} (now ${openTcpHandles()})`, 15_000);
  });
});
