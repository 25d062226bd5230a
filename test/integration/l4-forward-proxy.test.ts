import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DestinationPolicy, isPublicAddress } from '../../src/l4/forward-proxy/destination-policy.js';
import { parseAbsoluteForm, parseAuthority } from '../../src/l4/forward-proxy/target.js';
import { createPki, type Pki } from '../helpers/certs.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { closedWithin, connect, deadPort, readAll, startTcpServer } from '../helpers/tcp.js';
import { waitFor } from '../helpers/wait.js';

/** One forward-proxy listener `p` (and whatever else `extra` adds to the document). */
function proxyDoc(listener: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  return { listeners: [{ name: 'p', protocol: 'forward-proxy', listen: '127.0.0.1:0', accessLog: false, ...listener }], ...extra };
}

const LOCAL = [{ cidr: '127.0.0.1/32' }];

interface CurlResult {
  exit: number;
  /** The final response's status (0: none). */
  status: number;
  /** The status of the answer to CONNECT (0: no CONNECT). */
  connect: number;
  body: Buffer;
  /** Response headers of every response curl saw (lower-cased names). */
  headers: string;
  stderr: string;
}

let work: string;
let seq = 0;

/**
 * Runs the real curl through the proxy at `proxyPort` (`-x`); proxy
 * variables in the environment are left out so nothing else decides.
 */
function curl(proxyPort: number | null, url: string, args: string[] = []): Promise<CurlResult> {
  const n = ++seq;
  const out = join(work, `body-${n}`);
  const head = join(work, `head-${n}`);
  const all = [
    '-sS',
    '--max-time',
    '20',
    ...(proxyPort === null ? [] : ['-x', `http://127.0.0.1:${proxyPort}`]),
    '-o',
    out,
    '-D',
    head,
    '-w',
    '%{http_code} %{http_connect}',
    ...args,
    url,
  ];
  return new Promise((resolve) => {
    execFile('curl', all, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, encoding: 'utf8' }, (err, stdout, stderr) => {
      const [status, connect] = stdout.trim().split(' ').map(Number);
      resolve({
        exit: err === null ? 0 : typeof err.code === 'number' ? err.code : -1,
        status: status ?? 0,
        connect: connect ?? 0,
        body: existsSync(out) ? readFileSync(out) : Buffer.alloc(0),
        headers: existsSync(head) ? readFileSync(head, 'latin1').toLowerCase() : '',
        stderr,
      });
    });
  });
}

/** What the upstream saw of one request. */
interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  bodyLength: number;
  bodySha256: string;
}

/**
 * A plain HTTP upstream that records each request and answers with the
 * request body echoed back, plus hop-by-hop headers of its own (which the
 * proxy must not pass on).
 */
async function startUpstream(): Promise<{ server: http.Server; port: number; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const hash = createHash('sha256');
    let length = 0;
    req.on('data', (c: Buffer) => {
      hash.update(c);
      length += c.length;
    });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, bodyLength: length, bodySha256: hash.digest('hex') });
      res.writeHead(200, { 'content-type': 'application/octet-stream', connection: 'x-up-hop', 'x-up-hop': 'secret', 'keep-alive': 'timeout=4', 'x-upstream': 'yes' });
      res.end(chunks.length > 0 ? Buffer.concat(chunks) : 'hello from upstream');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as net.AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Sends raw bytes to the proxy and reads everything it answers until it closes. */
async function raw(port: number, bytes: string | Buffer): Promise<string> {
  const c = await connect(port);
  const got = readAll(c);
  c.write(bytes);
  const text = (await got).toString('latin1');
  c.destroy();
  return text;
}

let up: Awaited<ReturnType<typeof startUpstream>>;
let pki: Pki;
let tlsServer: https.Server;
let tlsPort: number;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'portico-fwd-'));
  up = await startUpstream();
  pki = await createPki();
  const leaf = await pki.issue('localhost', { sans: ['localhost', 'IP:127.0.0.1'] });
  tlsServer = https.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`tls says hi to ${req.url}`);
  });
  await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
  tlsPort = (tlsServer.address() as net.AddressInfo).port;
});

after(async () => {
  await up.close();
  tlsServer.closeAllConnections();
  await new Promise<void>((r) => tlsServer.close(() => r()));
  await pki.cleanup();
  rmSync(work, { recursive: true, force: true });
});

describe('forward-proxy: forwarding and tunnels', () => {
  let gw: TestGateway;
  let port: number;
  let logFile: string;
  before(async () => {
    logFile = join(work, 'access.log');
    gw = await startGateway(proxyDoc({ allow: LOCAL, accessLog: { path: logFile } }));
    port = gw.gateway.listenerAddress('p')!.port;
  });
  after(() => gw.close());

  it('forwards an absolute-form GET: hop-by-hop and Proxy-* headers removed, X-Forwarded-For appended, Host from the URI', async () => {
    up.seen.length = 0;
    const r = await curl(port, `http://127.0.0.1:${up.port}/some/path?q=1`, [
      '-H',
      'Connection: X-Hop',
      '-H',
      'X-Hop: must-not-pass',
      '-H',
      'Keep-Alive: timeout=9',
      '-H',
      'Proxy-Authorization: Basic Zm9vOmJhcg==',
      '-H',
      'X-Forwarded-For: 203.0.113.9',
      '-H',
      'X-Kept: yes',
    ]);
    assert.equal(r.exit, 0, r.stderr);
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'hello from upstream');
    const s = up.seen[0]!;
    assert.equal(s.method, 'GET');
    assert.equal(s.url, '/some/path?q=1');
    assert.equal(s.headers.host, `127.0.0.1:${up.port}`);
    assert.equal(s.headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
    assert.equal(s.headers.via, '1.1 portico');
    assert.equal(s.headers['x-kept'], 'yes');
    for (const h of ['proxy-connection', 'proxy-authorization', 'x-hop', 'keep-alive']) assert.equal(s.headers[h], undefined, h);
    // The upstream's hop-by-hop headers do not reach the client either.
    assert.match(r.headers, /^x-upstream: yes\r$/m);
    assert.match(r.headers, /^via: 1\.1 portico\r$/m);
    assert.doesNotMatch(r.headers, /x-up-hop|keep-alive: timeout=4/);
  });

  it('streams a POST body both ways unchanged (Content-Length and chunked)', async () => {
    const payload = randomBytes(3 * 1024 * 1024 + 7);
    const file = join(work, 'payload.bin');
    writeFileSync(file, payload);
    const sha = createHash('sha256').update(payload).digest('hex');
    for (const extra of [[], ['-H', 'Transfer-Encoding: chunked']]) {
      up.seen.length = 0;
      const r = await curl(port, `http://127.0.0.1:${up.port}/upload`, ['--data-binary', `@${file}`, '-H', 'Content-Type: application/octet-stream', ...extra]);
      assert.equal(r.exit, 0, r.stderr);
      assert.equal(r.status, 200);
      assert.equal(up.seen[0]!.method, 'POST');
      assert.equal(up.seen[0]!.bodyLength, payload.length);
      assert.equal(up.seen[0]!.bodySha256, sha);
      assert.equal(createHash('sha256').update(r.body).digest('hex'), sha);
    }
  });

  it('tunnels HTTPS through CONNECT to a name that resolves to an allowed address', async () => {
    const r = await curl(port, `https://localhost:${tlsPort}/secure`, ['--cacert', pki.caCert]);
    assert.equal(r.exit, 0, r.stderr);
    assert.equal(r.connect, 200);
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'tls says hi to /secure');
  });

  it('writes one access-log line per request and per tunnel, without credentials', async () => {
    const before = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
    await curl(port, `http://127.0.0.1:${up.port}/logged`, ['-H', 'Proxy-Authorization: Basic c2VjcmV0OnZhbHVl']);
    await curl(port, `https://localhost:${tlsPort}/logged`, ['--cacert', pki.caCert]);
    const lines = await waitFor(() => {
      const text = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
      const fresh = text.slice(before.length).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      return fresh.length >= 2 ? fresh : undefined;
    }, 'two access-log lines');
    const get = lines.find((l) => l.method === 'GET')!;
    assert.equal(get.outcome, 'ok');
    assert.equal(get.status, 200);
    assert.equal(get.target, `127.0.0.1:${up.port}`);
    assert.equal(get.protocol, 'forward-proxy');
    const tunnel = lines.find((l) => l.method === 'CONNECT')!;
    assert.equal(tunnel.outcome, 'ok');
    assert.equal(tunnel.target, `localhost:${tlsPort}`);
    assert.equal(tunnel.address, '127.0.0.1');
    assert.ok((tunnel.bytesDown as number) > 0 && (tunnel.bytesUp as number) > 0);
    assert.doesNotMatch(readFileSync(logFile, 'utf8'), /c2VjcmV0OnZhbHVl|proxy-authorization/i);
  });

  it('answers 502 when the destination refuses the connection (forwarding and CONNECT)', async () => {
    const dead = await deadPort();
    const r = await curl(port, `http://127.0.0.1:${dead}/`);
    assert.equal(r.status, 502);
    assert.match(r.body.toString(), /DIAL_FAILED/);
    const t = await curl(port, `https://127.0.0.1:${dead}/`, ['--cacert', pki.caCert]);
    assert.notEqual(t.exit, 0);
    assert.equal(t.connect, 502);
  });

  it('answers 400 to an origin-form request (the proxy is not an origin server)', async () => {
    const r = await curl(null, `http://127.0.0.1:${port}/some/path`);
    assert.equal(r.status, 400);
    assert.match(r.body.toString(), /absolute/);
  });

  it('answers 400 to malformed requests and unsupported request-targets, and closes', async () => {
    assert.match(await raw(port, 'GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n'), /^HTTP\/1\.1 400 /);
    assert.match(await raw(port, 'HELLO THERE\r\n\r\n'), /^HTTP\/1\.1 400 /);
    assert.match(await raw(port, 'GET ftp://127.0.0.1/x HTTP/1.1\r\nHost: x\r\n\r\n'), /^HTTP\/1\.1 400 /);
    assert.match(await raw(port, 'GET http://user:pw@127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n\r\n'), /^HTTP\/1\.1 400 /);
    assert.match(await raw(port, 'CONNECT 127.0.0.1 HTTP/1.1\r\nHost: x\r\n\r\n'), /^HTTP\/1\.1 400 /);
    assert.match(await raw(port, 'CONNECT 2130706433:443 HTTP/1.1\r\nHost: x\r\n\r\n'), /^HTTP\/1\.1 400 /);
    await waitFor(() => gw.gateway.connections('p') === 0, 'the connections to close');
  });

  it('answers 504 when the destination does not answer within responseTimeout', async () => {
    // Accepts and reads, never answers.
    const silent = await startTcpServer((s) => s.resume());
    const slow = await startGateway(proxyDoc({ allow: LOCAL, responseTimeout: '200ms' }));
    try {
      const r = await curl(slow.gateway.listenerAddress('p')!.port, `http://127.0.0.1:${silent.port}/`);
      assert.equal(r.status, 504);
      assert.match(r.body.toString(), /RESPONSE_TIMEOUT/);
    } finally {
      await slow.close();
      await silent.close();
    }
  });
});

describe('forward-proxy: destination policy', () => {
  it('with no allow list, denies loopback (by IP literal and by resolved name) with 403', async () => {
    const gw = await startGateway(proxyDoc());
    try {
      const port = gw.gateway.listenerAddress('p')!.port;
      up.seen.length = 0;
      const r = await curl(port, `http://127.0.0.1:${up.port}/`);
      assert.equal(r.status, 403);
      const named = await curl(port, `http://localhost:${up.port}/`);
      assert.equal(named.status, 403);
      const t = await curl(port, `https://localhost:${tlsPort}/`, ['--cacert', pki.caCert]);
      assert.equal(t.connect, 403);
      assert.equal(up.seen.length, 0);
    } finally {
      await gw.close();
    }
  });

  it('a deny rule wins over an allow rule; other ports stay allowed', async () => {
    const gw = await startGateway(proxyDoc({ allow: [{ cidr: '127.0.0.0/8' }], deny: [{ cidr: '127.0.0.1/32', ports: [up.port] }] }));
    try {
      const port = gw.gateway.listenerAddress('p')!.port;
      assert.equal((await curl(port, `http://127.0.0.1:${up.port}/`)).status, 403);
      const t = await curl(port, `https://localhost:${tlsPort}/`, ['--cacert', pki.caCert]);
      assert.equal(t.status, 200, t.stderr);
    } finally {
      await gw.close();
    }
  });

  it('denies a port that the matching allow rule does not list', async () => {
    const gw = await startGateway(proxyDoc({ allow: [{ cidr: '127.0.0.1/32', ports: [tlsPort] }] }));
    try {
      const port = gw.gateway.listenerAddress('p')!.port;
      assert.equal((await curl(port, `http://127.0.0.1:${up.port}/`)).status, 403);
      assert.equal((await curl(port, `https://127.0.0.1:${tlsPort}/`, ['--cacert', pki.caCert])).status, 200);
    } finally {
      await gw.close();
    }
  });

  it('host rules match the requested name (not an IP literal); a denied host pattern is refused', async () => {
    const gw = await startGateway(proxyDoc({ allow: [{ host: 'localhost', ports: [up.port] }, { host: '*.invalid' }], deny: [{ host: '*.blocked.invalid' }] }));
    try {
      const port = gw.gateway.listenerAddress('p')!.port;
      up.seen.length = 0;
      const ok = await curl(port, `http://localhost:${up.port}/by-name`);
      assert.equal(ok.status, 200, ok.stderr);
      assert.equal(up.seen[0]!.headers.host, `localhost:${up.port}`);
      assert.equal((await curl(port, `http://127.0.0.1:${up.port}/by-ip`)).status, 403);
      assert.equal((await curl(port, `http://localhost:${tlsPort}/other-port`)).status, 403);
      const denied = await curl(port, `http://a.blocked.invalid/`);
      assert.equal(denied.status, 403);
      // Allowed by name, but .invalid never resolves (RFC 6761 §6.4): the lookup fails.
      // (502 DNS_FAILED, or 504 DNS_TIMEOUT where the resolver is unreachable and slower than connectTimeout).
      const unresolved = await curl(port, `http://nothing.invalid/`);
      assert.ok([502, 504].includes(unresolved.status), String(unresolved.status));
      assert.match(unresolved.body.toString(), /DNS_(FAILED|TIMEOUT)/);
    } finally {
      await gw.close();
    }
  });
});

describe('forward-proxy: reload', () => {
  it('a reload applies the new rules to the next request while an open tunnel keeps flowing', async () => {
    const server = await startTcpServer((s) => s.pipe(s));
    const gw = await startGateway(proxyDoc({ allow: LOCAL }));
    try {
      const port = gw.gateway.listenerAddress('p')!.port;
      const tunnel = await connect(port);
      const first = new Promise<string>((resolve) => tunnel.once('data', (d: Buffer) => resolve(d.toString())));
      tunnel.write(`CONNECT 127.0.0.1:${server.port} HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.match(await first, /^HTTP\/1\.1 200 /);
      assert.equal((await curl(port, `http://127.0.0.1:${up.port}/`)).status, 200);
      const result = await gw.reload(proxyDoc({ allow: [{ cidr: '127.0.0.1/32', ports: [1] }] }));
      assert.ok(result.ok);
      assert.equal(gw.gateway.listenerAddress('p')!.port, port);
      assert.equal((await curl(port, `http://127.0.0.1:${up.port}/`)).status, 403);
      const echoed = new Promise<string>((resolve) => tunnel.once('data', (d: Buffer) => resolve(d.toString())));
      tunnel.write('still here');
      assert.equal(await echoed, 'still here');
      tunnel.destroy();
    } finally {
      await gw.close();
      await server.close();
    }
  });
});

describe('forward-proxy: auth basic', () => {
  let gw: TestGateway;
  let port: number;
  before(async () => {
    gw = await startGateway(proxyDoc({ allow: LOCAL, auth: 'basic' }, { consumers: [{ id: 'alice', secret: 'alice-s3cret' }] }));
    port = gw.gateway.listenerAddress('p')!.port;
  });
  after(() => gw.close());

  it('passes with the consumer credentials, and Proxy-Authorization is not forwarded', async () => {
    up.seen.length = 0;
    const r = await curl(port, `http://127.0.0.1:${up.port}/`, ['--proxy-user', 'alice:alice-s3cret']);
    assert.equal(r.status, 200, r.stderr);
    assert.equal(up.seen[0]!.headers['proxy-authorization'], undefined);
    const t = await curl(port, `https://localhost:${tlsPort}/`, ['--cacert', pki.caCert, '--proxy-user', 'alice:alice-s3cret']);
    assert.equal(t.status, 200, t.stderr);
  });

  it('answers 407 with a Basic challenge when credentials are wrong or missing', async () => {
    up.seen.length = 0;
    for (const args of [['--proxy-user', 'alice:wrong-secret'], ['--proxy-user', 'mallory:alice-s3cret'], []]) {
      const r = await curl(port, `http://127.0.0.1:${up.port}/`, args);
      assert.equal(r.status, 407, args.join(' '));
      assert.match(r.headers, /^proxy-authenticate: basic realm="portico"/m);
      const t = await curl(port, `https://localhost:${tlsPort}/`, ['--cacert', pki.caCert, ...args]);
      assert.equal(t.connect, 407, args.join(' '));
    }
    assert.equal(up.seen.length, 0);
  });
});

describe('forward-proxy: connections', () => {
  it('keeps a CONNECT tunnel half-open: bytes pipelined after the head go first, the answer follows the client FIN', async () => {
    // Answers only after it has seen the client's FIN.
    const server = await startTcpServer((s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => s.end(`got:${Buffer.concat(chunks).toString()}`));
    });
    const gw = await startGateway(proxyDoc({ allow: LOCAL }));
    try {
      const c = await connect(gw.gateway.listenerAddress('p')!.port);
      const got = readAll(c);
      c.write(`CONNECT 127.0.0.1:${server.port} HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\n\r\nearly-bytes`);
      c.end();
      assert.equal((await got).toString(), 'HTTP/1.1 200 Connection Established\r\n\r\ngot:early-bytes');
      assert.ok(await closedWithin(c, 5000));
      await waitFor(() => gw.gateway.connections('p') === 0 && server.open() === 0, 'both sides to close');
    } finally {
      await gw.close();
      await server.close();
    }
  });

  it('applies limits.maxConnectionsPerIp', async () => {
    const server = await startTcpServer((s) => s.pipe(s));
    const gw = await startGateway(proxyDoc({ allow: LOCAL, limits: { maxConnectionsPerIp: 1 } }));
    try {
      const port = gw.gateway.listenerAddress('p')!.port;
      const first = await connect(port);
      const established = new Promise<string>((resolve) => first.once('data', (d: Buffer) => resolve(d.toString())));
      first.write(`CONNECT 127.0.0.1:${server.port} HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.match(await established, /^HTTP\/1\.1 200 /);
      const refused = await curl(port, `http://127.0.0.1:${up.port}/`);
      assert.notEqual(refused.exit, 0);
      assert.equal(refused.status, 0);
      first.destroy();
      await waitFor(() => gw.gateway.connections('p') === 0, 'the first connection to close');
      assert.equal((await curl(port, `http://127.0.0.1:${up.port}/`)).status, 200);
    } finally {
      await gw.close();
      await server.close();
    }
  });

  it('takes the client address from a PROXY protocol header sent in the same packet as the request', async () => {
    const gw = await startGateway(proxyDoc({ allow: LOCAL, proxyProtocol: 'accept' }));
    try {
      up.seen.length = 0;
      const text = await raw(
        gw.gateway.listenerAddress('p')!.port,
        `PROXY TCP4 198.51.100.7 127.0.0.1 5555 80\r\nGET http://127.0.0.1:${up.port}/pp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      );
      assert.match(text, /^HTTP\/1\.1 200 /);
      assert.equal(up.seen[0]!.headers['x-forwarded-for'], '198.51.100.7');
    } finally {
      await gw.close();
    }
  });

  it('100 CONNECT tunnels opened and dropped leave no connection behind', async () => {
    const server = await startTcpServer((s) => s.pipe(s));
    const gw = await startGateway(proxyDoc({ allow: LOCAL }));
    try {
      const port = gw.gateway.listenerAddress('p')!.port;
      const sockets = await Promise.all(
        Array.from({ length: 100 }, async () => {
          const c = await connect(port);
          const ready = new Promise<string>((resolve) => c.once('data', (d: Buffer) => resolve(d.toString())));
          c.write(`CONNECT 127.0.0.1:${server.port} HTTP/1.1\r\nHost: x\r\n\r\n`);
          assert.match(await ready, /^HTTP\/1\.1 200 /);
          return c;
        }),
      );
      assert.equal(gw.gateway.connections('p'), 100);
      sockets.forEach((c, i) => (i % 2 === 0 ? c.destroy() : c.resetAndDestroy()));
      await waitFor(() => gw.gateway.connections('p') === 0 && server.open() === 0, 'every tunnel to close on both sides');
    } finally {
      await gw.close();
      await server.close();
    }
  });
});

describe('forward-proxy: policy and request-target rules', () => {
  it('the default policy allows only public unicast addresses', () => {
    for (const a of ['93.184.216.34', '8.8.8.8', '2606:4700::1111', '::ffff:93.184.216.34']) assert.equal(isPublicAddress(a), true, a);
    const inner = ['10.1.2.3', '172.16.0.1', '192.168.1.1', '127.0.0.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '224.0.0.1', '255.255.255.255', '198.18.0.1'];
    const inner6 = ['::1', '::', 'fe80::1', 'fd00::1', 'fc00::1', 'ff02::1', '::ffff:127.0.0.1', '::ffff:10.0.0.1', '64:ff9b::a00:1', '2002:a00:1::1', '2001:db8::1', '::127.0.0.1'];
    for (const a of [...inner, ...inner6]) assert.equal(isPublicAddress(a), false, a);
  });

  it('checks every resolved address and returns the one to dial (a name pointing inside is refused)', async () => {
    const answers: Record<string, string[]> = { 'mixed.test': ['10.0.0.5', '93.184.216.34'], 'inside.test': ['169.254.169.254'], 'mapped.test': ['::ffff:127.0.0.1'] };
    const lookups: string[] = [];
    const lookup = async (host: string) => {
      lookups.push(host);
      const a = answers[host];
      if (a === undefined) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
      return a;
    };
    const open = new DestinationPolicy([], [], lookup);
    const mixed = await open.check(parseAuthority('mixed.test:443')!, 1000);
    assert.deepEqual(mixed, { ok: true, address: '93.184.216.34' });
    assert.equal((await open.check(parseAuthority('inside.test:80')!, 1000)).ok, false);
    assert.equal((await open.check(parseAuthority('mapped.test:80')!, 1000)).ok, false);
    const missing = await open.check(parseAuthority('missing.test:80')!, 1000);
    assert.equal(missing.ok === false && missing.code, 'DNS_FAILED');
    // A CIDR deny applies to the resolved address; a name no rule can allow is refused before any lookup.
    const strict = new DestinationPolicy([{ host: '*.test', ports: [443] }], [{ cidr: '93.184.216.0/24' }], lookup);
    assert.equal((await strict.check(parseAuthority('mixed.test:443')!, 1000)).ok, true);
    assert.deepEqual(await strict.check(parseAuthority('mixed.test:443')!, 1000), { ok: true, address: '10.0.0.5' });
    lookups.length = 0;
    assert.equal((await strict.check(parseAuthority('other.example:443')!, 1000)).ok, false);
    assert.equal((await strict.check(parseAuthority('mixed.test:80')!, 1000)).ok, false);
    assert.deepEqual(lookups, []);
    // `*.test` does not match `test` itself.
    assert.equal((await strict.check(parseAuthority('test:443')!, 1000)).ok, false);
  });

  it('parses request-targets strictly', () => {
    assert.deepEqual(parseAbsoluteForm('http://Example.COM/a?b'), { destination: { host: 'example.com', isIp: false, port: 80, authority: 'Example.COM' }, path: '/a?b' });
    assert.equal(parseAbsoluteForm('HTTP://[::1]:8080')!.path, '/');
    assert.equal(parseAbsoluteForm('http://h?x=1')!.path, '/?x=1');
    assert.deepEqual(parseAuthority('[2001:db8::1]:443'), { host: '2001:db8::1', isIp: true, port: 443, authority: '[2001:db8::1]:443' });
    for (const bad of ['https://example.com/', '/path', 'http://u@h/', 'http:///x', 'http://h:0/', 'http://h:65536/', 'http://0x7f.1/', 'http://h%41/', 'http://[fe80::1%25eth0]/']) {
      assert.equal(parseAbsoluteForm(bad), undefined, bad);
    }
    for (const bad of ['example.com', 'example.com:', '[::1]', '1.2.3.4:x', 'a..b:1', '-a.b:1', '::1:443']) assert.equal(parseAuthority(bad), undefined, bad);
  });
});
