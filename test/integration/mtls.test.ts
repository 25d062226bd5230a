import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type tls from 'node:tls';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { createPki, type Issued, type Pki } from '../helpers/certs.js';

/**
 * HTTPS listeners end to end: certificates picked by SNI, TLS versions,
 * client certificates (clientAuth require at the handshake; optional +
 * mtls-auth per route, with consumers identified by certificate) over
 * HTTP/1.1, HTTP/2 and curl; and TLS to upstreams (CA, serverName, client
 * certificate, insecureSkipVerify).
 */

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** CN of the certificate the gateway served. */
  served: string | undefined;
}

type Outcome = Reply | { error: string };

interface Call {
  servername?: string;
  path?: string;
  client?: Issued;
  headers?: Record<string, string>;
  tls?: tls.ConnectionOptions;
}

let pki: Pki;

/** One HTTPS/1.1 request on a fresh connection; a refused handshake (or a connection closed on it) is `{ error }`. */
function get(port: number, call: Call = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: call.path ?? '/',
        headers: { host: call.servername ?? 'localhost', ...call.headers },
        agent: false,
        ca: pki.caPem,
        ...(call.servername !== undefined ? { servername: call.servername } : {}),
        ...(call.client !== undefined ? { cert: call.client.certPem, key: call.client.keyPem } : {}),
        // Which certificate was served is asserted on its CN; the name check itself is curl's job below.
        checkServerIdentity: () => undefined,
        ...call.tls,
      },
      (res) => {
        const cn = (res.socket as tls.TLSSocket).getPeerCertificate().subject?.CN;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString(), served: Array.isArray(cn) ? cn[0] : cn }),
        );
        res.on('error', (e: NodeJS.ErrnoException) => resolve({ error: `${e.code}: ${e.message}` }));
      },
    );
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: `${e.code}: ${e.message}` }));
    req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
    req.end();
  });
}

function ok(o: Outcome): Reply {
  if ('error' in o) assert.fail(`expected a response, got ${o.error}`);
  return o;
}

function refused(o: Outcome, what: string): void {
  assert.ok('error' in o, `${what}: expected the connection to be refused, got HTTP ${'status' in o ? o.status : ''} ${'body' in o ? o.body : ''}`);
}

function errorOf(r: Reply): { code: string; error: string } {
  return JSON.parse(r.body) as { code: string; error: string };
}

/** One request over HTTP/2 (ALPN h2) with a client certificate. */
async function h2get(port: number, path: string, client: Issued | undefined, servername = 'localhost'): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
  const session = http2.connect(`https://127.0.0.1:${port}`, {
    ca: pki.caPem,
    servername,
    checkServerIdentity: () => undefined,
    ...(client !== undefined ? { cert: client.certPem, key: client.keyPem } : {}),
  });
  try {
    return await new Promise((resolve, reject) => {
      session.on('error', reject);
      const stream = session.request({ ':path': path, ':authority': servername });
      let status = 0;
      let headers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      stream.on('response', (h) => {
        status = Number(h[':status']);
        headers = h;
      });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve({ status, headers, body: Buffer.concat(chunks).toString() }));
      stream.on('error', reject);
      stream.end();
    });
  } finally {
    await new Promise<void>((r) => (session.closed ? r() : session.close(() => r())));
  }
}

/** Runs curl against https://name:port/path resolved to 127.0.0.1; resolves with its exit code, status, body and verbose output. */
function curl(name: string, port: number, path: string, args: string[] = []): Promise<{ code: number | null; status: number; body: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-sS', '-v', '--max-time', '10', '--cacert', pki.caCert, '--resolve', `${name}:${port}:127.0.0.1`, '-w', '\n%{http_code}', ...args, `https://${name}:${port}${path}`]);
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const nl = out.lastIndexOf('\n');
      resolve({ code, status: Number(out.slice(nl + 1)), body: out.slice(0, nl), stderr: err });
    });
  });
}

function portOf(gw: TestGateway, listener: string): number {
  return Number(new URL(gw.url(listener)).port);
}

describe('HTTPS listeners, client certificates and upstream TLS', () => {
  let otherPki: Pki;
  let upstream: TestUpstream;
  let tlsUpstream: https.Server;
  let h2Upstream: http2.Http2SecureServer;
  let gw: TestGateway;
  let doc: Record<string, any>;
  let api: Issued, wild: Issued, dflt: Issued, upstreamCert: Issued, gatewayClient: Issued;
  let clientOne: Issued, clientTwo: Issued, clientThree: Issued, expired: Issued, stranger: Issued;
  let renewable: { cert: string; key: string };

  before(async () => {
    [pki, otherPki] = await Promise.all([createPki(), createPki()]);
    [api, wild, dflt, upstreamCert, gatewayClient, clientOne, clientTwo, clientThree, expired, stranger] = await Promise.all([
      pki.issue('api.example.com'),
      pki.issue('wildcard.example.com', { sans: ['*.example.com'] }),
      pki.issue('default.example.com'),
      pki.issue('upstream.internal', { sans: ['upstream.internal', 'IP:127.0.0.1'] }),
      pki.issue('portico-gateway', { client: true }),
      pki.issue('client-one', { client: true, sans: ['URI:spiffe://example.org/one'] }),
      pki.issue('client-two', { client: true }),
      pki.issue('client-three', { client: true }),
      pki.issue('client-old', { client: true, expired: true }),
      pki.issue('client-stranger', { client: true, otherCa: true }),
    ]);
    // A certificate file that the reload test renews in place.
    renewable = { cert: join(pki.dir, 'renewable.crt'), key: join(pki.dir, 'renewable.key') };
    copyFileSync(api.cert, renewable.cert);
    copyFileSync(api.key, renewable.key);

    upstream = await startUpstream();
    // An HTTPS/1.1 upstream that requires a client certificate from the test CA and echoes who called.
    tlsUpstream = https.createServer({ cert: upstreamCert.certPem, key: upstreamCert.keyPem, ca: pki.caPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const cn = (req.socket as tls.TLSSocket).getPeerCertificate().subject?.CN;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ proto: 'https', client: cn, servername: (req.socket as tls.TLSSocket & { servername?: string }).servername, url: req.url }));
    });
    await new Promise<void>((r) => tlsUpstream.listen(0, '127.0.0.1', r));
    // The same over HTTP/2 (ALPN h2 only).
    h2Upstream = http2.createSecureServer({ cert: upstreamCert.certPem, key: upstreamCert.keyPem, ca: pki.caPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const cn = (req.socket as unknown as tls.TLSSocket).getPeerCertificate().subject?.CN;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ proto: `h${req.httpVersion}`, client: cn, url: req.url }));
    });
    await new Promise<void>((r) => h2Upstream.listen(0, '127.0.0.1', r));
    const tlsAddress = `127.0.0.1:${(tlsUpstream.address() as AddressInfo).port}`;
    const h2Address = `127.0.0.1:${(h2Upstream.address() as AddressInfo).port}`;

    const listener = (name: string, tlsBlock: Record<string, unknown>) => ({ name, protocol: 'https', listen: '127.0.0.1:0', accessLog: false, tls: tlsBlock });
    const clientTls = { ca: pki.caCert, serverName: 'upstream.internal', cert: gatewayClient.cert, key: gatewayClient.key };
    doc = {
      listeners: [
        listener('web', {
          certificates: [
            { cert: api.cert, key: api.key },
            { cert: wild.cert, key: wild.key },
            { cert: dflt.cert, key: dflt.key, default: true },
          ],
        }),
        listener('strict', { certificates: [{ cert: renewable.cert, key: renewable.key }] }),
        listener('mtls', { certificates: [{ cert: api.cert, key: api.key, default: true }], clientCa: pki.caCert, clientAuth: 'require' }),
        listener('optional', { certificates: [{ cert: api.cert, key: api.key, default: true }], clientCa: pki.caCert, clientAuth: 'optional' }),
      ],
      upstreams: [
        { name: 'echo', targets: [{ address: upstream.address }] },
        { name: 'tls-up', tls: clientTls, targets: [{ address: tlsAddress }] },
        { name: 'tls-h2', protocol: 'h2', tls: clientTls, targets: [{ address: h2Address }] },
        { name: 'tls-wrong-ca', tls: { ...clientTls, ca: otherPki.caCert }, targets: [{ address: tlsAddress }] },
        { name: 'tls-wrong-name', tls: { ...clientTls, serverName: 'other.internal' }, targets: [{ address: tlsAddress }] },
        { name: 'tls-no-client-cert', tls: { ca: pki.caCert, serverName: 'upstream.internal' }, targets: [{ address: tlsAddress }] },
        { name: 'tls-insecure', tls: { insecureSkipVerify: true, cert: gatewayClient.cert, key: gatewayClient.key }, targets: [{ address: tlsAddress }] },
      ],
      routes: [
        { name: 'up-tls', listener: 'web', match: { pathPrefix: '/up/tls' }, upstream: 'tls-up' },
        { name: 'up-h2', listener: 'web', match: { pathPrefix: '/up/h2' }, upstream: 'tls-h2' },
        { name: 'up-wrong-ca', listener: 'web', match: { pathPrefix: '/up/wrong-ca' }, upstream: 'tls-wrong-ca' },
        { name: 'up-wrong-name', listener: 'web', match: { pathPrefix: '/up/wrong-name' }, upstream: 'tls-wrong-name' },
        { name: 'up-no-client-cert', listener: 'web', match: { pathPrefix: '/up/no-client-cert' }, upstream: 'tls-no-client-cert' },
        { name: 'up-insecure', listener: 'web', match: { pathPrefix: '/up/insecure' }, upstream: 'tls-insecure' },
        { name: 'web', listener: 'web', upstream: 'echo' },
        { name: 'strict', listener: 'strict', upstream: 'echo' },
        { name: 'mtls', listener: 'mtls', upstream: 'echo' },
        {
          name: 'any-cert',
          listener: 'optional',
          match: { pathPrefix: '/any' },
          upstream: 'echo',
          middlewares: [{ 'mtls-auth': { forwardHeader: 'X-Client-Subject' } }],
        },
        { name: 'only-one', listener: 'optional', match: { pathPrefix: '/only-one' }, upstream: 'echo', middlewares: [{ 'mtls-auth': { subjects: ['spiffe://example.org/one'] } }] },
        { name: 'consumers', listener: 'optional', match: { pathPrefix: '/consumers' }, upstream: 'echo', middlewares: [{ 'mtls-auth': { consumer: 'required' } }] },
        { name: 'open', listener: 'optional', upstream: 'echo' },
      ],
      consumers: [
        { id: 'one', tlsSubjects: ['spiffe://example.org/one'] },
        // client-two may only use the any-cert route.
        { id: 'two', tlsSubjects: ['client-two'], routes: ['any-cert'] },
      ],
    };
    gw = await startGateway(doc);
  });

  after(async () => {
    await gw?.close();
    await upstream?.close();
    await new Promise<void>((r) => (tlsUpstream ? tlsUpstream.close(() => r()) : r()));
    await new Promise<void>((r) => (h2Upstream ? h2Upstream.close(() => r()) : r()));
    await pki?.cleanup();
    await otherPki?.cleanup();
  });

  describe('SNI', () => {
    it('serves the certificate of the exact name, case-insensitively', async () => {
      const port = portOf(gw, 'web');
      const r = ok(await get(port, { servername: 'api.example.com' }));
      assert.equal(r.status, 200);
      assert.equal(r.served, 'api.example.com');
      const sent = upstream.received.at(-1)!.headers;
      assert.equal(sent['x-forwarded-proto'], 'https');
      assert.equal(ok(await get(port, { servername: 'API.Example.Com' })).served, 'api.example.com');
    });

    it('a wildcard covers one label; deeper names, unknown names and no SNI get the default', async () => {
      const port = portOf(gw, 'web');
      assert.equal(ok(await get(port, { servername: 'shop.example.com' })).served, 'wildcard.example.com');
      assert.equal(ok(await get(port, { servername: 'a.shop.example.com' })).served, 'default.example.com');
      assert.equal(ok(await get(port, { servername: 'unknown.test' })).served, 'default.example.com');
      assert.equal(ok(await get(port, {})).served, 'default.example.com', 'an IP host sends no SNI');
    });

    it('curl verifies the served certificate against the name it asked for', async () => {
      const port = portOf(gw, 'web');
      const a = await curl('api.example.com', port, '/hello');
      assert.equal(a.code, 0, a.stderr);
      assert.equal(a.status, 200);
      assert.match(a.stderr, /subject: CN=api\.example\.com/);
      const w = await curl('shop.example.com', port, '/');
      assert.equal(w.code, 0, w.stderr);
      assert.match(w.stderr, /subject: CN=wildcard\.example\.com/);
      // The default certificate does not name unknown.example.org: curl refuses it (exit 60).
      const d = await curl('unknown.example.org', port, '/');
      assert.equal(d.code, 60, d.stderr);
      // HTTP/2 by ALPN.
      const h2 = await curl('api.example.com', port, '/', ['--http2']);
      assert.equal(h2.code, 0, h2.stderr);
      assert.match(h2.stderr, /ALPN: server accepted h2|ALPN, server accepted to use h2/);
    });

    it('without a default certificate, an unknown name and a missing SNI are refused at the handshake', async () => {
      const port = portOf(gw, 'strict');
      assert.equal(ok(await get(port, { servername: 'api.example.com' })).served, 'api.example.com');
      refused(await get(port, { servername: 'www.example.com' }), 'unknown name');
      refused(await get(port, {}), 'no SNI');
      const c = await curl('www.example.com', port, '/');
      assert.notEqual(c.code, 0);
    });

    it('TLS 1.1 is refused (TLS 1.2 minimum); TLS 1.2 and 1.3 are served', async () => {
      const port = portOf(gw, 'web');
      const old = await get(port, { tls: { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' } });
      assert.ok('error' in old, 'TLS 1.1 refused');
      assert.match(old.error, /alert protocol version/i, 'by the server, with a protocol_version alert');
      assert.equal(ok(await get(port, { tls: { maxVersion: 'TLSv1.2' } })).status, 200);
      assert.equal(ok(await get(port, { tls: { minVersion: 'TLSv1.3' } })).status, 200);
      const c = await curl('api.example.com', port, '/', ['--tls-max', '1.1']);
      assert.notEqual(c.code, 0, 'curl with TLS ≤ 1.1 is refused');
    });
  });

  describe('clientAuth: require', () => {
    it('a valid client certificate is served', async () => {
      const port = portOf(gw, 'mtls');
      const r = ok(await get(port, { client: clientOne }));
      assert.equal(r.status, 200);
      const c = await curl('api.example.com', port, '/', ['--cert', clientOne.cert, '--key', clientOne.key]);
      assert.equal(c.code, 0, c.stderr);
      assert.equal(c.status, 200);
    });

    it('no certificate, an expired one and one from another CA are refused at the handshake', async () => {
      const port = portOf(gw, 'mtls');
      refused(await get(port, {}), 'no certificate');
      refused(await get(port, { client: expired }), 'expired');
      refused(await get(port, { client: stranger }), 'other CA');
      refused(await get(port, { client: stranger, tls: { maxVersion: 'TLSv1.2' } }), 'other CA, TLS 1.2');
      for (const args of [[], ['--cert', expired.cert, '--key', expired.key], ['--cert', stranger.cert, '--key', stranger.key]]) {
        const c = await curl('api.example.com', port, '/', args);
        assert.notEqual(c.code, 0, `curl ${args.join(' ')}: ${c.stderr}`);
      }
    });
  });

  describe('clientAuth: optional + mtls-auth', () => {
    it('no certificate: 401; unverified certificates: 403 with the reason; a route without mtls-auth serves anyone', async () => {
      const port = portOf(gw, 'optional');
      const none = ok(await get(port, { path: '/any' }));
      assert.equal(none.status, 401, none.body);
      assert.equal(errorOf(none).code, 'UNAUTHORIZED');
      assert.match(String(none.headers['www-authenticate']), /realm="portico"/);
      const old = ok(await get(port, { path: '/any', client: expired }));
      assert.equal(old.status, 403, old.body);
      assert.match(errorOf(old).error, /CERT_HAS_EXPIRED/);
      const other = ok(await get(port, { path: '/any', client: stranger }));
      assert.equal(other.status, 403, other.body);
      assert.match(errorOf(other).error, /UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
      assert.equal(ok(await get(port, { path: '/open' })).status, 200);
      assert.equal(ok(await get(port, { path: '/open', client: expired })).status, 200);
    });

    it('a verified certificate passes; its subject goes upstream, a client-sent copy never does', async () => {
      const port = portOf(gw, 'optional');
      const r = ok(await get(port, { path: '/any', client: clientThree, headers: { 'x-client-subject': 'forged' } }));
      assert.equal(r.status, 200, r.body);
      const sent = upstream.received.at(-1)!;
      assert.equal(sent.headers['x-client-subject'], 'client-three');
      assert.equal(sent.rawHeaders.filter((h) => h.toLowerCase() === 'x-client-subject').length, 1);
      assert.equal(sent.headers['x-consumer-id'], undefined, 'client-three is no consumer');
      // A failed request never lets the forged header through either.
      const n = upstream.received.length;
      assert.equal(ok(await get(port, { path: '/any', headers: { 'x-client-subject': 'forged' } })).status, 401);
      assert.equal(upstream.received.length, n);
    });

    it('subjects: only the listed names (CN or SAN) pass', async () => {
      const port = portOf(gw, 'optional');
      assert.equal(ok(await get(port, { path: '/only-one', client: clientOne })).status, 200, 'matched by its URI SAN');
      const two = ok(await get(port, { path: '/only-one', client: clientTwo }));
      assert.equal(two.status, 403);
      assert.match(errorOf(two).error, /client-two/);
    });

    it('consumers are identified by certificate name; consumer: required refuses strangers; the consumer routes apply', async () => {
      const port = portOf(gw, 'optional');
      const one = ok(await get(port, { path: '/consumers', client: clientOne }));
      assert.equal(one.status, 200, one.body);
      assert.equal(upstream.received.at(-1)!.headers['x-consumer-id'], 'one');
      const three = ok(await get(port, { path: '/consumers', client: clientThree }));
      assert.equal(three.status, 403);
      assert.match(errorOf(three).error, /no consumer for client certificate "client-three"/);
      // Consumer two is restricted to the any-cert route.
      const two = ok(await get(port, { path: '/consumers', client: clientTwo }));
      assert.equal(two.status, 403);
      assert.match(errorOf(two).error, /consumer "two" is not allowed on this route/);
      assert.equal(ok(await get(port, { path: '/any', client: clientTwo })).status, 200);
      assert.equal(upstream.received.at(-1)!.headers['x-consumer-id'], 'two');
    });

    it('the same over HTTP/2 and curl', async () => {
      const port = portOf(gw, 'optional');
      const one = await h2get(port, '/consumers', clientOne);
      assert.equal(one.status, 200, one.body);
      assert.equal(upstream.received.at(-1)!.headers['x-consumer-id'], 'one');
      assert.equal((await h2get(port, '/consumers', clientThree)).status, 403);
      assert.equal((await h2get(port, '/any', undefined)).status, 401);
      const c = await curl('api.example.com', port, '/consumers', ['--cert', clientOne.cert, '--key', clientOne.key]);
      assert.equal(c.code, 0, c.stderr);
      assert.equal(c.status, 200);
      const c401 = await curl('api.example.com', port, '/any');
      assert.equal(c401.status, 401);
    });
  });

  describe('upstream TLS', () => {
    it('connects with ca, serverName and a client certificate (HTTP/1.1 and h2)', async () => {
      const port = portOf(gw, 'web');
      const r = ok(await get(port, { path: '/up/tls/x' }));
      assert.equal(r.status, 200, r.body);
      assert.deepEqual(JSON.parse(r.body), { proto: 'https', client: 'portico-gateway', servername: 'upstream.internal', url: '/up/tls/x' });
      const h2 = ok(await get(port, { path: '/up/h2/y' }));
      assert.equal(h2.status, 200, h2.body);
      assert.deepEqual(JSON.parse(h2.body), { proto: 'h2.0', client: 'portico-gateway', url: '/up/h2/y' });
    });

    it('an untrusted upstream certificate, a wrong name or a missing client certificate: 502', async () => {
      const port = portOf(gw, 'web');
      for (const path of ['/up/wrong-ca', '/up/wrong-name', '/up/no-client-cert']) {
        const r = ok(await get(port, { path }));
        assert.equal(r.status, 502, `${path}: ${r.body}`);
      }
    });

    it('insecureSkipVerify connects without checking the certificate', async () => {
      const r = ok(await get(portOf(gw, 'web'), { path: '/up/insecure' }));
      assert.equal(r.status, 200, r.body);
      assert.equal((JSON.parse(r.body) as { client: string }).client, 'portico-gateway');
    });
  });

  describe('reload', () => {
    it('picks up a renewed certificate file', async () => {
      const port = portOf(gw, 'strict');
      const before = ok(await get(port, { servername: 'api.example.com' }));
      assert.equal(before.served, 'api.example.com');
      const renewed = await pki.issue('api.example.com');
      copyFileSync(renewed.cert, renewable.cert);
      copyFileSync(renewed.key, renewable.key);
      const result = await gw.reload(doc);
      assert.ok(result.ok, JSON.stringify(result));
      const want = new X509Certificate(renewed.certPem).fingerprint256;
      const served = await new Promise<string>((resolve, reject) => {
        const req = https.request(
          { host: '127.0.0.1', port, servername: 'api.example.com', ca: pki.caPem, agent: false, headers: { host: 'api.example.com' } },
          (res) => {
            resolve((res.socket as tls.TLSSocket).getPeerCertificate().fingerprint256);
            res.resume();
          },
        );
        req.on('error', reject);
        req.end();
      });
      assert.equal(served, want);
    });
  });
});
