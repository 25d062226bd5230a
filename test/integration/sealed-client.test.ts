// connectSealed (src/l4/sealed/client.ts; docs/sealed.md "Client library"):
// against the real gateway (200 then a byte stream, and each failure as a
// typed SealedConnectError), and against scripted raw TCP peers for what a
// gateway cannot be made to do on demand: bytes glued to the 200, an answer
// split over reads, unexpected answers, early close, silence.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type net from 'node:net';
import { connectSealed, SealedConnectError, type SealedConnectErrorCode } from '../../src/l4/sealed/client.js';
import { sealV1, sealV2 } from '../../src/l4/sealed/codec.js';
import { startGateway } from '../helpers/gateway.js';
import { opensslSeal, startBlackhole } from '../helpers/sealed.js';
import { deadPort, readAll, startTcpServer, type TcpServer } from '../helpers/tcp.js';

const SECRET = 'client-test-secret';

function isConnectError(code: SealedConnectErrorCode, status: number) {
  return (err: unknown) => {
    assert.ok(err instanceof SealedConnectError, String(err));
    assert.equal(err.code, code);
    assert.equal(err.status, status);
    return true;
  };
}

/** A raw peer that records the first line it gets and then plays `script` on the socket. */
async function scripted(script: (s: net.Socket) => void): Promise<TcpServer & { lines: string[] }> {
  const lines: string[] = [];
  const server = await startTcpServer((s) => {
    let buf = '';
    const onData = (c: Buffer) => {
      buf += c.toString('latin1');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      s.off('data', onData);
      lines.push(buf.slice(0, nl + 1));
      script(s);
    };
    s.on('data', onData);
  });
  return Object.assign(server, { lines });
}

describe('connectSealed with the gateway', () => {
  it('resolves after 200 with a socket to the backend; object or string address; v1 from openssl and v2', async () => {
    const backend = await startTcpServer((s) => s.pipe(s));
    const gw = await startGateway({
      listeners: [{ name: 'sealed', protocol: 'sealed', listen: '127.0.0.1:0', secret: SECRET, accessLog: false, allow: [{ cidr: '127.0.0.1/32' }] }],
    });
    try {
      const address = gw.gateway.listenerAddress('sealed')!;
      for (const [gateway, line] of [
        [address, sealV1(backend.address, { secret: SECRET, kdf: 'md5' })],
        [`127.0.0.1:${address.port}`, `${opensslSeal(backend.address, 'sha256', SECRET)}\n`],
        [address, sealV2(backend.address, { secret: SECRET, exp: Math.floor(Date.now() / 1000) + 60 })],
      ] as const) {
        const socket = await connectSealed(gateway, line);
        const echoed = readAll(socket);
        socket.end('through the gateway');
        assert.equal((await echoed).toString(), 'through the gateway');
      }
    } finally {
      await gw.close();
      await backend.close();
    }
  });

  it('rejects with the code and status the gateway answered: 400, 401, 502, 504', async () => {
    const hole = await startBlackhole();
    const gw = await startGateway({
      listeners: [{ name: 'sealed', protocol: 'sealed', listen: '127.0.0.1:0', secret: SECRET, accessLog: false, allow: [{ cidr: '127.0.0.1/32' }], lineLimit: 64, retry: 1, timeout: '200ms' }],
    });
    try {
      const gateway = gw.gateway.listenerAddress('sealed')!;
      const dead = await deadPort();
      await assert.rejects(connectSealed(gateway, 'A'.repeat(100)), isConnectError('BAD_LINE', 400));
      await assert.rejects(connectSealed(gateway, 'not-a-sealed-line'), isConnectError('BAD_SEAL', 401));
      await assert.rejects(connectSealed(gateway, sealV1(`127.0.0.1:${dead}`, { secret: SECRET, kdf: 'md5' })), isConnectError('DIAL_FAILED', 502));
      await assert.rejects(connectSealed(gateway, sealV1(`127.0.0.1:${hole.port}`, { secret: SECRET, kdf: 'md5' })), isConnectError('DIAL_TIMEOUT', 504));
    } finally {
      await gw.close();
      await hole.close();
    }
  });
});

describe('connectSealed against scripted peers', () => {
  it('sends a wrapped `openssl enc -a` line as one line', async () => {
    const peer = await scripted((s) => s.end('200'));
    try {
      // What openssl prints for a long address: base64 in 64-column lines.
      const joined = opensslSeal(`${'x'.repeat(60)}.example.org:443`, 'pbkdf2', SECRET);
      const wrapped = `${joined.match(/.{1,64}/g)!.join('\n')}\n`;
      assert.ok(wrapped.split('\n').length > 2, 'the line is wrapped');
      const socket = await connectSealed(`127.0.0.1:${peer.port}`, wrapped);
      socket.destroy();
      assert.deepEqual(peer.lines, [`${joined}\n`]);
    } finally {
      await peer.close();
    }
  });

  it('keeps the bytes that came with the 200, in one read or split over several', async () => {
    const glued = await scripted((s) => s.end('200HELLO'));
    const split = await scripted((s) => {
      s.write('2');
      setTimeout(() => s.write('00'), 20);
      setTimeout(() => s.end('WORLD'), 40);
    });
    try {
      for (const [peer, expect] of [[glued, 'HELLO'], [split, 'WORLD']] as const) {
        const socket = await connectSealed(`127.0.0.1:${peer.port}`, 'U2FsdGVkX1+line\n');
        assert.equal((await readAll(socket)).toString(), expect);
        assert.deepEqual(peer.lines, ['U2FsdGVkX1+line\n'], 'the peer got the line once, newline-terminated');
      }
    } finally {
      await glued.close();
      await split.close();
    }
  });

  it('UNEXPECTED for other answers, CLOSED on an early close, TIMEOUT on silence', async () => {
    const peers = await Promise.all([
      scripted((s) => s.end('999')),
      scripted((s) => s.end('abc')),
      scripted((s) => s.end('20')),
      scripted(() => undefined),
    ]);
    try {
      const [weird, letters, short, silent] = peers.map((p) => `127.0.0.1:${p.port}`) as [string, string, string, string];
      await assert.rejects(connectSealed(weird, 'x'), isConnectError('UNEXPECTED', 999));
      await assert.rejects(connectSealed(letters, 'x'), isConnectError('UNEXPECTED', 0));
      await assert.rejects(connectSealed(short, 'x'), isConnectError('CLOSED', 0));
      await assert.rejects(connectSealed(silent, 'x', { timeout: 200 }), isConnectError('TIMEOUT', 0));
      const abort = new AbortController();
      const pending = connectSealed(silent, 'x', { timeout: 60_000, signal: abort.signal });
      abort.abort();
      await assert.rejects(pending, isConnectError('CLOSED', 0));
    } finally {
      await Promise.all(peers.map((p) => p.close()));
    }
  });

  it('CLOSED when the gateway cannot be reached; RangeError for a bad address or line', async () => {
    const dead = await deadPort();
    await assert.rejects(connectSealed({ host: '127.0.0.1', port: dead }, 'x'), (err: unknown) => {
      assert.ok(err instanceof SealedConnectError && err.code === 'CLOSED' && err.status === 0);
      assert.equal((err.cause as { code?: string }).code, 'ECONNREFUSED');
      return true;
    });
    await assert.rejects(connectSealed('no-port', 'x'), RangeError);
    await assert.rejects(connectSealed({ host: '127.0.0.1', port: 0 }, 'x'), RangeError);
    await assert.rejects(connectSealed(`127.0.0.1:${dead}`, '\n'), RangeError);
    await assert.rejects(connectSealed(`127.0.0.1:${dead}`, 'two words'), RangeError);
  });
});
