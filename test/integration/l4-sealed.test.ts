// The sealed-address gateway (issue 5; docs/sealed.md "Listener"), end to
// end over real sockets: every 3-byte answer (200, 400, 401, 502, 504),
// lines from the real openssl CLI (md5, sha256, pbkdf2) and from `portico
// seal` (v1, v2, expired v2), the allow list (CIDR, ports, a resolved
// name), uniformErrors, the access log, reload and graceful close.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type net from 'node:net';
import { validateConfig } from '../../src/config/load.js';
import { sealV1, sealV2 } from '../../src/l4/sealed/codec.js';
import { runCli } from '../helpers/cli.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { exchange, opensslSeal, startBlackhole } from '../helpers/sealed.js';
import { closedWithin, connect, deadPort, readAll, startTcpServer, type TcpServer } from '../helpers/tcp.js';
import { waitFor } from '../helpers/wait.js';

const SECRET = 'sealed-listener-test-secret';

function sealedDoc(listener: Record<string, unknown> = {}) {
  return {
    listeners: [
      { name: 'sealed', protocol: 'sealed', listen: '127.0.0.1:0', secret: SECRET, accessLog: false, allow: [{ cidr: '127.0.0.1/32' }], timeout: '2s', ...listener },
    ],
  };
}

function portOf(gw: TestGateway): number {
  return gw.gateway.listenerAddress('sealed')!.port;
}

/** An echo server that also records, per connection, everything it received. */
async function recordingEcho(): Promise<TcpServer & { received: string[] }> {
  const received: string[] = [];
  const server = await startTcpServer((s) => {
    const i = received.push('') - 1;
    s.on('data', (c: Buffer) => (received[i] += c.toString('latin1')));
    s.pipe(s);
  });
  return Object.assign(server, { received });
}

/** Sends `line\n` (and `after`) and returns what the gateway sent before closing. */
async function ask(gw: TestGateway, line: string, after = ''): Promise<string> {
  return (await exchange(portOf(gw), `${line}\n${after}`)).received.toString('latin1');
}

describe('sealed listener: config', () => {
  it("validates the issue's listener entry; handshakeTimeout is timeouts.handshake", () => {
    const r = validateConfig({
      listeners: [
        { name: 'sealed', protocol: 'sealed', listen: '127.0.0.1:4043', secret: 's', kdf: 'auto', allow: [{ cidr: '127.0.0.1/32' }, { cidr: '10.0.0.0/8', ports: [6379, 3306] }], retry: 1, timeout: '3s', handshakeTimeout: '5s' },
      ],
    });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    const l = r.config.listeners[0] as unknown as Record<string, unknown>;
    assert.deepEqual(l.timeouts, { idle: 3_600_000, handshake: 5_000 });
    assert.equal(l.handshakeTimeout, undefined);
    assert.equal(l.uniformDelay, 3_500);
    const other = validateConfig(sealedDoc({ handshakeTimeout: '250ms' }));
    assert.ok(other.ok && (other.config.listeners[0] as unknown as { timeouts: { handshake: number } }).timeouts.handshake === 250);
  });

  it('refuses handshakeTimeout together with timeouts.handshake, and a uniformDelay below retry × timeout', () => {
    const both = validateConfig(sealedDoc({ handshakeTimeout: '1s', timeouts: { handshake: '2s' } }));
    assert.ok(!both.ok);
    assert.match(JSON.stringify(both.errors), /handshakeTimeout/);
    const short = validateConfig(sealedDoc({ uniformErrors: true, retry: 2, timeout: '1s', uniformDelay: '1s' }));
    assert.ok(!short.ok);
    assert.match(JSON.stringify(short.errors), /uniformDelay/);
  });
});

describe('sealed listener: 200 and relaying', () => {
  let backend: Awaited<ReturnType<typeof recordingEcho>>;
  let gw: TestGateway;
  before(async () => {
    backend = await recordingEcho();
    gw = await startGateway(sealedDoc());
  });
  after(async () => {
    await gw.close();
    await backend.close();
  });

  for (const kdf of ['md5', 'sha256', 'pbkdf2'] as const) {
    it(`opens an openssl enc -a line (${kdf}, wrapped then joined), answers 200, forwards the early bytes first`, async () => {
      const line = opensslSeal(`127.0.0.1:${backend.port}`, kdf, SECRET);
      const before = backend.received.length;
      const got = await talk(portOf(gw), `${line}\nEARLY`, 'EARLY', '+late');
      assert.equal(got, '200EARLY+late');
      assert.equal(backend.received[before], 'EARLY+late', 'the backend got the early bytes, then the rest, and not the line');
    });
  }

  it('opens `openssl enc -A` and `echo ADDR | openssl enc` lines, and \\r\\n line ends', async () => {
    for (const [line, end] of [
      [opensslSeal(`127.0.0.1:${backend.port}`, 'pbkdf2', SECRET, true), '\n'],
      [opensslSeal(`127.0.0.1:${backend.port}\n`, 'sha256', SECRET), '\r\n'],
    ] as const) {
      assert.equal(await talk(portOf(gw), `${line}${end}x`, 'x', 'y'), '200xy');
    }
  });

  it('opens `portico seal` lines: v1 (pbkdf2) and v2; an expired v2 line is 401', async () => {
    for (const args of [[], ['--kdf', 'md5'], ['--v2', '--ttl', '1h']]) {
      const r = await runCli(['seal', ...args, `127.0.0.1:${backend.port}`], { env: { PORTICO_SEALED_SECRET: SECRET }, timeoutMs: 20_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await talk(portOf(gw), `${r.stdout.trim()}\nping`, 'ping', ''), '200ping', args.join(' '));
    }
    const expired = sealV2(`127.0.0.1:${backend.port}`, { secret: SECRET, exp: Math.floor(Date.now() / 1000) - 1 });
    assert.equal(await ask(gw, expired), '401');
  });

  it('a backend that speaks first: its bytes follow the 200', async () => {
    const greeter = await startTcpServer((s) => s.end('HELLO'));
    try {
      assert.equal(await ask(gw, sealV1(greeter.address, { secret: SECRET, kdf: 'md5' })), '200HELLO');
    } finally {
      await greeter.close();
    }
  });
});

describe('sealed listener: failures', () => {
  let backend: TcpServer;
  let gw: TestGateway;
  let logDir: string;
  before(async () => {
    backend = await startTcpServer((s) => s.pipe(s));
    logDir = mkdtempSync(join(tmpdir(), 'portico-sealed-'));
    gw = await startGateway(sealedDoc({ lineLimit: 64, handshakeTimeout: '300ms', allow: [{ cidr: '127.0.0.1/32', ports: [backend.port] }], accessLog: { path: join(logDir, 'access.log') } }));
  });
  after(async () => {
    await gw.close();
    await backend.close();
    rmSync(logDir, { recursive: true, force: true });
  });

  it('400: no newline within lineLimit; a line of exactly lineLimit bytes is read (and is then 401)', async () => {
    assert.equal((await exchange(portOf(gw), 'A'.repeat(65))).received.toString(), '400');
    assert.equal((await exchange(portOf(gw), `${'A'.repeat(200)}\n`)).received.toString(), '400');
    assert.equal(await ask(gw, 'A'.repeat(64)), '401');
    assert.equal(await ask(gw, `${'A'.repeat(64)}\r`), '401');
    assert.equal(backend.accepted.length, 0);
  });

  it('400: the client ends its side before a newline', async () => {
    assert.equal((await exchange(portOf(gw), 'U2FsdGVkX1', { end: true })).received.toString(), '400');
    assert.equal((await exchange(portOf(gw), '', { end: true })).received.toString(), '400');
  });

  it('400 and close: a client that sends no line within handshakeTimeout', async () => {
    const silent = await exchange(portOf(gw), '');
    assert.equal(silent.received.toString(), '400');
    assert.ok(silent.firstByteMs >= 250, `answered after ${silent.firstByteMs} ms`);
    await waitFor(() => gw.gateway.connections('sealed') === 0, 'the connection to be gone');
  });

  it('401: garbage, base64 of garbage, the wrong secret, a format the listener does not take', async () => {
    const addr = `127.0.0.1:${backend.port}`;
    for (const line of ['garbage!', '', Buffer.from('not a sealed line').toString('base64'), opensslSeal(addr, 'md5', 'the-wrong-secret'), 'v2.AAAA']) {
      assert.equal(await ask(gw, line), '401', line);
    }
    assert.equal(backend.accepted.length, 0);
  });

  it('502: a refused port; 502 for backends the allow list denies (another port, another range, no allow at all)', async () => {
    const dead = await deadPort();
    const other = await startTcpServer(() => undefined);
    try {
      // The shared gateway only allows the backend's port: refusals need a gateway that allows the dead one.
      const open = await startGateway(sealedDoc({ allow: [{ cidr: '127.0.0.0/8' }] }));
      try {
        assert.equal(await ask(open, sealV1(`127.0.0.1:${dead}`, { secret: SECRET, kdf: 'md5' })), '502');
      } finally {
        await open.close();
      }
      assert.equal(await ask(gw, sealV1(other.address, { secret: SECRET, kdf: 'md5' })), '502', 'port not allowed');
      assert.equal(await ask(gw, sealV1(`127.0.0.2:${backend.port}`, { secret: SECRET, kdf: 'md5' })), '502', 'range not allowed');
      const none = await startGateway(sealedDoc({ allow: [] }));
      try {
        assert.equal(await ask(none, sealV1(other.address, { secret: SECRET, kdf: 'md5' })), '502', 'default deny');
      } finally {
        await none.close();
      }
      assert.equal(other.accepted.length, 0, 'a denied backend is never dialled');
    } finally {
      await other.close();
    }
  });

  it('504: every attempt timed out (a target whose SYNs go unanswered)', async () => {
    const hole = await startBlackhole();
    const g = await startGateway(sealedDoc({ retry: 2, timeout: '150ms' }));
    try {
      assert.equal(await ask(g, sealV1(`127.0.0.1:${hole.port}`, { secret: SECRET, kdf: 'md5' })), '504');
    } finally {
      await g.close();
      await hole.close();
    }
  });

  it('the access log names the outcome and the backend, never the line or the secret', async () => {
    const line = sealV1(`127.0.0.1:${backend.port}`, { secret: SECRET, kdf: 'sha256' });
    assert.equal(await talk(portOf(gw), `${line}\nhi`, 'hi', ''), '200hi');
    await waitFor(() => gw.gateway.connections('sealed') === 0, 'the session to end');
    const entries = await waitFor(() => {
      const text = readFileSync(join(logDir, 'access.log'), 'utf8');
      const lines = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      return lines.some((l) => l.outcome === 'ok') ? { text, lines } : undefined;
    }, 'the access log');
    assert.ok(!entries.text.includes(SECRET) && !entries.text.includes(line) && !entries.text.includes(line.slice(0, 24)));
    const ok = entries.lines.find((l) => l.outcome === 'ok')!;
    assert.equal(ok.protocol, 'sealed');
    assert.equal(ok.backend, `127.0.0.1:${backend.port}`);
    assert.equal(ok.target, `127.0.0.1:${backend.port}`);
    assert.equal(ok.format, 'v1-sha256');
    assert.equal(ok.bytesUp, 2);
    const outcomes = new Set(entries.lines.map((l) => l.outcome));
    for (const o of ['BAD_LINE', 'BAD_SEAL', 'DENIED']) assert.ok(outcomes.has(o), `${o} in ${[...outcomes].join(',')}`);
  });
});

describe('sealed listener: allow by resolved name', () => {
  it('a name is resolved and checked: localhost is allowed through 127.0.0.1/32, denied under 10.0.0.0/8', async () => {
    const backend = await startTcpServer((s) => s.pipe(s));
    const logDir = mkdtempSync(join(tmpdir(), 'portico-sealed-'));
    const gw = await startGateway(sealedDoc({ allow: [{ cidr: '127.0.0.1/32', ports: [backend.port] }] }));
    const denying = await startGateway(sealedDoc({ allow: [{ cidr: '10.0.0.0/8' }], accessLog: { path: join(logDir, 'a.log') } }));
    try {
      const line = sealV1(`localhost:${backend.port}`, { secret: SECRET, kdf: 'md5' });
      assert.equal(await talk(portOf(gw), `${line}\nabc`, 'abc', ''), '200abc');
      assert.equal(await ask(denying, line), '502');
      assert.equal(backend.accepted.length, 1);
      const log = await waitFor(() => readFileSync(join(logDir, 'a.log'), 'utf8').trim(), 'the access log');
      const entry = JSON.parse(log.split('\n').at(-1)!) as Record<string, unknown>;
      assert.equal(entry.outcome, 'DENIED');
      assert.equal(entry.status, 502);
      assert.equal(entry.backend, `localhost:${backend.port}`);
    } finally {
      await gw.close();
      await denying.close();
      await backend.close();
      rmSync(logDir, { recursive: true, force: true });
    }
  });
});

describe('sealed listener: uniformErrors', () => {
  it('answers 401, refused and denied alike: 502, no sooner than uniformDelay after the line', async () => {
    const backend = await startTcpServer((s) => s.pipe(s));
    const dead = await deadPort();
    const gw = await startGateway(sealedDoc({ uniformErrors: true, retry: 1, timeout: '100ms', uniformDelay: '400ms', allow: [{ cidr: '127.0.0.1/32' }] }));
    try {
      const lines = {
        badSeal: 'garbage',
        refused: sealV1(`127.0.0.1:${dead}`, { secret: SECRET, kdf: 'md5' }),
        denied: sealV1(`127.0.0.2:${dead}`, { secret: SECRET, kdf: 'md5' }),
        expired: sealV2(`127.0.0.1:${dead}`, { secret: SECRET, exp: 1 }),
      };
      for (const [what, line] of Object.entries(lines)) {
        const r = await exchange(portOf(gw), `${line}\n`);
        assert.equal(r.received.toString(), '502', what);
        assert.ok(r.firstByteMs >= 390, `${what}: answered after ${r.firstByteMs} ms`);
      }
      // Success is not delayed, and a 400 (no line at all) is not uniform: it says nothing about the secret or backends.
      assert.equal(await talk(portOf(gw), `${sealV1(backend.address, { secret: SECRET, kdf: 'md5' })}\nok`, 'ok', ''), '200ok');
      assert.equal((await exchange(portOf(gw), 'x', { end: true })).received.toString(), '400');
    } finally {
      await gw.close();
      await backend.close();
    }
  });
});

describe('sealed listener: reload and close', () => {
  it('a reload keeps open sessions; new lines are opened with the new secret', async () => {
    const backend = await startTcpServer((s) => s.pipe(s));
    const gw = await startGateway(sealedDoc());
    try {
      const oldLine = sealV1(backend.address, { secret: SECRET, kdf: 'md5' });
      const c = await connect(portOf(gw));
      const seen = track(c);
      c.write(`${oldLine}\none`);
      await waitFor(() => seen() === '200one', 'the first echo');
      const r = await gw.reload(sealedDoc({ secret: 'the-new-secret' }));
      assert.ok(r.ok);
      c.write('two');
      await waitFor(() => seen() === '200onetwo', 'the echo after the reload');
      assert.equal(await ask(gw, oldLine), '401');
      assert.equal(await talk(portOf(gw), `${sealV1(backend.address, { secret: 'the-new-secret', kdf: 'md5' })}\nnew`, 'new', ''), '200new');
      c.end();
      assert.ok(await closedWithin(c, 5000));
      await waitFor(() => gw.gateway.connections('sealed') === 0, 'the connections to end');
    } finally {
      await gw.close();
      await backend.close();
    }
  });

  it('close: open sessions and clients still in the handshake are closed, and close() resolves', async () => {
    const backend = await startTcpServer((s) => s.pipe(s));
    const gw = await startGateway(sealedDoc({ handshakeTimeout: '1m' }));
    try {
      const session = await connect(portOf(gw));
      const seen = track(session);
      const sessionEnded = ended(session);
      session.write(`${sealV1(backend.address, { secret: SECRET, kdf: 'md5' })}\nhi`);
      await waitFor(() => seen() === '200hi', 'the session');
      const silent = await connect(portOf(gw));
      const silentEnded = ended(silent);
      silent.resume();
      await waitFor(() => gw.gateway.connections('sealed') === 2, 'both connections');
      await gw.close();
      await sessionEnded;
      await silentEnded;
      assert.ok(await closedWithin(backend.accepted[0]!, 5000), 'the backend side closed');
      assert.equal(gw.gateway.connections('sealed'), 0);
      session.destroy();
      silent.destroy();
    } finally {
      await gw.close();
      await backend.close();
    }
  });
});

/** Resolves when the gateway ended or reset the connection (the test sockets allow half-open, so they stay open after a FIN). */
function ended(s: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    s.on('error', () => undefined);
    s.once('end', () => resolve());
    s.once('close', () => resolve());
  });
}

/** Collects a socket's bytes as latin1; returns a reader of what came so far. */
function track(s: net.Socket): () => string {
  let seen = '';
  s.on('data', (c: Buffer) => (seen += c.toString('latin1')));
  s.on('error', () => undefined);
  return () => seen;
}

/**
 * One relayed session: sends `first` (line, newline, early bytes), waits
 * until `echo` came back after the answer, sends `then` and ends; returns
 * everything read until the gateway closed.
 */
async function talk(port: number, first: string, echo: string, then: string): Promise<string> {
  const c = await connect(port);
  const seen = track(c);
  const closed = new Promise<void>((r) => c.once('close', () => r()));
  c.write(first);
  await waitFor(() => seen().length >= 3 + echo.length || (seen().length >= 3 && seen().slice(0, 3) !== '200'), 'the answer and the echo');
  c.end(then);
  await closed;
  return seen();
}
