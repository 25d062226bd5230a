// Property tests of the L4 connection-start readers on real loopback
// sockets (docs/fuzzing.md): readProxyHeader (PROXY protocol),
// peekClientHello (TLS SNI) and the sealed listener's readLine, fed by a client that writes its bytes in
// random pieces, each flushed before the next. Properties: the reader's
// verdict is the pure parser's verdict on the whole input; on success the
// bytes past the header (`rest`) or every byte read (`bytes`) are exactly
// what the client sent, in order, and the rest of the stream follows
// unread in the socket; failures reject with the reader's own error type;
// descriptors come back to the baseline.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import fc from 'fast-check';
import { encodeProxyHeader, V2_SIGNATURE } from '../../src/l4/proxy-protocol/encode.js';
import { parseProxyHeader } from '../../src/l4/proxy-protocol/parse.js';
import { ProxyProtocolError, readProxyHeader } from '../../src/l4/proxy-protocol/read.js';
import { parseClientHello } from '../../src/l4/tls/client-hello.js';
import { ClientHelloError, peekClientHello } from '../../src/l4/tls/peek.js';
import { LineError, readLine } from '../../src/l4/sealed/line.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { fuzzRuns } from '../helpers/fuzz.js';


/** Far longer than any reader's timeout below: an exchange still open then is a hang. */
const HANG_MS = 10_000;

/** One loopback server for the file; each connection goes to `current`. */
let server: net.Server;
let port = 0;
let current: ((socket: net.Socket) => void) | undefined;

before(async () => {
  server = net.createServer({ allowHalfOpen: true }, (socket) => current?.(socket));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});

after(() => new Promise<void>((r) => server.close(() => r())));

/**
 * Sends `bytes` cut at `cuts` (each piece flushed, then a turn of the event
 * loop, before the next), half-closes, and resolves with what `read` made
 * of the server side plus every byte left unread in that socket afterwards.
 */
async function exchange<T>(bytes: Buffer, cuts: number[], read: (socket: net.Socket) => Promise<T>): Promise<{ result: T | { error: unknown }; after: Buffer }> {
  const served = new Promise<{ result: T | { error: unknown }; after: Buffer }>((resolve) => {
    current = (socket) => {
      socket.on('error', () => undefined);
      read(socket).then(
        (result) => {
          // The reader leaves the socket paused with the rest unread: read it all now. (A reader that
          // saw the client's FIN — readProxyHeader in accept mode — leaves it ended: nothing follows.)
          if (socket.readableEnded) {
            socket.destroy();
            return resolve({ result, after: Buffer.alloc(0) });
          }
          const chunks: Buffer[] = [];
          socket.on('data', (d: Buffer) => chunks.push(d));
          socket.once('end', () => {
            socket.destroy();
            resolve({ result, after: Buffer.concat(chunks) });
          });
          socket.resume();
        },
        (error: unknown) => {
          socket.destroy();
          resolve({ result: { error }, after: Buffer.alloc(0) });
        },
      );
    };
  });
  const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  client.setNoDelay(true);
  client.on('error', () => undefined);
  await new Promise<void>((r) => client.once('connect', () => r()));
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b).concat(bytes.length);
  let from = 0;
  for (const p of points) {
    if (p <= from) continue;
    await new Promise<void>((r) => client.write(bytes.subarray(from, p), () => setImmediate(r)));
    from = p;
  }
  client.end();
  let guard: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    guard = setTimeout(() => reject(new Error(`no outcome within ${HANG_MS} ms for ${bytes.toString('hex')} cut at ${cuts.join(',')}`)), HANG_MS);
  });
  try {
    return await Promise.race([served, hung]);
  } finally {
    clearTimeout(guard);
    client.destroy();
  }
}

const ip = fc.oneof(fc.ipV4(), fc.ipV6());
const portNumber = fc.integer({ min: 0, max: 65535 });
const data = fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b));
const cuts = fc.array(fc.nat(), { maxLength: 6 });

describe('fuzz: readProxyHeader over sockets', () => {
  it('header + data in random pieces: the parser\'s verdict, and rest + what follows is exactly the data', async () => {
    const input = fc.oneof(
      fc.tuple(fc.constantFrom('v1', 'v2') as fc.Arbitrary<'v1' | 'v2'>, ip, portNumber, ip, portNumber).map(([v, s, sp, d, dp]) => encodeProxyHeader(v, { sourceAddress: s, sourcePort: sp, destinationAddress: d, destinationPort: dp })),
      fc.tuple(fc.constantFrom(Buffer.from('PROXY '), V2_SIGNATURE, Buffer.alloc(0)), fc.uint8Array({ maxLength: 40 })).map(([a, b]) => Buffer.concat([a, b])),
    );
    const baseline = openFds();
    await fc.assert(
      fc.asyncProperty(input, data, cuts, fc.boolean(), async (header, payload, c, required) => {
        const bytes = Buffer.concat([header, payload]);
        const { result, after } = await exchange(bytes, c, (s) => readProxyHeader(s, { required, timeoutMs: 5000 }));
        const want = parseProxyHeader(bytes);
        if ('error' in result) {
          assert.ok(result.error instanceof ProxyProtocolError, String(result.error));
          // A complete input the parser does not call a header: missing/malformed; a prefix of one: closed (the client ended).
          const reason = result.error.reason;
          if (want.kind === 'malformed') assert.equal(reason, 'malformed');
          else if (want.kind === 'not-proxy') assert.equal(reason, required ? 'missing' : 'closed');
          else assert.ok(want.kind === 'incomplete' && reason === 'closed', `${want.kind} but ${reason}`);
          return;
        }
        if (want.kind === 'header') {
          assert.equal(result.present, true);
          assert.deepEqual(result.header, want.header);
          assert.deepEqual(Buffer.concat([result.rest, after]), bytes.subarray(want.header.consumed));
        } else {
          // Accept mode, no header: the bytes are the client's own, all of them.
          assert.equal(required, false);
          assert.equal(result.present, false);
          assert.deepEqual(Buffer.concat([result.rest, after]), bytes);
        }
      }),
      fuzzRuns(300),
    );
    await fdsSettle(baseline, 2);
  });
});

describe('fuzz: peekClientHello over sockets', () => {
  const hellos: Buffer[] = [];

  before(async () => {
    // Real ClientHellos from tls.connect, captured by the same server.
    for (const servername of ['fuzz.example.com', 'a.b.c.example.org', 'x']) {
      const got = new Promise<Buffer>((resolve) => {
        current = (socket) => {
          let buf = Buffer.alloc(0);
          socket.on('error', () => undefined);
          socket.on('data', (d: Buffer) => {
            buf = Buffer.concat([buf, d]);
            const r = parseClientHello(buf);
            if (r.status === 'ok') {
              socket.destroy();
              resolve(buf.subarray(0, r.hello.length));
            }
          });
        };
      });
      const s = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
      s.on('error', () => undefined);
      hellos.push(await got);
      s.destroy();
    }
  });

  it('a hello (maybe mutated) + data in random pieces: the parser\'s verdict; `bytes` is a prefix of what was sent, and with what follows, all of it', async () => {
    const baseline = openFds();
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 2 }), data, cuts, async (pick, edits, payload, c) => {
        const hello = Buffer.from(hellos[pick % hellos.length]!);
        for (const [at, byte] of edits) hello[at % hello.length] = byte;
        const bytes = Buffer.concat([hello, payload]);
        const { result, after } = await exchange(bytes, c, (s) => peekClientHello(s, Buffer.alloc(0), { timeoutMs: 5000, maxBytes: 16_384 }));
        const want = parseClientHello(bytes);
        if ('error' in result) {
          assert.ok(result.error instanceof ClientHelloError, String(result.error));
          if (want.status === 'invalid') assert.equal(result.error.reason, want.reason);
          else assert.ok(want.status === 'partial' && result.error.reason === 'closed', `${want.status} but ${result.error.reason}`);
          return;
        }
        assert.equal(want.status, 'ok');
        if (want.status !== 'ok') return;
        assert.deepEqual(result.hello, want.hello);
        assert.ok(result.bytes.length >= want.hello.length);
        assert.deepEqual(Buffer.concat([result.bytes, after]), bytes);
      }),
      fuzzRuns(300),
    );
    await fdsSettle(baseline, 2);
  });
});

describe('fuzz: the sealed listener\'s readLine over sockets', () => {
  it('bytes in random pieces (and a head read before): the line before the first LF (CR dropped), rest + what follows is the rest; too long or no LF is refused', async () => {
    const lineChar = fc.constantFrom(0x41, 0x2b, 0x0d, 0x0a, 0x00, 0xff, 0x20);
    const input = fc.oneof(
      fc.tuple(fc.uint8Array({ maxLength: 80 }), fc.constantFrom('\n', '\r\n', ''), data).map(([l, eol, d]) => Buffer.concat([Buffer.from(l).filter((b) => b !== 0x0a), Buffer.from(eol), d])),
      fc.array(lineChar, { maxLength: 80 }).map((b) => Buffer.from(b)),
    );
    const baseline = openFds();
    await fc.assert(
      fc.asyncProperty(input, fc.integer({ min: 0, max: 64 }), fc.nat(), cuts, async (bytes, limit, headAt, c) => {
        // Some bytes may have been read before (after a PROXY header): they are passed as `head`.
        const h = headAt % (bytes.length + 1);
        const { result, after } = await exchange(bytes.subarray(h), c, (s) => readLine(s, bytes.subarray(0, h), limit, 5000));
        const lf = bytes.indexOf(0x0a);
        const end = lf > 0 && bytes[lf - 1] === 0x0d ? lf - 1 : lf;
        if ('error' in result) {
          assert.ok(result.error instanceof LineError, String(result.error));
          if (lf >= 0) assert.equal(result.error.reason, 'TOO_LONG');
          else assert.ok(result.error.reason === 'EOF' || result.error.reason === 'TOO_LONG', result.error.reason);
          if (result.error.reason === 'TOO_LONG') assert.ok(lf >= 0 ? end > limit : bytes.length > limit);
          else assert.ok(bytes.length <= limit + 1, `EOF after ${bytes.length} bytes with a limit of ${limit}`);
          return;
        }
        assert.ok(lf >= 0 && end <= limit, `a line of ${end} bytes with a limit of ${limit}`);
        assert.deepEqual(result.line, bytes.subarray(0, end));
        assert.deepEqual(Buffer.concat([result.rest, after]), bytes.subarray(lf + 1));
      }),
      fuzzRuns(300),
    );
    await fdsSettle(baseline, 2);
  });
});
