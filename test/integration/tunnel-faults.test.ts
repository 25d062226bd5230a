import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { agentConfigSchema } from '../../src/config/schemas/agent.js';
import { formatHostPort } from '../../src/net/address.js';
import { Agent } from '../../src/tunnel/agent/agent.js';
import { MAX_CONTROL_LINE } from '../../src/tunnel/protocol.js';
import type { Pki } from '../helpers/certs.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { send } from '../helpers/http.js';
import { closedWithin, connect, deadPort } from '../helpers/tcp.js';
import { startAgent, TEST_TOKEN, tunnelListener, tunnelPki } from '../helpers/tunnel.js';
import { dialTunnel, RawAgent, startLoggedGateway } from '../helpers/tunnel-peer.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

type Logged = Awaited<ReturnType<typeof startLoggedGateway>>;

const REFUSAL = '{"type":"refused","reason":"authentication failed"}\n';
const WRONG_TOKEN = 'wrong-token-that-must-never-be-logged';

/** A logger whose lines are kept (the agent's warn logs are asserted). */
function capture(): { logger: pino.Logger; logs: Record<string, unknown>[] } {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString().split('\n')) if (l !== '') logs.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), logs };
}

function agentConfig(port: number, ca: string, extra: Record<string, unknown>) {
  return agentConfigSchema.parse({
    servers: [`127.0.0.1:${port}`],
    id: 'office-1',
    token: TEST_TOKEN,
    tls: { ca },
    heartbeat: { interval: '200ms', timeout: '500ms' },
    reconnect: { initial: '50ms', max: '500ms' },
    ...extra,
  });
}

describe('tunnel faults: bad input, wrong credentials, policy, floods, vanishing agents, refused streams', () => {
  let pki: Pki;
  let caPem: string;
  let gateway: Logged;
  let origin: TestUpstream;
  let echo: net.Server;
  const port = (name: string) => gateway.gateway.listenerAddress(name)!.port;
  const closes = (s: net.Socket) => closedWithin(s, 5000);
  /** Log lines with `msg` (and every field in `fields`). */
  const logged = (msg: string, fields: Record<string, unknown> = {}) => gateway.logs.filter((l) => l.msg === msg && Object.entries(fields).every(([k, v]) => l[k] === v));

  before(async () => {
    let gw: { cert: string; key: string };
    ({ pki, gw } = await tunnelPki());
    caPem = readFileSync(pki.caCert, 'utf8');
    origin = await startUpstream((req, res) => res.end(`origin ${req.url}`));
    echo = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    gateway = await startLoggedGateway({
      listeners: [
        { name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false },
        { name: 'tcp', protocol: 'tcp', listen: '127.0.0.1:0', upstream: 'ssh', accessLog: false },
        tunnelListener(gw, { limits: { handshakeTimeout: '1s' } }),
        tunnelListener(gw, {
          name: 'tight',
          agents: [{ id: 'office-1', token: TEST_TOKEN, codes: ['*'] }],
          limits: { handshakeTimeout: '5s', maxPending: 4, maxServices: 8 },
        }),
        tunnelListener(gw, {
          name: 'mtls',
          tls: { certificates: [{ cert: gw.cert, key: gw.key }], clientCa: pki.caCert, clientAuth: 'require' },
          agents: [{ id: 'edge-7', codes: ['*'] }],
        }),
      ],
      upstreams: [
        { name: 'crm', targets: [{ tunnel: 'crm' }], timeouts: { connect: '1s' } },
        { name: 'ssh', targets: [{ tunnel: 'ssh' }] },
        { name: 'edge', targets: [{ tunnel: 'edge-svc' }] },
        { name: 'dup', targets: [{ tunnel: 'device-dup' }], retries: { attempts: 1 } },
      ],
      routes: [
        { name: 'crm', listener: 'web', match: { host: 'crm.test' }, upstream: 'crm' },
        { name: 'edge', listener: 'web', match: { host: 'edge.test' }, upstream: 'edge' },
        { name: 'dup', listener: 'web', match: { host: 'dup.test' }, upstream: 'dup' },
      ],
    });
  });

  after(async () => {
    await gateway?.close();
    await origin?.close();
    echo?.close();
    await pki?.cleanup();
  });

  describe('garbage, truncated and over-long input', () => {
    let fds = 0;
    before(() => void (fds = openFds()));
    after(async () => void (await fdsSettle(fds, 4)));

    it('closes a peer sending raw non-TLS bytes, and one that stops mid ClientHello (handshake timeout)', async () => {
      const raw = await connect(port('tunnel'));
      raw.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff garbage');
      assert.equal(await closes(raw), true);
      const truncated = await connect(port('tunnel'));
      truncated.write(Buffer.from([0x16, 0x03, 0x01, 0x02]));
      assert.equal(await closes(truncated), true);
      await waitFor(() => logged('tunnel TLS handshake refused').length >= 2, 'both refusals logged');
    });

    it('closes a TLS peer that sends garbage instead of HTTP/2', async () => {
      const s = await dialTunnel(port('tunnel'), caPem);
      s.on('error', () => undefined);
      s.write(Buffer.alloc(4096, 0xab));
      assert.equal(await closes(s), true);
    });

    it('closes a TLS peer whose HTTP/2 server preface is followed by garbage frames', async () => {
      const settings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]); // an empty SETTINGS frame: a valid server preface (RFC 9113 §3.4)
      for (const junk of [
        Buffer.from([0, 0, 8, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]), // DATA on stream 0
        Buffer.from([0xff, 0xff, 0xff, 0x01, 0x04, 0, 0, 0, 1]), // HEADERS announcing 16 MiB
        Buffer.from([0, 0, 5, 0x09, 0, 0, 0, 0, 7, 1, 2, 3, 4, 5]), // CONTINUATION out of the blue
        Buffer.from([0, 0, 3, 0x04, 0, 0, 0, 0, 0, 1, 2, 3]), // SETTINGS with a length not a multiple of 6
      ]) {
        const s = await dialTunnel(port('tunnel'), caPem);
        s.on('error', () => undefined);
        s.write(Buffer.concat([settings, junk]));
        assert.equal(await closes(s), true, `frame ${junk.toString('hex')}`);
      }
      assert.equal(gateway.gateway.tunnels.codesRegistered().length, 0);
    });

    it('closes a peer that half-closes after a valid preface at once (HTTP/2 has no half-closed connection)', async () => {
      const s = await dialTunnel(port('tunnel'), caPem);
      s.on('error', () => undefined);
      const peer = `127.0.0.1:${s.localPort}`;
      s.end(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]));
      assert.equal(await closes(s), true);
      await waitFor(() => logged('tunnel connection closed before authentication', { peer, reason: 'the peer closed its side of the connection' }).length === 1, 'closed for the FIN');
      assert.equal(logged('tunnel connection closed before authentication', { reason: 'no authentication within the handshake timeout' }).length, 0);
    });

    it('refuses a control stream answered with a malformed, absent or non-200 proof, or not answered at all', async () => {
      const answers: Record<string, string | number>[] = [
        { ':status': 200, 'portico-id': 'office-1', 'portico-proof': 'not-a-proof' },
        { ':status': 200, 'portico-id': 'office-1' },
        { ':status': 200, 'portico-proof': 'x'.repeat(43) },
        { ':status': 500, 'portico-id': 'office-1', 'portico-proof': 'x'.repeat(43) },
        { ':status': 200, 'portico-id': 'x'.repeat(4000), 'portico-proof': '-' },
      ];
      for (const headers of answers) {
        const peer = new RawAgent(await dialTunnel(port('tunnel'), caPem));
        const { stream } = await peer.control;
        stream.respond(headers);
        await peer.closed;
        assert.equal(peer.received, REFUSAL, JSON.stringify(headers).slice(0, 80));
      }
      const silent = new RawAgent(await dialTunnel(port('tunnel'), caPem));
      await silent.control;
      const t0 = Date.now();
      await silent.closed;
      assert.ok(Date.now() - t0 < 5000, 'closed by the 1 s handshake timeout');
      await waitFor(() => logged('tunnel connection closed before authentication', { reason: 'no authentication within the handshake timeout' }).length === 1, 'the timeout logged');
      // An id 4000 characters long is logged cut to 64.
      assert.ok(logged('tunnel connection refused: authentication failed').every((l) => String(l.id ?? '').length <= 64));
    });

    it('closes the connection on an over-long NDJSON line, a non-JSON line, a JSON line that is not an object', async () => {
      const cases: [Buffer, string][] = [
        [Buffer.alloc(MAX_CONTROL_LINE + 4096, 0x61), `bad control message: line longer than ${MAX_CONTROL_LINE} bytes`],
        [Buffer.from('this is not json\n'), 'bad control message: line is not JSON'],
        [Buffer.from('[1,2,3]\n'), 'bad control message: line is not a JSON object'],
      ];
      for (const [bytes, reason] of cases) {
        const peer = new RawAgent(await dialTunnel(port('tunnel'), caPem));
        const stream = await peer.login('office-1', TEST_TOKEN, null);
        await waitFor(() => peer.messages().some((m) => m.type === 'welcome'), 'welcome');
        stream.write(bytes);
        await peer.closed;
        await waitFor(() => logged('tunnel agent disconnected', { reason, level: 40 }).length === 1, `"${reason}" logged at warn`);
      }
    });

    it('refuses a services message that is not a list, and malformed entries one by one; the connection stays', async () => {
      const peer = new RawAgent(await dialTunnel(port('tunnel'), caPem));
      const stream = await peer.login('office-1', TEST_TOKEN, null);
      stream.write('{"type":"services","services":"crm"}\n');
      await waitFor(() => peer.messages().some((m) => m.type === 'verdicts'), 'verdicts');
      assert.deepEqual(peer.messages().find((m) => m.type === 'verdicts'), { type: 'verdicts', accepted: [], refused: [{ code: '?', reason: 'services must be a list' }] });
      stream.write(
        `${JSON.stringify({
          type: 'services',
          services: [null, 5, 'crm', { code: '../etc' }, { code: 'ssh', type: 'ftp' }, { code: 'device-1', type: 'tcp', hosts: 'x' }, { code: 'device-2', type: 'tcp', remotePort: 70000 }, { code: 'crm', type: 'http' }, { code: 'crm', type: 'http' }],
        })}\n`,
      );
      stream.write('{"type":"from-the-future"}\n');
      const v = await waitFor(() => peer.messages().filter((m) => m.type === 'verdicts')[1] as any, 'second verdicts');
      assert.deepEqual(v.accepted, ['crm']);
      assert.deepEqual(
        v.refused.map((r: any) => r.code),
        ['?', '../etc', 'ssh', 'device-1', 'device-2', 'crm'], // by code: the three unnamed entries share '?'
      );
      assert.equal(gateway.gateway.tunnels.registrations('crm').length, 1);
      peer.destroy();
      await peer.closed;
      await waitFor(() => gateway.gateway.tunnels.registrations('crm').length === 0, 'crm left with its connection');
    });
  });

  describe('credentials', () => {
    let fds = 0;
    before(() => void (fds = openFds()));
    after(async () => void (await fdsSettle(fds, 4)));

    it('answers an unknown id and a wrong token with the same refusal; warns with the peer; never logs a token', async () => {
      const unknown = new RawAgent(await dialTunnel(port('tunnel'), caPem));
      await unknown.login('nobody', TEST_TOKEN);
      const wrong = new RawAgent(await dialTunnel(port('tunnel'), caPem));
      await wrong.login('office-1', WRONG_TOKEN);
      await Promise.all([unknown.closed, wrong.closed]);
      assert.equal(unknown.received, REFUSAL);
      assert.equal(wrong.received, unknown.received);
      for (const [peer, id] of [
        [unknown, 'nobody'],
        [wrong, 'office-1'],
      ] as const) {
        const line = logged('tunnel connection refused: authentication failed', { peer: `127.0.0.1:${peer.localPort}` })[0];
        assert.ok(line !== undefined, `a refusal logged for ${id}`);
        assert.equal(line.level, 40);
        assert.equal(line.id, id);
      }
      // A real agent with a wrong token: told it was refused, keeps retrying (never exits on its own).
      const { logger, logs } = capture();
      const agent = new Agent(agentConfig(port('tunnel'), pki.caCert, { token: WRONG_TOKEN }), logger);
      agent.start();
      await waitFor(() => agent.conn.lastError === 'refused: authentication failed' && agent.conn.attempts >= 2, 'the agent refused and retrying');
      await agent.stop();
      assert.ok(logs.some((l) => l.msg === 'agent: the gateway refused this agent (check id and token)'));
      assert.equal(gateway.text().includes(WRONG_TOKEN), false);
      assert.equal(gateway.text().includes(TEST_TOKEN), false);
      assert.equal(JSON.stringify(logs).includes(WRONG_TOKEN), false);
    });

    it('mTLS: accepts a client certificate whose CN is the id; refuses another CN, another CA, and no certificate', async () => {
      const good = await pki.issue('edge-7', { client: true });
      const otherCn = await pki.issue('edge-8', { client: true });
      const otherCa = await pki.issue('edge-7', { client: true, otherCa: true });
      const local = (origin.address as string);
      const mtls = (cert: { cert: string; key: string }) =>
        agentConfig(port('mtls'), pki.caCert, { id: 'edge-7', token: undefined, tls: { ca: pki.caCert, cert: cert.cert, key: cert.key }, services: [{ code: 'edge-svc', local, type: 'http' }] });

      const agent = new Agent(mtls(good), capture().logger);
      agent.start();
      await agent.connected();
      await waitFor(() => gateway.gateway.tunnels.registrations('edge-svc').length === 1, 'edge-svc registered');
      const res = await send(gateway.url(), { path: '/m', headers: { host: 'edge.test' } });
      assert.equal(res.status, 200);
      assert.equal(res.body, 'origin /m');
      await agent.stop();

      const wrongCn = new Agent(mtls(otherCn), capture().logger);
      wrongCn.start();
      await waitFor(() => wrongCn.conn.lastError === 'refused: authentication failed', 'another CN refused');
      await wrongCn.stop();
      await waitFor(() => logged('tunnel connection refused: authentication failed', { listener: 'mtls', id: 'edge-7' }).length >= 1, 'warned');

      const refusedTls = logged('tunnel TLS handshake refused', { listener: 'mtls' }).length;
      const a = new Agent(mtls(otherCa), capture().logger);
      a.start();
      await waitFor(() => a.conn.attempts >= 2 && a.conn.state !== 'connected', 'refused at TLS, retrying');
      assert.equal(a.conn.session, null);
      await a.stop();
      // No certificate at all (an agent file cannot say that without a token: a raw TLS client).
      const bare = tls.connect({ host: '127.0.0.1', port: port('mtls'), ca: caPem, ALPNProtocols: ['portico-tunnel/1'] });
      bare.on('error', () => undefined);
      assert.equal(await closes(bare), true);
      await waitFor(() => logged('tunnel TLS handshake refused', { listener: 'mtls' }).length >= refusedTls + 2, 'TLS refusals logged');
      assert.equal(gateway.gateway.tunnels.registrations('edge-svc').length, 0);
    });
  });

  describe('policy', () => {
    it('refuses a code outside the agent\'s codes and a remotePort outside allowPorts: the agent\'s refused map and both warn logs say why', async () => {
      const { logger, logs } = capture();
      const agent = new Agent(
        agentConfig(port('tunnel'), pki.caCert, {
          services: [
            { code: 'crm', local: origin.address, type: 'http' },
            { code: 'hr', local: origin.address, type: 'http' },
            { code: 'ssh', local: origin.address, type: 'tcp', remotePort: 80 },
          ],
        }),
        logger,
      );
      agent.start();
      await agent.connected();
      await waitFor(() => agent.refused.size === 2, 'two refusals');
      assert.deepEqual(Object.fromEntries(agent.refused), { hr: 'code "hr" is not allowed for agent office-1', ssh: "port 80 is outside this agent's allowPorts" });
      const warns = logs.filter((l) => l.level === 40 && l.msg === 'agent: the gateway refused a service').map((l) => [l.code, l.reason]);
      assert.deepEqual(warns.sort(), [...agent.refused].sort());
      const gw = logged('tunnel services refused', { agent: 'office-1', listener: 'tunnel' }).at(-1)!;
      assert.equal(gw.level, 40);
      assert.deepEqual(gw.refused, [...agent.refused].map(([code, reason]) => ({ code, reason })));
      assert.equal(gateway.gateway.tunnels.registrations('crm').length, 1);
      assert.equal(gateway.gateway.tunnels.registrations('hr').length, 0);
      await agent.stop();
    });
  });

  describe('floods', () => {
    let fds = 0;
    before(() => void (fds = openFds()));
    after(async () => void (await fdsSettle(fds, 4)));

    it('registers at most limits.maxServices of 2,000 announced; the verdicts still fit one line the agent accepts', async () => {
      const peer = new RawAgent(await dialTunnel(port('tight'), caPem));
      const services = Array.from({ length: 2000 }, (_, i) => ({ code: `s${i}`, type: 'tcp' }));
      await peer.login('office-1', TEST_TOKEN, services);
      const v = await waitFor(() => peer.messages().find((m) => m.type === 'verdicts') as any, 'verdicts');
      assert.equal(v.accepted.length, 8);
      assert.equal(v.refused.length + v.refusedOmitted, 1992);
      assert.ok(v.refusedOmitted > 0);
      assert.equal(v.refused[0].reason, 'too many services (this gateway takes 8 per connection)');
      const line = peer.received.split('\n').find((l) => l.includes('"verdicts"'))!;
      assert.ok(Buffer.byteLength(line) + 1 <= MAX_CONTROL_LINE);
      assert.equal(gateway.gateway.tunnels.codesRegistered().filter((c) => /^s\d+$/.test(c)).length, 8);
      peer.destroy();
      await peer.closed;
      await waitFor(() => gateway.gateway.tunnels.codesRegistered().length === 0, 'all left');
    });

    it('a hand-written 10,000-service message is over the line cap: closed, nothing registered', async () => {
      const peer = new RawAgent(await dialTunnel(port('tight'), caPem));
      await peer.login('office-1', TEST_TOKEN, Array.from({ length: 10_000 }, (_, i) => ({ code: `s${i}`, type: 'tcp' })));
      await peer.closed;
      assert.equal(gateway.gateway.tunnels.codesRegistered().length, 0);
    });

    it('an Agent with 10,000 services stays connected: it announces what fits, the gateway registers maxServices', async () => {
      const { logger, logs } = capture();
      const local = origin.address as string;
      const agent = new Agent(agentConfig(port('tight'), pki.caCert, { services: Array.from({ length: 10_000 }, (_, i) => ({ code: `svc-${i}`, local })) }), logger);
      agent.start();
      await agent.connected();
      await waitFor(() => agent.refused.size > 0, 'verdicts');
      assert.equal(gateway.gateway.tunnels.codesRegistered().length, 8);
      const error = logs.find((l) => l.msg === 'agent: the services do not fit in one control message; announcing the first ones only')!;
      assert.equal(error.services, 10_000);
      assert.ok((error.announced as number) > 8 && (error.announced as number) < 10_000);
      const session = agent.conn.session;
      // Still the same connection a heartbeat later: no reconnect loop.
      await waitFor(() => agent.conn.lastPingAt !== null, 'a heartbeat');
      assert.equal(agent.conn.session, session);
      await agent.stop();
      await waitFor(() => gateway.gateway.tunnels.codesRegistered().length === 0, 'all left');
    });

    it('disconnects a peer sending more than 120 control messages a minute', async () => {
      const peer = new RawAgent(await dialTunnel(port('tight'), caPem));
      const stream = await peer.login('office-1', TEST_TOKEN, null);
      for (let i = 0; i < 121; i++) stream.write('{"type":"services","services":[{"code":"a","type":"tcp"}]}\n');
      await peer.closed;
      await waitFor(() => logged('tunnel agent disconnected', { reason: 'more than 120 control messages in a minute', level: 40 }).length === 1, 'logged at warn');
      assert.equal(gateway.gateway.tunnels.registrations('a').length, 0);
    });

    it('refuses half-open handshakes beyond limits.maxPending at once, holding nothing for them', async () => {
      const tight = () => (gateway.gateway.status() as any).listeners.find((l: any) => l.name === 'tight');
      const before = tight().refusedPending as number;
      const held = await Promise.all(Array.from({ length: 4 }, () => connect(port('tight'))));
      await waitFor(() => tight().pending === 4, 'four pending');
      const extra: net.Socket[] = [];
      for (let i = 0; i < 200; i++) extra.push(await connect(port('tight')));
      const closed = await Promise.all(extra.map((s) => closes(s)));
      assert.equal(closed.every(Boolean), true);
      assert.equal(tight().refusedPending - before, 200);
      assert.equal(tight().pending, 4);
      assert.equal(gateway.gateway.connections('tight'), 0);
      // Peers that leave during the handshake free their slot at once, not after limits.handshakeTimeout (5 s here).
      const timeouts = logged('tunnel TLS handshake refused', { listener: 'tight', reason: 'ERR_TLS_HANDSHAKE_TIMEOUT' }).length;
      for (const s of held) s.destroy();
      await waitFor(() => tight().pending === 0, 'nothing pending');
      await waitFor(() => logged('tunnel TLS handshake refused', { listener: 'tight', reason: 'ECONNRESET' }).length >= 4, 'four resets logged');
      assert.equal(logged('tunnel TLS handshake refused', { listener: 'tight', reason: 'ERR_TLS_HANDSHAKE_TIMEOUT' }).length, timeouts);
      // A real agent gets in once the flood is gone.
      const agent = await startAgent(formatHostPort(gateway.gateway.listenerAddress('tight')!), pki.caCert, []);
      await agent.stop();
    });
  });

  describe('an agent that vanishes mid-transfer', () => {
    let fds = 0;
    before(() => void (fds = openFds()));
    after(async () => void (await fdsSettle(fds, 4)));

    it('closes the client\'s connection through the gateway and drops the target when the agent\'s socket is killed', async () => {
      const agent = await startAgent(formatHostPort(gateway.gateway.listenerAddress('tunnel')!), pki.caCert, [{ code: 'ssh', local: `127.0.0.1:${(echo.address() as net.AddressInfo).port}`, type: 'tcp' }], { reconnect: { initial: '5s', max: '5s' } });
      await waitFor(() => gateway.gateway.tunnels.registrations('ssh').length === 1, 'ssh registered');
      const client = await connect(port('tcp'));
      client.write('x'.repeat(100_000));
      let got = 0;
      client.on('data', (c: Buffer) => (got += c.length));
      await waitFor(() => got > 0, 'echo flowing');
      const t0 = Date.now();
      (agent as unknown as { socket: net.Socket }).socket.destroy();
      assert.equal(await closes(client), true);
      await waitFor(() => gateway.gateway.tunnels.registrations('ssh').length === 0, 'ssh left');
      const ms = Date.now() - t0;
      assert.ok(ms < 5000, `${ms} ms`);
      await agent.stop();
    });
  });

  describe('data streams the agent cannot serve', () => {
    let fds = 0;
    before(() => void (fds = openFds()));
    after(async () => void (await fdsSettle(fds, 4)));

    it('answers 502 (never hangs) when the agent says 404 unknown code, 503 withdrawn, 502 local refused, resets, or never answers', async () => {
      const peer = new RawAgent(await dialTunnel(port('tunnel'), caPem));
      await peer.login('office-1', TEST_TOKEN, [{ code: 'crm', type: 'http' }]);
      await waitFor(() => gateway.gateway.tunnels.registrations('crm').length === 1, 'crm registered');
      const answers: [string, (s: import('node:http2').ServerHttp2Stream) => void, number][] = [
        ['404', (s) => s.respond({ ':status': 404, 'portico-error': 'no service "crm" here' }, { endStream: true }), 502],
        ['503', (s) => s.respond({ ':status': 503, 'portico-error': 'service crm is withdrawn (unhealthy)' }, { endStream: true }), 502],
        ['502', (s) => s.respond({ ':status': 502, 'portico-error': 'local service unreachable: connect ECONNREFUSED' }, { endStream: true }), 502],
        ['reset', (s) => s.close(0x8), 502],
        ['silence', () => undefined, 504],
      ];
      for (const [name, answer, status] of answers) {
        const seen = peer.connectStreams.length;
        const pending = send(gateway.url(), { path: '/x', headers: { host: 'crm.test' } });
        const stream = await waitFor(() => peer.connectStreams[seen], `the CONNECT stream (${name})`);
        answer(stream);
        const res = await pending;
        assert.equal(res.status, status, `${name}: ${res.body}`);
        assert.ok(res.ms < 5000, `${name} answered in ${res.ms} ms`);
        // Nothing reached the service: a connect failure (retryable on another target whatever the method).
        assert.equal(JSON.parse(res.body).code, status === 504 ? 'UPSTREAM_CONNECT_TIMEOUT' : 'UPSTREAM_CONNECT_REFUSED');
      }
      peer.destroy();
      await peer.closed;
    });

    it('retries a POST on another agent when one refuses the stream (a refused stream is a connect failure)', async () => {
      const refusing = new RawAgent(await dialTunnel(port('tunnel'), caPem));
      await refusing.login('office-1', TEST_TOKEN, [{ code: 'device-dup', type: 'http' }]);
      refusing.session.on('stream', (s, h) => {
        if (h[':method'] === 'CONNECT') s.respond({ ':status': 503, 'portico-error': 'withdrawn' }, { endStream: true });
      });
      const serving = await startAgent(formatHostPort(gateway.gateway.listenerAddress('tunnel')!), pki.caCert, [{ code: 'device-dup', local: origin.address, type: 'http' }]);
      await waitFor(() => gateway.gateway.tunnels.registrations('device-dup').length === 2, 'two registrations');
      for (let i = 0; i < 4; i++) {
        const res = await send(gateway.url(), { method: 'POST', path: `/p${i}`, body: 'x', headers: { host: 'dup.test' } });
        assert.equal(res.status, 200, res.body);
        assert.equal(res.body, `origin /p${i}`);
      }
      assert.ok(refusing.connectStreams.length >= 1, 'the refusing agent was tried');
      await serving.stop();
      refusing.destroy();
      await refusing.closed;
    });

    it('a real agent: 502 when its local port refuses; 502 when it withdrew or dropped the code before the gateway heard (its 503 and 404)', async () => {
      const dead = await deadPort();
      const agent = await startAgent(formatHostPort(gateway.gateway.listenerAddress('tunnel')!), pki.caCert, [{ code: 'crm', local: `127.0.0.1:${dead}`, type: 'http' }]);
      await waitFor(() => gateway.gateway.tunnels.registrations('crm').length === 1, 'crm registered');
      const refused = await send(gateway.url(), { path: '/x', headers: { host: 'crm.test' } });
      assert.equal(refused.status, 502);
      assert.equal(JSON.parse(refused.body).code, 'UPSTREAM_CONNECT_REFUSED');
      // The race of a health change or a reload: the agent's table changed, its announcement not sent yet.
      agent.services.onChange = () => undefined;
      agent.services.get('crm')!.up = false;
      const withdrawn = await send(gateway.url(), { path: '/x', headers: { host: 'crm.test' } });
      assert.equal(withdrawn.status, 502);
      assert.equal(JSON.parse(withdrawn.body).code, 'UPSTREAM_CONNECT_REFUSED');
      agent.services.update([]);
      assert.equal(agent.services.get('crm'), undefined);
      const unknown = await send(gateway.url(), { path: '/x', headers: { host: 'crm.test' } });
      assert.equal(unknown.status, 502);
      assert.equal(JSON.parse(unknown.body).code, 'UPSTREAM_CONNECT_REFUSED');
      assert.equal(agent.conn.streamsTotal, 1, 'only the dial to the dead port became a stream');
      await agent.stop();
    });
  });
});
