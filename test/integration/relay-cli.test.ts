import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it, type TestContext } from 'node:test';
import { createLogger } from '../../src/observability/logger.js';
import { serveByCode, type ServedByCode } from '../../src/tunnel/relay/serve.js';
import { CLI, runCli, spawnLogged, stopAfter } from '../helpers/cli.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { CLIENT_TOKEN, relayAddressOf, relayListener, SERVICE_TOKEN } from '../helpers/relay.js';
import { tunnelPki } from '../helpers/tunnel.js';
import { waitFor } from '../helpers/wait.js';
import type { Pki } from '../helpers/certs.js';

/** Starts `portico connect ARGS`; resolves with its log lines and the port it listens on. */
async function startConnect(t: TestContext, args: string[], env: NodeJS.ProcessEnv = {}) {
  const { child, logs, stderr, exited } = spawnLogged(process.execPath, [CLI, 'connect', ...args], env);
  stopAfter(t, child, exited);
  const ready = await waitFor(() => {
    if (child.exitCode !== null) throw new Error(`portico connect exited with ${child.exitCode}: ${stderr.join('')}`);
    return logs.find((l) => l.msg === 'portico connect listening');
  }, 'portico connect to listen');
  return { child, logs, exited, port: Number(String(ready.listen).split(':').pop()) };
}

/** Sends `data` with a FIN on a local TCP connection; resolves with what came back before the close. */
function roundTrip(port: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.once('error', reject);
    s.once('close', () => resolve(got));
    s.end(data);
  });
}

describe('portico connect: a local forwarder to a service code', () => {
  let pki: Pki;
  let gateway: TestGateway;
  let relay: string;
  let service: ServedByCode;

  before(async () => {
    const { pki: p, gw } = await tunnelPki();
    pki = p;
    gateway = await startGateway({ listeners: [relayListener(gw)], upstreams: [], routes: [] });
    relay = relayAddressOf(gateway);
    service = serveByCode(relay, 'dev-echo', { token: SERVICE_TOKEN, ca: pki.caCert, logger: createLogger('silent') }, (s) => s.pipe(s));
    await service.connected();
  });

  after(async () => {
    await service?.close();
    await gateway?.close();
    await pki?.cleanup();
  });

  it('exits 2 on bad usage, naming the problem', async () => {
    const cases: [string[], RegExp][] = [
      [[], /--relay HOST:PORT is required/],
      [['--relay', 'nope', '--code', 'x', '--listen', '127.0.0.1:0', '--token', 'abc'], /--relay "nope" is not HOST:PORT/],
      [['--relay', '127.0.0.1:1', '--code', 'bad code', '--listen', '127.0.0.1:0', '--token', 'abc'], /is not a service code/],
      [['--relay', '127.0.0.1:1', '--code', 'x', '--listen', '127.0.0.1:0'], /a token is required/],
      [['--relay', '127.0.0.1:1', '--code', 'x', '--token', 'abc'], /--listen HOST:PORT is required/],
      [['--relay', '127.0.0.1:1', '--code', 'x', '--listen', '127.0.0.1:0', '--token', 'abc', 'file.yaml'], /takes no config FILE/],
      [['--bogus'], /Unknown option '--bogus'/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(['connect', ...args], { env: { PORTICO_RELAY_TOKEN: '' } });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.match(r.stderr, /Usage: portico connect/);
    }
  });

  it('forwards local connections to the code, the token from the environment', async (t) => {
    const c = await startConnect(t, ['--relay', relay, '--code', 'dev-echo', '--listen', '127.0.0.1:0', '--ca', pki.caCert], { PORTICO_RELAY_TOKEN: CLIENT_TOKEN });
    assert.equal(await roundTrip(c.port, 'hello through the relay'), 'hello through the relay');
    const big = 'x'.repeat(256 * 1024);
    assert.equal((await roundTrip(c.port, big)).length, big.length);
    c.child.kill('SIGTERM');
    assert.equal(await c.exited, 0);
  });

  it('closes a local connection the relay refuses, logs the status, and keeps running', async (t) => {
    const c = await startConnect(t, ['--relay', relay, '--code', 'dev-nobody', '--listen', '127.0.0.1:0', '--ca', pki.caCert, '--token', CLIENT_TOKEN]);
    assert.equal(await roundTrip(c.port, 'anyone?'), '');
    const line = await waitFor(() => c.logs.find((l) => l.msg === 'connect: the relay refused the connection'), 'the refusal logged');
    assert.equal(line.status, 404);
    assert.equal(c.child.exitCode, null);
  });

  it('survives a relay that is down', async (t) => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const c = await startConnect(t, ['--relay', `127.0.0.1:${port}`, '--code', 'dev-echo', '--listen', '127.0.0.1:0', '--token', CLIENT_TOKEN]);
    assert.equal(await roundTrip(c.port, 'hello?'), '');
    await waitFor(() => c.logs.find((l) => l.msg === 'connect: the relay is unreachable'), 'the failure logged');
    assert.equal(c.child.exitCode, null);
  });
});
