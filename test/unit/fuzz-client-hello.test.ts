// Property tests of the TLS ClientHello reader (docs/fuzzing.md; RFC 8446
// §4.1.2, §5.1; RFC 6066 §3): real ClientHellos, captured from what
// `tls.connect` sends to a raw TCP server, carry random server names that
// the reader gives back (lower-case); re-fragmented into several records
// they read the same; fed in chunks cut anywhere, the first verdict that
// is not `partial` is the verdict on the whole; random bytes and mutated
// hellos never throw; `maxBytes` is never exceeded.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import fc from 'fast-check';
import { parseClientHello, type ClientHelloResult } from '../../src/l4/tls/client-hello.js';
import { fuzzRuns } from '../helpers/fuzz.js';

// ---------------------------------------------------------------- capturing real hellos

let server: net.Server;
let port = 0;
let waiting: ((hello: Buffer) => void) | undefined;

/** The ClientHello record(s) `tls.connect` sends for `servername` (one connection at a time). */
async function realHello(servername: string): Promise<Buffer> {
  const got = new Promise<Buffer>((resolve) => (waiting = resolve));
  const s = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
  s.on('error', () => undefined);
  try {
    return await got;
  } finally {
    s.destroy();
  }
}

before(async () => {
  server = net.createServer((socket) => {
    let buf = Buffer.alloc(0);
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const r = parseClientHello(buf);
      if (r.status === 'partial') return;
      socket.destroy();
      assert.equal(r.status, 'ok', JSON.stringify(r));
      if (r.status === 'ok') waiting?.(buf.subarray(0, r.hello.length));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});

after(() => new Promise<void>((r) => server.close(() => r())));

// ---------------------------------------------------------------- helpers

const STATUSES = new Set(['partial', 'ok', 'invalid']);
const REASONS = new Set(['not-tls', 'malformed', 'too-large']);

/** parseClientHello must answer, not throw, with a defined verdict that respects maxBytes. */
function verdict(buf: Buffer, maxBytes = 16_384): ClientHelloResult {
  let r: ClientHelloResult;
  try {
    r = parseClientHello(buf, maxBytes);
  } catch (err) {
    throw new Error(`parseClientHello threw on ${buf.toString('hex')}: ${String(err)}`, { cause: err });
  }
  assert.ok(STATUSES.has(r.status), r.status);
  if (r.status === 'partial') assert.ok(r.need > buf.length && r.need <= maxBytes, `need ${r.need} with ${buf.length} of at most ${maxBytes}`);
  if (r.status === 'ok') assert.ok(r.hello.length <= buf.length && r.hello.length <= maxBytes);
  if (r.status === 'invalid') assert.ok(REASONS.has(r.reason), r.reason);
  return r;
}

/** What peekClientHello sees when the bytes arrive cut at `cuts`: the first verdict that is not `partial`. */
function chunked(buf: Buffer, cuts: number[], maxBytes = 16_384): ClientHelloResult {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b).concat(buf.length);
  for (const end of points) {
    const r = verdict(buf.subarray(0, end), maxBytes);
    if (r.status !== 'partial') return r;
  }
  return verdict(buf, maxBytes);
}

/** The handshake message of a one-record hello, re-cut into records of the given sizes (RFC 8446 §5.1 allows it). */
function refragment(hello: Buffer, sizes: number[]): Buffer {
  const message = hello.subarray(5);
  const out: Buffer[] = [];
  let at = 0;
  for (const size of sizes) {
    if (at >= message.length) break;
    const part = message.subarray(at, Math.min(message.length, at + Math.max(1, size)));
    out.push(Buffer.from([22, 3, 1, part.length >> 8, part.length & 0xff]), part);
    at += part.length;
  }
  if (at < message.length) {
    const rest = message.subarray(at);
    out.push(Buffer.from([22, 3, 1, rest.length >> 8, rest.length & 0xff]), rest);
  }
  return Buffer.concat(out);
}

const label = fc.stringMatching(/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,20}[a-zA-Z0-9])?$/);
const servername = fc
  .array(label, { minLength: 2, maxLength: 5 })
  .map((l) => l.join('.'))
  .filter((n) => n.length <= 253 && net.isIP(n) === 0 && !/^\d+$/.test(n.slice(n.lastIndexOf('.') + 1)));

// ---------------------------------------------------------------- properties

describe('fuzz: ClientHello from tls.connect', () => {
  /** A few real hellos shared by the pure properties below. */
  const pool: { name: string; hello: Buffer }[] = [];

  it('the server name read from a real hello is the servername it was sent with, lower-cased', async () => {
    await fc.assert(
      fc.asyncProperty(servername, async (name) => {
        const hello = await realHello(name);
        const r = verdict(hello);
        assert.equal(r.status, 'ok');
        if (r.status !== 'ok') return;
        assert.equal(r.hello.serverName, name.toLowerCase());
        assert.equal(r.hello.length, hello.length);
        if (pool.length < 20) pool.push({ name: name.toLowerCase(), hello });
      }),
      fuzzRuns(200),
    );
    assert.ok(pool.length > 0);
  });

  it('re-fragmented into records of random sizes, with client data after: the same server name and length', () => {
    fc.assert(
      fc.property(fc.nat(), fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 12 }), fc.uint8Array({ maxLength: 40 }), (pick, sizes, data) => {
        const { name, hello } = pool[pick % pool.length]!;
        const records = refragment(hello, sizes);
        const r = verdict(Buffer.concat([records, data]));
        assert.equal(r.status, 'ok', JSON.stringify(r));
        if (r.status !== 'ok') return;
        assert.equal(r.hello.serverName, name);
        assert.equal(r.hello.length, records.length);
      }),
      fuzzRuns(2000),
    );
  });

  it('fed in chunks cut anywhere: the first verdict that is not partial is the verdict on the whole', () => {
    fc.assert(
      fc.property(fc.nat(), fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 10 }), (pick, sizes, cuts) => {
        const records = refragment(pool[pick % pool.length]!.hello, sizes);
        assert.deepEqual(chunked(records, cuts), verdict(records));
      }),
      fuzzRuns(2000),
    );
  });

  it('mutated real hellos (bytes changed, cut or inserted): never throw; chunking does not change the verdict', () => {
    const edit = fc.tuple(fc.constantFrom('set', 'cut', 'insert'), fc.nat(), fc.nat({ max: 255 }));
    fc.assert(
      fc.property(fc.nat(), fc.array(edit, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 6 }), (pick, edits, cuts) => {
        let b = Buffer.from(pool[pick % pool.length]!.hello);
        for (const [how, at, byte] of edits) {
          const i = at % b.length;
          if (how === 'set') b[i] = byte;
          else if (how === 'cut') b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
          else b = Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i)]);
        }
        const whole = verdict(b);
        const pieces = chunked(b, cuts);
        if (whole.status === 'invalid') assert.equal(pieces.status, 'invalid');
        else assert.deepEqual(pieces, whole);
      }),
      fuzzRuns(5000),
    );
  });

  it('maxBytes: a hello larger than the bound is too-large (never ok, never a partial asking for more than the bound)', () => {
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 5, max: 2048 }), fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 6 }), (pick, maxBytes, sizes) => {
        const records = refragment(pool[pick % pool.length]!.hello, sizes);
        const r = verdict(records, maxBytes);
        if (records.length <= maxBytes) assert.equal(r.status, 'ok');
        else assert.ok(r.status === 'invalid' && r.reason === 'too-large', JSON.stringify(r));
      }),
      fuzzRuns(2000),
    );
  });
});

describe('fuzz: ClientHello hostile bytes', () => {
  it('random bytes, and random bytes behind a handshake record header: never throw, a defined verdict', () => {
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)),
      fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 600 })).map(([len, body]) => Buffer.concat([Buffer.from([22, 3, 1, len >> 8, len & 0xff, 1]), body])),
      fc.tuple(fc.uint8Array({ maxLength: 600 })).map(([body]) => Buffer.concat([Buffer.from([22, 3, 3, body.length >> 8, body.length & 0xff]), body])),
    );
    fc.assert(
      fc.property(input, fc.integer({ min: 1, max: 20_000 }), (b, maxBytes) => void verdict(b, maxBytes)),
      fuzzRuns(5000),
    );
  });
});
