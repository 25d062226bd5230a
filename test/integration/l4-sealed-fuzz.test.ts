// Property test of the sealed listener (issue 5): thousands of hostile or
// broken clients — random bytes, truncated and bit-flipped lines, base64 of
// garbage, over-long lines, lines without a newline, clients that vanish at
// a random point of the handshake — mixed with valid sessions. Property:
// every connection is answered with exactly one documented 3-byte code (a
// 200 followed by the relayed bytes) or just closed; the gateway keeps
// serving; afterwards no connection is left in the listener and the
// process has as many TCP handles as before.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import net from 'node:net';
import { sealV1, sealV2 } from '../../src/l4/sealed/codec.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { tcpHandles } from '../helpers/sealed.js';
import { deadPort, startTcpServer, type TcpServer } from '../helpers/tcp.js';
import { waitFor } from '../helpers/wait.js';

const SECRET = 'fuzz-secret';
const CASES = 5_000;
const CONCURRENCY = 50;
const LINE_LIMIT = 256;
const FAILURES = new Set(['400', '401', '502', '504']);

interface Case {
  kind: string;
  /** Bytes to send, in order (one write each). */
  writes: Buffer[];
  /** End the write side after the writes. */
  end?: boolean;
  /** Destroy the socket after this many writes (0 = right after connecting); no answer is expected. */
  abortAfter?: number;
  /** Reset instead of a FIN when aborting. */
  reset?: boolean;
  /** A valid session: the answer must be exactly `200` + this (the echo of what was sent after the line). */
  echo?: string;
}

/** What a client saw: every byte until the connection closed, or `aborted`. */
type Outcome = { received: Buffer; aborted: boolean };

function runCase(port: number, c: Case): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ port, host: '127.0.0.1' });
    // A case that neither ends nor gets an answer would hang: fail it instead.
    const guard = setTimeout(() => {
      s.destroy();
      reject(new Error(`case ${c.kind} hung`));
    }, 20_000);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', () => undefined);
    s.once('close', () => {
      clearTimeout(guard);
      resolve({ received: Buffer.concat(chunks), aborted: c.abortAfter !== undefined });
    });
    s.once('connect', () => {
      let i = 0;
      const next = () => {
        if (c.abortAfter === i) {
          if (c.reset) s.resetAndDestroy();
          else s.destroy();
          return;
        }
        if (i === c.writes.length) {
          if (c.end) s.end();
          return;
        }
        s.write(c.writes[i++]!, () => setImmediate(next));
      };
      next();
    });
    if (c.echo !== undefined) {
      // A valid session ends its side once the echo is back, so the backend's FIN closes it.
      const want = 3 + c.echo.length;
      s.on('data', () => {
        if (Buffer.concat(chunks).length >= want && !s.writableEnded) s.end();
      });
    }
  });
}

/** Splits `buf` into 1-3 writes at random points (TCP may deliver a line in pieces). */
function pieces(buf: Buffer): Buffer[] {
  if (buf.length < 2 || randomInt(0, 2) === 0) return [buf];
  const cut = randomInt(1, buf.length);
  return [buf.subarray(0, cut), buf.subarray(cut)];
}

function makeCase(lines: { echo: string[]; dead: string[]; v2: string[] }): Case {
  const valid = lines.echo[randomInt(0, lines.echo.length)]!;
  const nl = Buffer.from('\n');
  switch (randomInt(0, 11)) {
    case 0:
      return { kind: 'random bytes', writes: pieces(Buffer.concat([randomBytes(randomInt(0, 300)), nl])) };
    case 1: {
      const cut = randomInt(0, valid.length);
      return { kind: 'truncated line', writes: pieces(Buffer.from(`${valid.slice(0, cut)}\n`)) };
    }
    case 2:
      return { kind: 'over-long line', writes: pieces(Buffer.from('A'.repeat(randomInt(LINE_LIMIT + 2, 3_000)))), end: randomInt(0, 2) === 0 };
    case 3:
      return { kind: 'base64 of garbage', writes: [Buffer.from(`${randomBytes(randomInt(1, 150)).toString('base64')}\n`)] };
    case 4:
      return { kind: 'no newline', writes: pieces(Buffer.from(randomBytes(randomInt(0, LINE_LIMIT)).map((b) => (b === 10 ? 11 : b)))), end: true };
    case 5: {
      const full = Buffer.from(`${valid}\npayload`);
      const at = randomInt(0, full.length + 1);
      return { kind: 'vanishes mid-handshake', writes: at === 0 ? [] : [full.subarray(0, at)], abortAfter: at === 0 ? 0 : 1, reset: randomInt(0, 2) === 0 };
    }
    case 6: {
      const raw = Buffer.from(valid, 'base64');
      raw[randomInt(0, raw.length)]! ^= 1 << randomInt(0, 8);
      return { kind: 'flipped bit', writes: [Buffer.from(`${raw.toString('base64')}\n`)] };
    }
    case 7: {
      const v2 = lines.v2[randomInt(0, lines.v2.length)]!;
      const i = randomInt(3, v2.length);
      const mutated = v2.slice(0, i) + (v2[i] === 'A' ? 'B' : 'A') + v2.slice(i + 1);
      return { kind: 'v2 mutated', writes: [Buffer.from(`${randomInt(0, 2) ? mutated : `v2.${randomBytes(randomInt(0, 90)).toString('base64url')}`}\n`)] };
    }
    case 8:
      return { kind: 'refused backend', writes: [Buffer.from(`${lines.dead[randomInt(0, lines.dead.length)]}\n`)] };
    default: {
      const payload = randomBytes(randomInt(1, 64)).toString('hex');
      const line = randomInt(0, 3) === 0 ? lines.v2[randomInt(0, lines.v2.length)]! : valid;
      return { kind: 'valid session', writes: pieces(Buffer.from(`${line}\n${payload}`)), echo: payload };
    }
  }
}

describe('sealed listener: fuzz', () => {
  let backend: TcpServer;
  let gw: TestGateway;
  before(async () => {
    backend = await startTcpServer((s) => s.pipe(s));
    gw = await startGateway({
      listeners: [
        {
          name: 'sealed',
          protocol: 'sealed',
          listen: '127.0.0.1:0',
          secret: SECRET,
          accessLog: false,
          allow: [{ cidr: '127.0.0.1/32' }],
          lineLimit: LINE_LIMIT,
          handshakeTimeout: '5s',
          timeout: '1s',
        },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await backend.close();
  });

  it(`${CASES} hostile and valid clients: one documented code each or a close, nothing left over`, async () => {
    const port = gw.gateway.listenerAddress('sealed')!.port;
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const dead = await deadPort();
    const lines = {
      echo: (['md5', 'sha256', 'pbkdf2'] as const).map((kdf) => sealV1(backend.address, { secret: SECRET, kdf })),
      dead: [sealV1(`127.0.0.1:${dead}`, { secret: SECRET, kdf: 'md5' }), sealV1(`127.0.0.2:${backend.port}`, { secret: SECRET, kdf: 'md5' })],
      v2: [sealV2(backend.address, { secret: SECRET, exp }), sealV2(backend.address, { secret: SECRET, exp })],
    };
    const baseline = tcpHandles();
    const seen = new Map<string, number>();
    let next = 0;
    const worker = async () => {
      while (next < CASES) {
        next++;
        const c = makeCase(lines);
        const r = await runCase(port, c);
        const text = r.received.toString('latin1');
        const label = `${c.kind}: got ${JSON.stringify(text.slice(0, 40))}`;
        if (c.echo !== undefined) {
          assert.equal(text, `200${c.echo}`, label);
        } else if (r.received.length > 0) {
          // A vanishing client may still have been answered before it went.
          const code = text.slice(0, 3);
          assert.ok(FAILURES.has(code) || (r.aborted && code === '200'), label);
          if (!r.aborted) assert.equal(r.received.length, 3, `${label}: a failure is exactly three bytes`);
        } else {
          assert.ok(r.aborted, `${label}: closed without an answer`);
        }
        const key = `${c.kind} → ${r.received.length === 0 ? 'closed' : text.slice(0, 3)}`;
        seen.set(key, (seen.get(key) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    // The property held for every kind of case the generator makes.
    for (const kind of ['random bytes', 'over-long line', 'no newline', 'valid session', 'refused backend']) {
      assert.ok([...seen.keys()].some((k) => k.startsWith(kind)), `no ${kind} case ran: ${[...seen.keys()].join('; ')}`);
    }
    assert.ok(seen.has('over-long line → 400') && seen.has('no newline → 400') && seen.has('refused backend → 502') && seen.has('base64 of garbage → 401'), [...seen.keys()].join('; '));
    await waitFor(() => gw.gateway.connections('sealed') === 0, 'every sealed connection to be gone', 15_000);
    await waitFor(() => tcpHandles() <= baseline, `TCP handles back to ${baseline} (now ${tcpHandles()})`, 15_000);
    // And the gateway still serves.
    const r = await runCase(port, { kind: 'after', writes: [Buffer.from(`${lines.echo[0]}\nstill`)], echo: 'still' });
    assert.equal(r.received.toString(), '200still');
  });
});
