// Tunnel gauges of GET /metrics: a real gateway with a tunnel listener, a
// real in-process agent and a real HTTP origin behind it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type http from 'node:http';
import tls from 'node:tls';
import { formatHostPort } from '../../src/net/address.js';
import type { Agent } from '../../src/tunnel/agent/agent.js';
import type { Pki } from '../helpers/certs.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { startAgent, tunnelListener, tunnelPki } from '../helpers/tunnel.js';
import { CLIENT_TOKEN, relayListener } from '../helpers/relay.js';
import { readAll } from '../helpers/tcp.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

const TOKEN = 'metrics-tunnel-test-token';

/** The value of the sample `name{labels}` (labels exactly as exposed, in order), or undefined. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const escaped = `${name}${labels === '' ? '' : `{${labels}}`}`.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`^${escaped} (\\S+)$`, 'm').exec(text);
  return m === null ? undefined : Number(m[1]);
}

describe('GET /metrics: tunnel agents, streams and relay clients', () => {
  let pki: Pki;
  let gw: TestGateway;
  let origin: TestUpstream;
  let agent: Agent;
  let fdsBefore = 0;
  const held: http.ServerResponse[] = [];
  const scrape = async () => {
    const r = await send(`http://${formatHostPort(gw.gateway.adminAddress()!)}`, { path: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(r.status, 200);
    return r.body;
  };

  before(async () => {
    let cert: { cert: string; key: string };
    ({ pki, gw: cert } = await tunnelPki());
    // `/hold` answers only when the test releases it, so a stream stays open while the test looks.
    origin = await startUpstream((req, res) => {
      if (req.url === '/hold') held.push(res);
      else res.end('ok');
    });
    gw = await startGateway({
      admin: { listen: '127.0.0.1:0', token: TOKEN },
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }, tunnelListener(cert), relayListener(cert)],
      upstreams: [{ name: 'crm', targets: [{ tunnel: 'crm' }] }],
      routes: [{ name: 'crm', listener: 'web', upstream: 'crm' }],
    });
    fdsBefore = openFds();
    agent = await startAgent(formatHostPort(gw.gateway.listenerAddress('tunnel')!), pki.caCert, [{ code: 'crm', local: origin.address, type: 'http' }]);
    await waitFor(() => gw.gateway.tunnels.registrations('crm').length === 1, 'crm registered');
  });

  after(async () => {
    for (const r of held) r.end();
    await agent?.stop();
    await fdsSettle(fdsBefore, 4);
    await gw?.close();
    await origin?.close();
    await pki?.cleanup();
  });

  test('an agent, its code and its target health; a stream while a request is in flight', async () => {
    let text = await waitFor(async () => {
      const t = await scrape();
      return sample(t, 'portico_upstream_target_healthy', 'upstream="crm",target="tunnel:crm"') === 1 ? t : undefined;
    }, 'the tunnel target healthy');
    assert.equal(sample(text, 'portico_tunnel_agents', 'listener="tunnel"'), 1);
    assert.equal(sample(text, 'portico_tunnel_service_codes'), 1);
    assert.doesNotMatch(text, /office-1|#\d/, 'no agent id or registration sequence in a label');

    const reply = send(gw.url(), { path: '/hold' });
    await waitFor(() => held.length === 1 || undefined, 'the request held at the origin');
    text = await scrape();
    assert.equal(sample(text, 'portico_tunnel_streams', 'listener="tunnel"'), 1);
    held[0]!.end('done');
    assert.equal((await reply).status, 200);
    text = await waitFor(async () => {
      const t = await scrape();
      return sample(t, 'portico_tunnel_streams', 'listener="tunnel"') === undefined ? t : undefined;
    }, 'the stream gone');
    assert.equal(sample(text, 'portico_http_requests_total', 'listener="web",route="crm",upstream="crm",status_class="2xx"'), 1);
  });

  test('a refused relay client counts under its outcome; the code it asked for is no label', async () => {
    const s = tls.connect({ host: '127.0.0.1', port: gw.gateway.listenerAddress('relay')!.port, ca: pki.caPem, servername: 'localhost' });
    s.on('error', () => undefined);
    s.end(`PORTICO-RELAY/1 dev-nobody-registered ${CLIENT_TOKEN}\n`);
    assert.match((await readAll(s)).toString(), /^404 /);
    const text = await waitFor(async () => {
      const t = await scrape();
      return sample(t, 'portico_l4_connections_total', 'listener="relay",upstream="",code="unknown-code"') === 1 ? t : undefined;
    }, 'the refused relay client counted');
    assert.doesNotMatch(text, /dev-nobody-registered/);
  });

  test('an agent connection counts when it ends', async () => {
    await agent.stop();
    await waitFor(async () => sample(await scrape(), 'portico_l4_connections_total', 'listener="tunnel",upstream="",code="ok"') === 1 || undefined, 'the agent connection counted');
    assert.equal(sample(await scrape(), 'portico_tunnel_agents', 'listener="tunnel"'), undefined);
  });
});
