import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type tls from 'node:tls';
import fc from 'fast-check';
import { after, before, describe, it } from 'node:test';
import { formatHostPort } from '../../src/net/address.js';
import type { Pki } from '../helpers/certs.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { fuzzRuns } from '../helpers/fuzz.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { closedWithin } from '../helpers/tcp.js';
import { startAgent, TEST_TOKEN, tunnelListener, tunnelPki } from '../helpers/tunnel.js';
import { dialTunnel, RawAgent } from '../helpers/tunnel-peer.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A malicious agent's bytes after TLS, through a real tunnel listener:
 * random bytes, random HTTP/2 frames after a valid server preface, and
 * random control-stream lines after a valid login. Invariants: the
 * gateway closes every such connection once the peer is done (no hang),
 * registers nothing it should not, keeps serving a real agent, and its
 * descriptors come back. Each case runs BATCH connections at once.
 */

const BATCH = 8;
/** Longest a case may take to be closed by the gateway after the peer's FIN. */
const CLOSE_MS = 5000;

/** An HTTP/2 frame (RFC 9113 §4.1) with a length that matches its payload, or not. */
const frame = fc
  .record({
    type: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 255 })),
    flags: fc.integer({ min: 0, max: 255 }),
    stream: fc.oneof(fc.constant(0), fc.constant(1), fc.integer({ min: 0, max: 2 ** 31 - 1 })),
    payload: fc.uint8Array({ maxLength: 64 }),
    lie: fc.option(fc.integer({ min: 0, max: 2 ** 24 - 1 }), { freq: 8 }),
  })
  .map(({ type, flags, stream, payload, lie }) => {
    const head = Buffer.alloc(9);
    head.writeUIntBE(lie ?? payload.length, 0, 3);
    head[3] = type;
    head[4] = flags;
    head.writeUInt32BE(stream, 5);
    return Buffer.concat([head, payload]);
  });

const SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

describe('tunnel listener fuzz: random bytes and frames from a malicious agent', () => {
  let pki: Pki;
  let caPem: string;
  let gateway: TestGateway;
  let origin: TestUpstream;
  let fds = 0;
  const tunnelPort = () => gateway.gateway.listenerAddress('tunnel')!.port;
  const sessions = () => (gateway.gateway.status() as any).listeners.find((l: any) => l.name === 'tunnel');

  before(async () => {
    let gw: { cert: string; key: string };
    ({ pki, gw } = await tunnelPki());
    caPem = readFileSync(pki.caCert, 'utf8');
    origin = await startUpstream((req, res) => res.end(`origin ${req.url}`));
    gateway = await startGateway({
      log: { level: 'silent' },
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }, tunnelListener(gw, { limits: { handshakeTimeout: '2s', maxPending: 64 } })],
      upstreams: [{ name: 'crm', targets: [{ tunnel: 'crm' }] }],
      routes: [{ name: 'crm', listener: 'web', upstream: 'crm' }],
    });
    fds = openFds();
  });

  after(async () => {
    await gateway?.close();
    await origin?.close();
    await pki?.cleanup();
  });

  /** Sends `bytes` on a fresh TLS connection, then FIN; true when the gateway closed it within CLOSE_MS. */
  async function sendAndEnd(bytes: Buffer, preface: Buffer | null): Promise<boolean> {
    let s: tls.TLSSocket;
    try {
      s = await dialTunnel(tunnelPort(), caPem);
    } catch {
      return false;
    }
    s.on('error', () => undefined);
    if (preface !== null) s.write(preface);
    s.end(bytes);
    return closedWithin(s, CLOSE_MS);
  }

  it('random bytes after TLS: every connection is closed, nothing registers', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ minLength: 1, maxLength: 2048 }), { minLength: BATCH, maxLength: BATCH }), async (batch) => {
        const closed = await Promise.all(batch.map((b) => sendAndEnd(Buffer.from(b), null)));
        assert.deepEqual(closed, batch.map(() => true));
      }),
      { ...fuzzRuns(150), interruptAfterTimeLimit: 40_000 },
    );
    assert.equal(gateway.gateway.tunnels.codesRegistered().length, 0);
  });

  it('random HTTP/2 frames after a valid server preface: every connection is closed, nothing registers', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(frame, { minLength: 1, maxLength: 12 }), { minLength: BATCH, maxLength: BATCH }), async (batch) => {
        const closed = await Promise.all(batch.map((frames) => sendAndEnd(Buffer.concat(frames), SETTINGS)));
        assert.deepEqual(closed, batch.map(() => true));
      }),
      { ...fuzzRuns(150), interruptAfterTimeLimit: 40_000 },
    );
    assert.equal(gateway.gateway.tunnels.codesRegistered().length, 0);
  });

  it('random control-stream lines after a valid login: refused or closed, never registered past the connection', async () => {
    const service = fc.record(
      {
        code: fc.oneof(fc.constantFrom('crm', 'ssh', 'device-1', 'hr', '', '*'), fc.string({ maxLength: 70 })),
        type: fc.oneof(fc.constantFrom('tcp', 'http', 'grpc', 'udp'), fc.jsonValue()),
        hosts: fc.oneof(fc.constant(undefined), fc.array(fc.oneof(fc.domain(), fc.string()), { maxLength: 20 }), fc.jsonValue()),
        remotePort: fc.oneof(fc.constant(undefined), fc.integer({ min: -5, max: 70_000 }), fc.jsonValue()),
        up: fc.oneof(fc.boolean(), fc.jsonValue()),
      },
      { requiredKeys: [] },
    );
    const line = fc.oneof(
      fc.record({ type: fc.constant('services'), services: fc.oneof(fc.array(fc.oneof(service, fc.jsonValue()), { maxLength: 12 }), fc.jsonValue()) }).map((m) => `${JSON.stringify(m)}\n`),
      fc.jsonValue().map((v) => `${JSON.stringify(v)}\n`),
      fc.string({ maxLength: 200 }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(line, { minLength: 1, maxLength: 6 }), { minLength: BATCH, maxLength: BATCH }), async (batch) => {
        const peers = await Promise.all(
          batch.map(async (lines) => {
            const peer = new RawAgent(await dialTunnel(tunnelPort(), caPem));
            const stream = await peer.login('office-1', TEST_TOKEN, null);
            for (const l of lines) stream.write(l);
            return peer;
          }),
        );
        // Whatever was registered belongs to a live connection and is allowed for office-1.
        for (const code of gateway.gateway.tunnels.codesRegistered()) assert.ok(['crm', 'ssh'].includes(code) || code.startsWith('device-'), code);
        for (const p of peers) {
          p.destroy();
          await p.closed;
        }
        await waitFor(() => gateway.gateway.tunnels.codesRegistered().length === 0 && sessions().agents === 0, 'every registration gone with its connection', CLOSE_MS);
      }),
      { ...fuzzRuns(100), interruptAfterTimeLimit: 40_000 },
    );
  });

  it('still serves a real agent afterwards, with nothing pending and descriptors back', async () => {
    await waitFor(() => sessions().pending === 0, 'nothing pending');
    await fdsSettle(fds, 4, 10_000);
    const agent = await startAgent(formatHostPort(gateway.gateway.listenerAddress('tunnel')!), pki.caCert, [{ code: 'crm', local: origin.address, type: 'http' }]);
    await waitFor(() => gateway.gateway.tunnels.registrations('crm').length === 1, 'crm registered');
    const res = await send(gateway.url(), { path: '/after-fuzz' });
    assert.equal(res.status, 200);
    assert.equal(res.body, 'origin /after-fuzz');
    await agent.stop();
  });
});
