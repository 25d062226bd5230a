// The log phase runs exactly once per request or WebSocket session, on
// every exit path of the exchange: a refused head, no route, a direct
// response, the token endpoint, a middleware rejection, an upstream error,
// a retry then a success, a client gone mid-response, and a WebSocket
// session. Each path has its own request path; the test counts the
// access-log lines of each once a later sentinel request has been logged.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import type { RequestContext } from '../../src/snapshot/snapshot.js';
import { log } from '../../src/http/exchange/phases.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { logLines } from '../helpers/log-file.js';
import { connect, deadPort, readAll } from '../helpers/tcp.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

const SECRET = 'log-once-secret-value';
const SIGNING_KEY = 'log-once-test-signing-key-0123456789abcdef';

describe('the log phase runs exactly once per exchange', () => {
  let up: TestUpstream;
  let wsServer: http.Server;
  let wss: WebSocketServer;
  let gw: TestGateway;
  let dir: string;
  const file = () => path.join(dir, 'access.log');
  let flakyHits = 0;
  /** Responses held open by the upstream (the client-gone path), ended in `after`. */
  const held: http.ServerResponse[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'portico-log-once-'));
    up = await startUpstream((req, res) => {
      if (req.url === '/flaky') {
        flakyHits++;
        res.writeHead(flakyHits === 1 ? 503 : 200, { 'content-length': '2' }).end('ok');
        return;
      }
      if (req.url === '/gone') {
        // A head and a first chunk, then nothing until the test ends.
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first chunk');
        held.push(res);
        return;
      }
      res.writeHead(200, { 'content-length': '2' }).end('ok');
    });
    wsServer = http.createServer();
    wss = new WebSocketServer({ server: wsServer });
    wss.on('connection', (ws) => ws.on('message', (m) => ws.send(m)));
    await new Promise<void>((r) => wsServer.listen(0, '127.0.0.1', r));
    const wsAddress = `127.0.0.1:${(wsServer.address() as AddressInfo).port}`;
    const dead = `127.0.0.1:${await deadPort()}`;
    gw = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: { path: file() } }],
      upstreams: [
        { name: 'up', targets: [{ address: up.address }] },
        { name: 'flaky', targets: [{ address: up.address }], retries: { attempts: 1, on: [503], backoff: { base: 0, max: 0 } } },
        { name: 'dead', targets: [{ address: dead }] },
        { name: 'ws', targets: [{ address: wsAddress }] },
      ],
      routes: [
        { name: 'direct', listener: 'web', match: { path: '/direct' }, respond: { body: 'hi' } },
        { name: 'token', listener: 'web', match: { path: '/token' }, 'token-endpoint': { signingKey: SIGNING_KEY } },
        { name: 'keyed', listener: 'web', match: { path: '/keyed' }, upstream: 'up', middlewares: [{ 'key-auth': {} }] },
        { name: 'dead', listener: 'web', match: { path: '/dead' }, upstream: 'dead' },
        { name: 'flaky', listener: 'web', match: { path: '/flaky' }, upstream: 'flaky' },
        { name: 'gone', listener: 'web', match: { path: '/gone' }, upstream: 'up' },
        { name: 'ws', listener: 'web', match: { path: '/ws' }, upstream: 'ws' },
        { name: 'sentinel', listener: 'web', match: { path: '/sentinel' }, upstream: 'up' },
      ],
      consumers: [{ id: 'app', secret: SECRET }],
    });
  });

  after(async () => {
    await gw.close();
    for (const res of held) res.end();
    await up.close();
    for (const c of wss.clients) c.terminate();
    wss.close();
    await new Promise<void>((r) => wsServer.close(() => r()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('one access-log line per exit path', async () => {
    const url = gw.url();
    const port = Number(new URL(url).port);

    // A refused head: two Host fields (RFC 9112 §3.2).
    const raw = await connect(port);
    raw.write('GET /refused HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n');
    assert.match((await readAll(raw)).toString('latin1'), /^HTTP\/1\.1 400 /);
    raw.destroy();

    assert.equal((await send(url, { path: '/no-route' })).status, 404);
    assert.equal((await send(url, { path: '/direct' })).status, 200);
    const basic = `Basic ${Buffer.from(`app:${SECRET}`).toString('base64')}`;
    const token = await send(url, {
      method: 'POST',
      path: '/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic },
      body: 'grant_type=client_credentials',
    });
    assert.equal(token.status, 200, token.body);
    assert.equal((await send(url, { path: '/keyed' })).status, 401);
    assert.equal((await send(url, { path: '/dead' })).status, 502);
    const flaky = await send(url, { path: '/flaky' });
    assert.equal(flaky.status, 200);
    assert.equal(flakyHits, 2, 'the 503 was retried');

    // The client goes away after the first body bytes.
    await new Promise<void>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/gone', agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.setTimeout(10_000, () => reject(new Error('no first chunk')));
    });

    // A WebSocket session: one message echoed, then closed by the client.
    const ws = new WebSocket(`${url.replace('http', 'ws')}/ws`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => ws.send('ping'));
      ws.once('message', () => ws.close(1000));
      ws.once('close', () => resolve());
      ws.once('error', reject);
    });

    const paths = ['/refused', '/no-route', '/direct', '/token', '/keyed', '/dead', '/flaky', '/gone', '/ws'];
    // Every path logged, then a sentinel logged after them: a second line for any of them would be in the file by now.
    await waitFor(() => {
      const seen = new Set(logLines(file()).map((l) => l.path));
      return paths.every((p) => seen.has(p)) || undefined;
    }, 'a line for every exit path');
    assert.equal((await send(url, { path: '/sentinel' })).status, 200);
    const lines = await waitFor(() => {
      const l = logLines(file());
      return l.some((x) => x.path === '/sentinel') ? l : undefined;
    }, 'the sentinel line');

    const count = (p: string) => lines.filter((l) => l.path === p).length;
    assert.deepEqual(
      Object.fromEntries(paths.map((p) => [p, count(p)])),
      Object.fromEntries(paths.map((p) => [p, 1])),
    );
    const status = (p: string) => lines.find((l) => l.path === p)!.status;
    assert.deepEqual(
      paths.map(status),
      // The client gone mid-response keeps the status of the head it got.
      [400, 404, 200, 200, 401, 502, 200, 200, 101],
    );
  });

  test('a second call of the log phase records nothing', () => {
    let records = 0;
    let writes = 0;
    const ctx = {
      logged: false,
      error: undefined,
      h2: true,
      listener: { stats: { record: () => records++ }, accessLog: { write: () => writes++ } },
    } as unknown as RequestContext;
    log(ctx);
    log(ctx);
    assert.deepEqual({ records, writes }, { records: 1, writes: 1 });
  });
});
