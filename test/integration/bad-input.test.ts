import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startGateway, simpleConfig, type TestGateway } from '../helpers/gateway.js';

/** Writes raw bytes on a fresh connection and collects everything until the gateway closes it (or `untilMs`). */
function raw(url: string, payload: string | Buffer, untilMs = 5000): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve) => {
    let data = '';
    const s = net.connect(Number(u.port), u.hostname, () => s.write(payload));
    const timer = setTimeout(() => s.destroy(), untilMs);
    s.on('data', (d) => (data += d.toString('latin1')));
    s.on('close', () => {
      clearTimeout(timer);
      resolve(data);
    });
    s.on('error', () => undefined);
  });
}

describe('bad and unusual downstream traffic', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream((req, res) => res.end(`${req.method} ${req.url}`));
    gw = await startGateway(simpleConfig([up.address], {}, {}, { maxHeaderSize: 4096, timeouts: { headers: '500ms' } }));
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('a request head over maxHeaderSize gets 431 and reaches no upstream', async () => {
    const before = up.received.length;
    const reply = await raw(gw.url(), `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(8000)}\r\n\r\n`);
    assert.match(reply, /^HTTP\/1\.1 431 /);
    assert.equal(up.received.length, before);
  });

  test('HTTP/1.1 without Host gets 400', async () => {
    const reply = await raw(gw.url(), 'GET / HTTP/1.1\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 400 /);
  });

  test('a request target that is not a path gets 400 JSON', async () => {
    const reply = await raw(gw.url(), 'GET foo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 400 /);
    assert.match(reply, /"code":"BAD_REQUEST"/);
  });

  test('a header value with a control character gets 400', async () => {
    const reply = await raw(gw.url(), 'GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\u0001b\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 400 /);
  });

  test('Content-Length together with Transfer-Encoding is refused (request smuggling)', async () => {
    const before = up.received.length;
    const reply = await raw(
      gw.url(),
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    assert.match(reply, /^HTTP\/1\.1 400 /);
    assert.equal(up.received.filter((r) => r.url === '/smuggled').length, 0);
    assert.equal(up.received.length, before);
  });

  test('a client that never finishes its request head is answered 408 and closed', async () => {
    const started = Date.now();
    const reply = await raw(gw.url(), 'GET / HTTP/1.1\r\nHost: x\r\n', 10_000);
    assert.match(reply, /^HTTP\/1\.1 408 /);
    assert.ok(Date.now() - started < 5000, 'the headers timeout (500ms, checked every second) fired');
  });

  test('pipelined requests are answered in order on one connection', async () => {
    const reply = await raw(
      gw.url(),
      'GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\nGET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    const bodies = [...reply.matchAll(/GET \/(one|two|three)/g)].map((m) => m[1]);
    assert.deepEqual(bodies, ['one', 'two', 'three']);
  });

  test('HTTP/1.0 requests are proxied and the connection closes after the response', async () => {
    const reply = await raw(gw.url(), 'GET /old HTTP/1.0\r\nHost: x\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 200 /);
    assert.match(reply, /GET \/old$/);
  });

  test('a dot-segment path cannot escape its route prefix', async (t) => {
    const other = await startGateway({
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [{ name: 'up', targets: [{ address: up.address }] }],
      routes: [{ name: 'public', listener: 'web', match: { pathPrefix: '/public' }, upstream: 'up' }],
    });
    t.after(() => other.close());
    const reply = await raw(other.url(), 'GET /public/../admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(reply, /^HTTP\/1\.1 404 /);
    const ok = await raw(other.url(), 'GET /public/a/../b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(ok, /GET \/public\/b$/, 'the normalized path is what goes upstream');
  });
});
