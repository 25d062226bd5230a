import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/observability/logger.js';
import { connectByCode, RelayRefusedError } from '../../src/tunnel/relay/connect.js';
import { serveByCode, type ServedByCode } from '../../src/tunnel/relay/serve.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { CLIENT_TOKEN, OTHER_TOKEN, relayAddressOf, relayListener, relayServiceAgent, SERVICE_TOKEN } from '../helpers/relay.js';
import { startAgent, tunnelListener, tunnelPki } from '../helpers/tunnel.js';
import { waitFor } from '../helpers/wait.js';
import type { Pki } from '../helpers/certs.js';
import type { Agent } from '../../src/tunnel/agent/agent.js';

const MiB = 1024 * 1024;

/** The relay status of the gateway's `relay` listener (GET /status's fields). */
function relayStatus(gateway: TestGateway): { refused: Record<string, number>; ended: Record<string, number> } {
  const s = gateway.gateway.status() as { listeners: { name: string; refused: Record<string, number>; ended: Record<string, number> }[] };
  return s.listeners.find((l) => l.name === 'relay')!;
}

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Reads a stream to its end. */
function readAll(s: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
  });
}

/** The relay's status for `code` with `token`: 200 (the socket is closed at once) or the refusal's status. */
async function statusOf(relay: string, ca: string, code: string, token: string): Promise<number> {
  try {
    const s = await connectByCode(relay, code, { token, ca });
    s.destroy();
    return 200;
  } catch (err) {
    assert.ok(err instanceof RelayRefusedError, `expected a refusal, got ${String(err)}`);
    return err.status;
  }
}

describe('relay: services by code, clients by code', () => {
  let pki: Pki;
  let gw: { cert: string; key: string };
  let gateway: TestGateway;
  let relay: string;
  let ca: string;
  const served: ServedByCode[] = [];
  const agents: Agent[] = [];
  /** What the `dev-big` service received on each stream (sha256), in order. */
  const bigReceived: string[] = [];
  const bigReply = randomBytes(MiB);
  const clientsSeen: (string | undefined)[] = [];

  before(async () => {
    ({ pki, gw } = await tunnelPki());
    ca = pki.caCert;
    gateway = await startGateway(doc());
    relay = relayAddressOf(gateway);
    const quiet = createLogger('silent');
    // dev-big: reads the whole request (until the client's FIN), then answers 1 MiB and ends.
    served.push(
      serveByCode(relay, 'dev-big', { token: SERVICE_TOKEN, ca, logger: quiet, reconnect: { initial: 50, max: 500 } }, (stream, info) => {
        clientsSeen.push(info.client);
        void readAll(stream).then((got) => {
          bigReceived.push(sha(got));
          stream.end(bigReply);
        });
      }),
    );
    // dev-echo: echoes.
    served.push(serveByCode(relay, 'dev-echo', { token: SERVICE_TOKEN, ca: pki.caPem, logger: quiet }, (stream) => stream.pipe(stream)));
    await Promise.all(served.map((s) => s.connected()));
  });

  function doc(clients?: unknown[]) {
    return { listeners: [relayListener(gw, clients === undefined ? {} : { clients }), tunnelListener(gw)], upstreams: [], routes: [] };
  }

  after(async () => {
    await Promise.all(served.map((s) => s.close()));
    await Promise.all(agents.map((a) => a.stop()));
    await gateway?.close();
    await pki?.cleanup();
  });

  it('relays 1 MiB each way with half-close, service found by its code only', async () => {
    const payload = randomBytes(MiB);
    const socket = await connectByCode(relay, 'dev-big', { token: CLIENT_TOKEN, ca });
    const reply = readAll(socket);
    // The service answers only after our FIN: the reply proves the half-close went through and the other direction stayed open.
    socket.end(payload);
    const got = await reply;
    assert.equal(got.length, MiB);
    assert.equal(sha(got), sha(bigReply));
    await waitFor(() => bigReceived.length >= 1, 'the service to have read the request');
    assert.equal(bigReceived.at(-1), sha(payload));
    // The service saw the client's address as the relay did.
    assert.match(clientsSeen.at(-1) ?? '', /^127\.0\.0\.1:\d+$/);
  });

  it('gives bytes sent right after the request line to the service first', async () => {
    // A raw client: the request line and data in one write.
    const s = tls.connect({ host: '127.0.0.1', port: Number(relay.split(':')[1]), ca: pki.caPem, servername: 'localhost' });
    s.end(`PORTICO-RELAY/1 dev-echo ${CLIENT_TOKEN}\nhello relay`);
    const got = await readAll(s);
    assert.equal(got.toString(), '200 ok\nhello relay');
  });

  it('answers 404 for a code nobody registered', async () => {
    assert.equal(await statusOf(relay, ca, 'dev-nobody', CLIENT_TOKEN), 404);
  });

  it('answers 401 for a wrong token and the same 401 for a code the token does not allow', async () => {
    const wrong = await connectByCode(relay, 'dev-echo', { token: 'not-a-client-token-at-all', ca }).catch((e: unknown) => e);
    const notAllowed = await connectByCode(relay, 'dev-echo', { token: OTHER_TOKEN, ca }).catch((e: unknown) => e);
    const unregisteredNotAllowed = await connectByCode(relay, 'zzz', { token: CLIENT_TOKEN, ca }).catch((e: unknown) => e);
    for (const e of [wrong, notAllowed, unregisteredNotAllowed]) {
      assert.ok(e instanceof RelayRefusedError);
      assert.equal(e.status, 401);
      assert.equal(e.reason, 'unauthorized');
    }
  });

  it('answers 503 when the code is registered but withdrawn, and when every stream open fails', async () => {
    // A relay service whose local address refuses connections: registered and up, but each open fails (the agent answers 502).
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const a = relayServiceAgent(relay, ca, 'dev-down', `127.0.0.1:${port}`);
    agents.push(a);
    a.start();
    await a.connected();
    await waitFor(() => gateway.gateway.tunnels.registrations('dev-down').length === 1, 'dev-down registered');
    assert.equal(await statusOf(relay, ca, 'dev-down', CLIENT_TOKEN), 503);
    // Withdrawn (its health says down): listed with up: false.
    a.services.setUp(a.services.get('dev-down')!, false, 'test');
    await waitFor(() => gateway.gateway.tunnels.registrations('dev-down')[0]?.up === false, 'dev-down withdrawn');
    assert.equal(await statusOf(relay, ca, 'dev-down', CLIENT_TOKEN), 503);
    const refused = relayStatus(gateway).refused;
    assert.ok(refused.unavailable! >= 2, JSON.stringify(refused));
  });

  it('refuses a service with a wrong token, and one whose code no services entry allows', async () => {
    const quiet = createLogger('silent');
    const bad = serveByCode(relay, 'dev-bad', { token: 'wrong-service-token-0123', ca, logger: quiet, reconnect: { initial: 50, max: 200 } }, () => assert.fail('no stream expected'));
    const stranger = serveByCode(relay, 'stranger', { token: SERVICE_TOKEN, ca, logger: quiet, reconnect: { initial: 50, max: 200 } }, () => assert.fail('no stream expected'));
    try {
      await waitFor(() => bad.status().lastError?.startsWith('refused:') && stranger.status().lastError?.startsWith('refused:'), 'both refused');
      assert.equal(gateway.gateway.tunnels.registrations('dev-bad').length, 0);
      assert.equal(gateway.gateway.tunnels.registrations('stranger').length, 0);
      assert.ok(relayStatus(gateway).refused['service-auth']! >= 2);
      assert.equal(await statusOf(relay, ca, 'dev-bad', CLIENT_TOKEN), 404);
    } finally {
      await bad.close();
      await stranger.close();
    }
  });

  it('shares one namespace with tunnel agents: a relay client reaches a code an agent registered', async () => {
    const echo = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const agent = await startAgent(`127.0.0.1:${gateway.gateway.listenerAddress('tunnel')!.port}`, ca, [{ code: 'device-7', local: `127.0.0.1:${(echo.address() as net.AddressInfo).port}` }]);
    agents.push(agent);
    try {
      await waitFor(() => gateway.gateway.tunnels.registrations('device-7').length === 1, 'device-7 registered');
      // dev-* does not cover device-7 for CLIENT_TOKEN: refused like any code it does not allow.
      assert.equal(await statusOf(relay, ca, 'device-7', CLIENT_TOKEN), 401);
      const r = await gateway.reload(doc([{ token: CLIENT_TOKEN, codes: ['dev-*', 'device-*'] }]));
      assert.ok(r.ok, JSON.stringify(r));
      const s = await connectByCode(relay, 'device-7', { token: CLIENT_TOKEN, ca });
      const back = readAll(s);
      s.end('through an agent');
      assert.equal((await back).toString(), 'through an agent');
    } finally {
      echo.close();
    }
  });

  it('lists a relayed pair in the connection registry and closes it by id', async () => {
    const s = await connectByCode(relay, 'dev-echo', { token: CLIENT_TOKEN, ca });
    s.write('ping');
    await new Promise((r) => s.once('data', r));
    const pairs = gateway.gateway.connectionRegistry.list({ kind: 'relay-pair' });
    assert.equal(pairs.length, 1);
    const p = pairs[0]!;
    assert.equal(p.listener, 'relay');
    assert.equal(p.route, 'dev-echo');
    assert.match(p.target ?? '', /^tunnel:dev-echo@dev-echo#\d+$/);
    assert.equal(p.bytesIn, 4);
    assert.equal(p.bytesOut, 4);
    assert.match(p.peer, /^127\.0\.0\.1:\d+$/);
    const closed = new Promise((r) => s.once('close', r));
    s.resume();
    assert.equal(gateway.gateway.connectionRegistry.close(p.id), 'closing');
    await closed;
    await waitFor(() => gateway.gateway.connectionRegistry.list({ kind: 'relay-pair' }).length === 0, 'the pair unlisted');
  });

  it('round-robins a code over its registrations', async () => {
    const quiet = createLogger('silent');
    const hits: string[] = [];
    const one = serveByCode(relay, 'dev-rr', { token: SERVICE_TOKEN, ca, logger: quiet }, (s) => (hits.push('one'), s.end('one')));
    const two = serveByCode(relay, 'dev-rr', { token: SERVICE_TOKEN, ca, logger: quiet }, (s) => (hits.push('two'), s.end('two')));
    try {
      await Promise.all([one.connected(), two.connected()]);
      await waitFor(() => gateway.gateway.tunnels.registrations('dev-rr').length === 2, 'two registrations');
      const answers: string[] = [];
      for (let i = 0; i < 4; i++) {
        const s = await connectByCode(relay, 'dev-rr', { token: CLIENT_TOKEN, ca });
        s.end();
        answers.push((await readAll(s)).toString());
      }
      assert.deepEqual(answers.filter((a) => a === 'one').length, 2, answers.join(','));
      assert.deepEqual(answers.filter((a) => a === 'two').length, 2, answers.join(','));
    } finally {
      await one.close();
      await two.close();
    }
  });

  it('closes every fault cleanly: file descriptors come back', async () => {
    const base = openFds();
    const port = Number(relay.split(':')[1]);
    for (let i = 0; i < 10; i++) {
      // A TCP client that never starts TLS and leaves.
      const raw = net.connect(port, '127.0.0.1');
      await new Promise((r) => raw.once('connect', r));
      raw.destroy();
      // A TLS client that sends half a line and resets.
      const half = tls.connect({ host: '127.0.0.1', port, ca: pki.caPem, servername: 'localhost' });
      await new Promise((r) => half.once('secureConnect', r));
      half.write('PORTICO-RELAY/1 dev-ec');
      half.destroy();
      // A pair whose client resets mid-stream.
      const s = await connectByCode(relay, 'dev-echo', { token: CLIENT_TOKEN, ca });
      s.write('x');
      await new Promise((r) => s.once('data', r));
      s.destroy();
      // Refusals.
      await statusOf(relay, ca, 'dev-nobody', CLIENT_TOKEN);
      await statusOf(relay, ca, 'dev-echo', 'wrong-token-0000000000');
    }
    // A client that sends nothing: closed at the handshake timeout (1 s here).
    const silent = tls.connect({ host: '127.0.0.1', port, ca: pki.caPem, servername: 'localhost' });
    const silentClosed = new Promise((r) => silent.once('close', r));
    silent.on('error', () => undefined);
    await silentClosed;
    await waitFor(() => (relayStatus(gateway).ended['handshake-timeout'] ?? 0) >= 1, 'the silent client counted as a handshake timeout');
    await waitFor(() => gateway.gateway.connectionRegistry.list({ kind: 'relay-pair' }).length === 0, 'no pair left');
    await fdsSettle(base, 2, 8000);
  });
});
