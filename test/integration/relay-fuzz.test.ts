import assert from 'node:assert/strict';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { createLogger } from '../../src/observability/logger.js';
import { connectByCode } from '../../src/tunnel/relay/connect.js';
import { MAX_RELAY_REQUEST, RELAY_REQUEST_PREFIX } from '../../src/tunnel/relay/handshake.js';
import { serveByCode, type ServedByCode } from '../../src/tunnel/relay/serve.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { fuzzRuns, STANDARD_RUNS } from '../helpers/fuzz.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { CLIENT_TOKEN, relayAddressOf, relayListener, SERVICE_TOKEN } from '../helpers/relay.js';
import { tunnelPki } from '../helpers/tunnel.js';
import type { Pki } from '../helpers/certs.js';

const ANSWERS = new Set(['', '400 bad request\n', '401 unauthorized\n', '404 unknown code\n', '503 unavailable\n']);

describe('relay client role: garbage, truncated and over-long request lines', () => {
  let pki: Pki;
  let gateway: TestGateway;
  let relay: string;
  let port: number;
  let service: ServedByCode;
  /** A TLS session to resume: thousands of full handshakes would be the cost of this test, not the relay's parsing. */
  let session: Buffer | undefined;

  before(async () => {
    const { pki: p, gw } = await tunnelPki();
    pki = p;
    gateway = await startGateway({ listeners: [relayListener(gw)], upstreams: [], routes: [] });
    relay = relayAddressOf(gateway);
    port = gateway.gateway.listenerAddress('relay')!.port;
    service = serveByCode(relay, 'dev-echo', { token: SERVICE_TOKEN, ca: pki.caCert, logger: createLogger('silent') }, (s) => s.pipe(s));
    await service.connected();
  });

  after(async () => {
    await service?.close();
    await gateway?.close();
    await pki?.cleanup();
  });

  /** Sends `chunks` (then FIN) on a fresh TLS connection; resolves with everything the relay answered before it closed. */
  function exchange(chunks: Uint8Array[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca: pki.caPem, servername: 'localhost', session });
      s.once('session', (t: Buffer) => (session = t));
      const got: Buffer[] = [];
      s.on('data', (c: Buffer) => got.push(c));
      // A reset after the answer is a clean refusal too (the relay closed while we were still sending).
      s.on('error', (err: Error & { code?: string }) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? undefined : reject(err)));
      s.once('close', () => resolve(Buffer.concat(got).toString('latin1')));
      s.once('secureConnect', () => {
        for (const c of chunks) if (!s.destroyed) s.write(c);
        if (!s.destroyed) s.end();
      });
    });
  }

  it(`answers 400 or closes, never anything else, and never crashes (${STANDARD_RUNS} cases)`, async () => {
    const base = openFds();
    const prefix = Buffer.from(RELAY_REQUEST_PREFIX, 'latin1');
    const garbage = fc.uint8Array({ maxLength: 1500 });
    const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 80 });
    // A valid-looking line cut anywhere (no end of line: the FIN comes first).
    const truncated = fc.tuple(fc.constantFrom('dev-echo', 'dev-x', 'a'), fc.nat({ max: 100 })).map(([code, cut]) => Buffer.from(`${RELAY_REQUEST_PREFIX}${code} ${CLIENT_TOKEN}\n`.slice(0, cut % (RELAY_REQUEST_PREFIX.length + code.length + CLIENT_TOKEN.length + 1)), 'latin1'));
    const overLong = fc.tuple(fc.integer({ min: MAX_RELAY_REQUEST - 2, max: 3 * MAX_RELAY_REQUEST }), fc.boolean()).map(([n, eol]) => Buffer.concat([prefix, Buffer.alloc(n, 'a'), eol ? Buffer.from('\n') : Buffer.alloc(0)]));
    // The prefix then anything printable: codes and tokens of every shape, bad separators.
    const lineish = fc.tuple(printable, fc.constantFrom('\n', '\r\n', '\r', '\x00\n', '')).map(([body, eol]) => Buffer.from(`${RELAY_REQUEST_PREFIX}${body}${eol}`, 'latin1'));
    const input = fc.oneof(garbage.map((g) => Buffer.from(g)), truncated, overLong, lineish);
    const split = fc.array(fc.nat({ max: 2000 }), { maxLength: 3 });
    await fc.assert(
      fc.asyncProperty(input, split, async (bytes, cuts) => {
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const chunks: Uint8Array[] = [];
        let at = 0;
        for (const p of [...points, bytes.length]) {
          if (p > at) chunks.push(bytes.subarray(at, p));
          at = p;
        }
        const answer = await exchange(chunks);
        const statusLine = answer.slice(0, answer.indexOf('\n') + 1);
        assert.ok(ANSWERS.has(statusLine), `unexpected answer ${JSON.stringify(answer.slice(0, 80))}`);
        // Anything but a complete line that starts with the prefix can only be refused as a bad request.
        const starts = bytes.subarray(0, prefix.length).equals(prefix) && bytes.includes(0x0a);
        if (!starts) assert.ok(statusLine === '' || statusLine === '400 bad request\n', `${JSON.stringify(statusLine)} for ${JSON.stringify(bytes.subarray(0, 60).toString('latin1'))}`);
        // Over 1024 bytes without an end of line within them: refused as too long, never accepted.
        if (bytes.length > MAX_RELAY_REQUEST && !bytes.subarray(0, MAX_RELAY_REQUEST).includes(0x0a)) assert.equal(statusLine, '400 bad request\n');
      }),
      fuzzRuns(STANDARD_RUNS),
    );
    // The relay still serves, and nothing leaked.
    const s = await connectByCode(relay, 'dev-echo', { token: CLIENT_TOKEN, ca: pki.caCert });
    const back = new Promise<string>((r) => s.once('data', (d: Buffer) => r(d.toString())));
    s.write('still here');
    assert.equal(await back, 'still here');
    s.destroy();
    await fdsSettle(base, 4, 10_000);
  });
});
