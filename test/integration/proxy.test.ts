import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startUpstream, echo, type TestUpstream } from '../helpers/upstream.js';
import { startGateway, simpleConfig, type TestGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';
import { send } from '../helpers/http.js';

describe('the issue example config, end to end', () => {
  let up1: TestUpstream;
  let up2: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    up1 = await startUpstream();
    up2 = await startUpstream();
    gw = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [
        {
          name: 'users',
          balancer: 'weighted-round-robin',
          hashKey: 'ip',
          targets: [
            { address: up1.address, weight: 4 },
            { address: up2.address, weight: 2 },
          ],
          timeouts: { connect: '2s', response: '30s', idle: '60s' },
        },
      ],
      routes: [
        {
          name: 'users-api',
          listener: 'web',
          match: { host: '*.example.com', pathPrefix: '/users', methods: ['GET', 'POST'] },
          stripPrefix: true,
          rewrite: [{ pattern: '^/v1/(.*)$', replacement: '/v2/$1' }],
          requestHeaders: { set: { 'X-Gateway': 'portico' }, remove: ['X-Debug'] },
          responseHeaders: { set: { 'X-Served-By': 'portico' } },
          upstream: 'users',
        },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await up1.close();
    await up2.close();
  });

  test('strips the prefix, rewrites, changes headers both ways', async () => {
    const r = await send(gw.url(), { path: '/users/v1/42?x=1', headers: { host: 'api.example.com', 'x-debug': '1', 'x-gateway': 'client' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-served-by'], 'portico');
    const got = JSON.parse(r.body) as { url: string; headers: Record<string, string> };
    assert.equal(got.url, '/v2/42?x=1');
    assert.equal(got.headers['x-gateway'], 'portico');
    assert.equal(got.headers['x-debug'], undefined);
    assert.equal(got.headers.host, 'api.example.com', 'Host is passed through by default');
    assert.equal(got.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(got.headers['x-forwarded-proto'], 'http');
    assert.equal(got.headers['x-forwarded-host'], 'api.example.com');
    assert.equal(got.headers['x-real-ip'], '127.0.0.1');
    assert.match(got.headers['x-request-id']!, /^[0-9a-f-]{36}$/);
    assert.equal(r.headers['x-request-id'], got.headers['x-request-id']);
  });

  test('balances 4:2 over a cycle (smooth weighted round-robin)', async () => {
    const before1 = up1.received.length;
    const before2 = up2.received.length;
    for (let i = 0; i < 12; i++) await send(gw.url(), { path: '/users/x', headers: { host: 'a.example.com' } });
    assert.equal(up1.received.length - before1, 8);
    assert.equal(up2.received.length - before2, 4);
  });

  test('host, path and method mismatches are 404 JSON with a request id', async () => {
    for (const [path, host, method] of [
      ['/users/1', 'example.com', 'GET'],
      ['/usersx', 'a.example.com', 'GET'],
      ['/users/1', 'a.example.com', 'DELETE'],
    ] as const) {
      const r = await send(gw.url(), { path, method, headers: { host } });
      assert.equal(r.status, 404, `${method} ${host}${path}`);
      const body = JSON.parse(r.body) as { code: string; requestId: string };
      assert.equal(body.code, 'ROUTE_NOT_FOUND');
      assert.equal(body.requestId, r.headers['x-request-id']);
    }
  });

  test('POST bodies are streamed upstream', async () => {
    const r = await send(gw.url(), { method: 'POST', path: '/users/new', headers: { host: 'b.example.com', 'content-type': 'text/plain' }, body: 'hello body' });
    assert.equal(r.status, 200);
    assert.equal((JSON.parse(r.body) as { body: string }).body, 'hello body');
  });
});

describe('connections', () => {
  test('upstream connections are pooled and kept alive', async (t) => {
    const up = await startUpstream();
    const sockets = new Set<unknown>();
    up.server.on('connection', (s) => sockets.add(s));
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    for (let i = 0; i < 10; i++) assert.equal((await send(gw.url(), { path: `/${i}` })).status, 200);
    assert.equal(up.received.length, 10);
    assert.equal(sockets.size, 1, 'ten sequential requests over fresh downstream connections reuse one upstream connection');
  });

  test('no downstream socket is left open after normal, failed and aborted exchanges', async (t) => {
    const up = await startUpstream((req, res, body) => {
      if (req.url === '/hang') return void res.write('partial');
      if (req.url === '/reset') return void req.socket.destroy();
      echo(req, res, body);
    });
    const gw = await startGateway(simpleConfig([up.address], {}, { timeouts: { response: '2s' } }));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    const u = new URL(gw.url());
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) {
      work.push(send(gw.url(), { path: '/ok' }), send(gw.url(), { path: '/reset' }));
      work.push(
        new Promise<void>((resolve) => {
          const req = http.get({ host: u.hostname, port: u.port, path: '/hang', agent: false }, (res) => {
            res.once('data', () => {
              req.destroy();
              resolve();
            });
          });
          req.on('error', () => resolve());
        }),
      );
    }
    await Promise.all(work);
    const server = (gw.gateway as unknown as { bindings: Map<string, { server: http.Server }> }).bindings.values().next().value!.server;
    await waitFor(
      () => new Promise<boolean>((resolve) => server.getConnections((_e, n) => resolve(n === 0))),
      'every downstream connection to close',
    );
    await waitFor(() => gw.gateway.current.upstreams.get('up')!.targets[0]!.inflight === 0, 'inflight to return to 0');
  });

  test('accessLog: { path } writes one JSON line per request to that file', async (t) => {
    const { mkdtempSync, readFileSync, existsSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const file = join(mkdtempSync(join(tmpdir(), 'portico-log-')), 'logs', 'access.log');
    const up = await startUpstream();
    const gw = await startGateway(simpleConfig([up.address], {}, {}, { accessLog: { path: file } }));
    t.after(async () => {
      await gw.close();
      await up.close();
    });
    await send(gw.url(), { path: '/logged?q="x"', headers: { 'x-request-id': 'req-1' } });
    await send(gw.url(), { path: '/second' });
    await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').trim().split('\n').length === 2, 'two access-log lines', 5000);
    const [first] = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(first!.type, 'access');
    assert.equal(first!.requestId, 'req-1');
    assert.equal(first!.route, 'r');
    assert.equal(first!.path, '/logged');
    assert.equal(first!.status, 200);
    assert.equal(first!.target, up.address);
    assert.equal(typeof first!.durationMs, 'number');
    assert.equal(typeof first!.upstreamMs, 'number');
    assert.ok((first!.bytesSent as number) > 0);
  });
});

describe('forwarding rules', () => {
  let up: TestUpstream;
  before(async () => {
    up = await startUpstream((req, res, body) => {
      res.setHeader('connection', 'x-internal, keep-alive');
      res.setHeader('x-internal', 'secret');
      res.setHeader('keep-alive', 'timeout=5');
      res.setHeader('proxy-authenticate', 'Basic');
      echo(req, res, body);
    });
  });
  after(() => up.close());

  test('hop-by-hop headers are removed both ways (RFC 9110 §7.6.1)', async (t) => {
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(() => gw.close());
    const r = await send(gw.url(), {
      path: '/x',
      headers: { connection: 'x-hop, keep-alive', 'x-hop': '1', 'proxy-authorization': 'Basic eA==', te: 'gzip', 'x-end': 'kept' },
    });
    const got = JSON.parse(r.body) as { headers: Record<string, string> };
    assert.equal(got.headers['x-hop'], undefined);
    assert.equal(got.headers['proxy-authorization'], undefined);
    assert.equal(got.headers.te, undefined);
    assert.equal(got.headers['x-end'], 'kept');
    assert.equal(r.headers['x-internal'], undefined, 'a header named in the upstream Connection is dropped');
    assert.equal(r.headers['proxy-authenticate'], undefined);
    assert.notEqual(r.headers['keep-alive'], 'timeout=5', "the upstream's Keep-Alive is not forwarded");
  });

  test('client X-Forwarded-For is discarded unless the peer is a trusted proxy', async (t) => {
    const untrusted = await startGateway(simpleConfig([up.address]));
    const trusted = await startGateway(simpleConfig([up.address], {}, {}, { trustedProxies: ['127.0.0.0/8'] }));
    t.after(() => Promise.all([untrusted.close(), trusted.close()]));
    const headers = { 'x-forwarded-for': '203.0.113.7, 10.1.1.1', 'x-forwarded-proto': 'https', 'x-real-ip': '1.2.3.4' };
    const a = JSON.parse((await send(untrusted.url(), { headers })).body) as { headers: Record<string, string> };
    assert.equal(a.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(a.headers['x-forwarded-proto'], 'http');
    assert.equal(a.headers['x-real-ip'], '127.0.0.1');
    const b = JSON.parse((await send(trusted.url(), { headers })).body) as { headers: Record<string, string> };
    assert.equal(b.headers['x-forwarded-for'], '203.0.113.7, 10.1.1.1, 127.0.0.1');
    assert.equal(b.headers['x-forwarded-proto'], 'https');
    assert.equal(b.headers['x-real-ip'], '10.1.1.1', 'the right-most untrusted hop is the client');
  });

  test('Expect: 100-continue is answered by the gateway and not forwarded', async (t) => {
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(() => gw.close());
    const u = new URL(gw.url());
    const reply = await new Promise<{ status: number; body: string; continued: boolean }>((resolve, reject) => {
      let continued = false;
      const req = http.request(
        { host: u.hostname, port: u.port, method: 'PUT', path: '/upload', agent: false, headers: { expect: '100-continue', 'content-length': '5' } },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body, continued }));
        },
      );
      req.on('continue', () => {
        continued = true;
        req.end('12345');
      });
      req.on('error', reject);
    });
    assert.equal(reply.continued, true);
    assert.equal(reply.status, 200);
    const got = JSON.parse(reply.body) as { body: string; headers: Record<string, string> };
    assert.equal(got.body, '12345');
    assert.equal(got.headers.expect, undefined);
  });

  test('preserveHost: false sends the target address as Host; a client request id is kept', async (t) => {
    const gw = await startGateway(simpleConfig([up.address], { preserveHost: false }));
    t.after(() => gw.close());
    const r = await send(gw.url(), { headers: { host: 'public.example', 'x-request-id': 'abc-123' } });
    const got = JSON.parse(r.body) as { headers: Record<string, string> };
    assert.equal(got.headers.host, up.address);
    assert.equal(got.headers['x-request-id'], 'abc-123');
    assert.equal(r.headers['x-request-id'], 'abc-123');
  });

  test('consistent hash on a header keeps a key on one target', async (t) => {
    const other = await startUpstream();
    t.after(() => other.close());
    const gw = await startGateway(simpleConfig([up.address, other.address], {}, { balancer: 'consistent-hash', hashKey: 'header:x-user' }));
    t.after(() => gw.close());
    for (const user of ['alice', 'bob', 'carol', 'dave']) {
      const seen = new Set<number>();
      for (let i = 0; i < 5; i++) {
        const a = up.received.length;
        await send(gw.url(), { headers: { 'x-user': user } });
        seen.add(up.received.length > a ? 1 : 2);
      }
      assert.equal(seen.size, 1, `${user} always goes to the same target`);
    }
  });
});

describe('upstream failures', () => {
  test('refused connection → 502 JSON', async (t) => {
    const dead = await startUpstream();
    const address = dead.address;
    await dead.close();
    const gw = await startGateway(simpleConfig([address]));
    t.after(() => gw.close());
    const r = await send(gw.url(), { path: '/a' });
    assert.equal(r.status, 502);
    const body = JSON.parse(r.body) as { error: string; code: string; requestId: string };
    assert.equal(body.code, 'UPSTREAM_CONNECT_REFUSED');
    assert.equal(body.requestId, r.headers['x-request-id']);
    assert.equal(typeof body.error, 'string');
  });

  test('reset before the response → 502', async (t) => {
    const up = await startUpstream((req) => req.socket.destroy());
    t.after(() => up.close());
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(() => gw.close());
    const r = await send(gw.url());
    assert.equal(r.status, 502);
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'UPSTREAM_RESET');
  });

  test('response timeout → 504', async (t) => {
    const up = await startUpstream(() => undefined); // never answers
    t.after(() => up.close());
    const gw = await startGateway(simpleConfig([up.address], {}, { timeouts: { response: '300ms' } }));
    t.after(() => gw.close());
    const started = Date.now();
    const r = await send(gw.url());
    assert.equal(r.status, 504);
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'UPSTREAM_RESPONSE_TIMEOUT');
    assert.ok(Date.now() - started < 5000);
  });

  test('connect timeout → 504 (a listener whose accept queue is full)', async (t) => {
    const { port, close } = await fullBacklogListener();
    t.after(close);
    const gw = await startGateway(simpleConfig([`127.0.0.1:${port}`], {}, { timeouts: { connect: '300ms' } }));
    t.after(() => gw.close());
    const r = await send(gw.url());
    assert.equal(r.status, 504);
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'UPSTREAM_CONNECT_TIMEOUT');
  });

  test('no target available (all drained with weight 0) → 503', async (t) => {
    const up = await startUpstream();
    t.after(() => up.close());
    const gw = await startGateway({
      ...simpleConfig([up.address]),
      upstreams: [{ name: 'up', targets: [{ address: up.address, weight: 0 }] }],
    });
    t.after(() => gw.close());
    const r = await send(gw.url());
    assert.equal(r.status, 503);
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'NO_TARGET');
    assert.equal(up.received.length, 0);
  });

  test('a drained target gets no traffic while the others do', async (t) => {
    const live = await startUpstream();
    const drained = await startUpstream();
    t.after(() => Promise.all([live.close(), drained.close()]));
    const gw = await startGateway({
      ...simpleConfig([]),
      upstreams: [{ name: 'up', targets: [{ address: live.address }, { address: drained.address, weight: 0 }] }],
    });
    t.after(() => gw.close());
    for (let i = 0; i < 6; i++) assert.equal((await send(gw.url())).status, 200);
    assert.equal(live.received.length, 6);
    assert.equal(drained.received.length, 0);
  });

  test('an upstream that dies mid-body aborts the downstream response', async (t) => {
    const up = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(1000, 97));
      setTimeout(() => res.socket?.destroy(), 50);
    });
    t.after(() => up.close());
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(() => gw.close());
    const u = new URL(gw.url());
    const outcome = await new Promise<string>((resolve) => {
      const req = http.get({ host: u.hostname, port: u.port, path: '/', agent: false }, (res) => {
        let n = 0;
        res.on('data', (c: Buffer) => (n += c.length));
        res.on('end', () => resolve(`complete ${n}`));
        res.on('aborted', () => resolve('aborted'));
        res.on('error', () => resolve('aborted'));
      });
      req.on('error', () => resolve('aborted'));
    });
    assert.equal(outcome, 'aborted', 'the client must not see a silently truncated body as complete');
  });

  test('a client that disconnects aborts the upstream request', async (t) => {
    let upstreamClosed = false;
    const up = await startUpstream((req, res) => {
      res.writeHead(200);
      res.write('partial');
      req.socket.on('close', () => (upstreamClosed = true));
    });
    t.after(() => up.close());
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(() => gw.close());
    const u = new URL(gw.url());
    await new Promise<void>((resolve) => {
      const req = http.get({ host: u.hostname, port: u.port, path: '/', agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
    });
    await waitFor(() => upstreamClosed, 'the upstream connection to close');
    await waitFor(() => gw.gateway.current.upstreams.get('up')!.targets[0]!.inflight === 0, 'inflight to return to 0');
  });

  test('malformed requests get 400 and the gateway keeps serving', async (t) => {
    const up = await startUpstream();
    t.after(() => up.close());
    const gw = await startGateway(simpleConfig([up.address]));
    t.after(() => gw.close());
    const u = new URL(gw.url());
    const reply = await new Promise<string>((resolve) => {
      const s = net.connect(Number(u.port), u.hostname, () => s.write('GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n'));
      let data = '';
      s.on('data', (d) => (data += d.toString()));
      s.on('close', () => resolve(data));
    });
    assert.match(reply, /^HTTP\/1\.1 400 /);
    const r = await send(gw.url());
    assert.equal(r.status, 200);
  });
});

/**
 * A loopback listener that never accepts: its accept queue is filled, so
 * further SYNs go unanswered and a connect times out. Implemented with a
 * python3 socket (listen(0), no accept), since node:net always accepts.
 */
async function fullBacklogListener(): Promise<{ port: number; close: () => Promise<void> }> {
  const { spawn } = await import('node:child_process');
  const child = spawn('python3', ['-c', 'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('error', reject);
  });
  // Fill the queue: these connections complete the handshake but are never accepted.
  const fillers: net.Socket[] = [];
  for (let i = 0; i < 4; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    fillers.push(s);
  }
  await new Promise((r) => setTimeout(r, 100));
  return {
    port,
    close: async () => {
      for (const s of fillers) s.destroy();
      child.kill();
    },
  };
}
