// Request heads that property-based fuzzing of the HTTP listener turned up,
// each a named regression: the documented answer, the upstream sees only
// what it should, and every connection is closed.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startGateway, simpleConfig } from '../helpers/gateway.js';
import { fdsSettle, openFds } from '../helpers/fds.js';

/** Sends raw bytes; resolves with everything the gateway wrote before it closed (or 3 s passed). */
function exchange(port: number, raw: string): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text, closed: false });
    }, 3000);
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
    s.write(raw);
  });
}

/** Starts `up` and a gateway proxying every request to it (closed after the test); the gateway's port. */
async function gatewayBefore(t: TestContext, up: http.Server): Promise<number> {
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  const gw = await startGateway(simpleConfig([`127.0.0.1:${(up.address() as net.AddressInfo).port}`]));
  t.after(async () => {
    await gw.close();
    up.close();
  });
  return Number(new URL(gw.url()).port);
}

/** `upstreamSees`: the requests the upstream receives (`maybe`: the head may or may not reach it before the refusal; its body never completes). */
const CASES: { name: string; raw: string; status: number; upstreamSees: string[] | 'maybe' }[] = [
  {
    name: 'bad bytes pipelined after a complete request: that request is answered, then the connection closes',
    raw: 'GET /first HTTP/1.1\r\nHost: h\r\n\r\nGET /second HTTP/1.1\r\nHost h\r\n\r\n',
    status: 200,
    upstreamSees: ['GET /first'],
  },
  { name: 'a body on a request that declared none is not a second request', raw: 'GET /u HTTP/1.1\r\nHost: h\r\n\r\nhello\r\n\r\n', status: 200, upstreamSees: ['GET /u'] },
  { name: 'an HTTP/2.0 version on the HTTP/1 parser is 505', raw: 'GET /u HTTP/2.0\r\nHost: h\r\n\r\n', status: 505, upstreamSees: [] },
  { name: 'CONNECT on a reverse-proxy listener is 405 with Allow', raw: 'CONNECT other.test:443 HTTP/1.1\r\nHost: other.test:443\r\n\r\n', status: 405, upstreamSees: [] },
  { name: 'a fragment in the request target is 400, not a path character', raw: 'GET /r#/../u HTTP/1.1\r\nHost: h\r\n\r\n', status: 400, upstreamSees: [] },
  { name: 'Transfer-Encoding: gzip, chunked is 501, not de-chunked with the coding dropped', raw: 'POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', status: 501, upstreamSees: [] },
  { name: 'a chunked body with bare LF line ends is 400', raw: 'POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n', status: 400, upstreamSees: 'maybe' },
];

test('request heads found by fuzzing get their documented answer and close', async (t) => {
  const seen: string[] = [];
  let completeBodies = 0;
  const up = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => {
      if (req.method === 'POST') completeBodies++;
      res.end('ok');
    });
  });
  const port = await gatewayBefore(t, up);
  await exchange(port, 'GET /warm HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
  const baseline = openFds();
  for (const c of CASES) {
    seen.length = 0;
    const { text, closed } = await exchange(port, c.raw);
    const statuses = [...text.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => Number(m[1]));
    assert.deepEqual(statuses, [c.status], `${c.name}: got ${JSON.stringify(text.slice(0, 200))}`);
    assert.ok(closed, `${c.name}: the connection is closed`);
    if (c.status === 405) assert.match(text, /\r\nallow: GET/i);
    if (c.status >= 400) assert.match(text, /"code":"[A-Z_]+"/, `${c.name}: a JSON error body`);
    if (c.upstreamSees !== 'maybe') assert.deepEqual(seen.filter((s) => !s.includes('/warm')), c.upstreamSees, c.name);
  }
  assert.equal(completeBodies, 0, 'no refused body reached the upstream whole');
  await fdsSettle(baseline, 2, 10_000);
});

test('a CONNECT whose client resets at once does not end the process; the listener keeps serving', async (t) => {
  const up = http.createServer((_req, res) => res.end('ok'));
  const port = await gatewayBefore(t, up);
  const baseline = openFds();
  for (let i = 0; i < 20; i++) {
    await new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.write('CONNECT x.test:443 HTTP/1.1\r\nHost: x.test:443\r\n\r\n');
        // An RST right behind the request, as open-proxy scanners send: the answer's write meets a reset socket.
        setImmediate(() => s.resetAndDestroy());
      });
      s.on('error', () => undefined);
      s.on('close', () => resolve());
    });
  }
  const { text } = await exchange(port, 'GET /u HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
  assert.match(text, /^HTTP\/1\.1 200 /);
  await fdsSettle(baseline, 2, 10_000);
});
