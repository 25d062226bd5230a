import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { validateConfig, type LoadResult } from '../../src/config/load.js';
import type { ConfigError } from '../../src/config/errors.js';
import { ConsumerRegistry } from '../../src/consumers/consumer.js';
import { listenerTlsSchema, upstreamTlsSchema, type ListenerTlsConfig } from '../../src/config/schemas/tls.js';
import { normalizeName, parseSubjectAltName, ServerCertificates, serverTlsOptions } from '../../src/tls/certificates.js';
import { clientCertificate, type ClientCertificate } from '../../src/tls/client-certificate.js';
import { loadUpstreamTls } from '../../src/tls/upstream-tls.js';
import { createPki, type Issued, type Pki } from '../helpers/certs.js';

let pki: Pki;
let api: Issued; // api.example.com
let wild: Issued; // *.example.com
let dflt: Issued; // default.example.com
let cnOnly: Issued; // CN only (no DNS SAN)
let client: Issued; // a client certificate with every kind of SAN
let expiredClient: Issued;
let strangerClient: Issued; // from the untrusted CA

before(async () => {
  pki = await createPki();
  [api, wild, dflt, cnOnly, client, expiredClient, strangerClient] = await Promise.all([
    pki.issue('api.example.com'),
    pki.issue('wildcard', { sans: ['*.example.com'] }),
    pki.issue('default.example.com'),
    pki.issue('Legacy.Example.Org', { sans: ['IP:127.0.0.1'] }),
    pki.issue('client-one', { client: true, sans: ['client-one.example.com', 'URI:spiffe://example.org/ns/a/sa/one', 'email:one@example.com', 'IP:10.1.2.3'] }),
    pki.issue('client-old', { client: true, expired: true }),
    pki.issue('client-stranger', { client: true, otherCa: true }),
  ]);
});
after(() => pki.cleanup());

function listenerTls(raw: unknown): ListenerTlsConfig {
  return listenerTlsSchema.parse(raw);
}

/** A TLS server on 127.0.0.1:0 with these options; each connection's client certificate view is recorded. */
async function tlsServer(options: tls.TlsOptions): Promise<{ port: number; seen: (ClientCertificate | undefined)[]; sockets: tls.TLSSocket[]; close(): Promise<void> }> {
  const seen: (ClientCertificate | undefined)[] = [];
  const sockets: tls.TLSSocket[] = [];
  const server = tls.createServer(options, (socket) => {
    sockets.push(socket);
    seen.push(clientCertificate(socket));
    socket.end('hi');
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    sockets,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

interface Outcome {
  /** The subject CN of the certificate the server sent. */
  cn?: string;
  /** The client-side error code when the handshake failed. */
  error?: string;
}

/**
 * One connection; resolves with the served certificate's CN once the
 * server's greeting ('hi') arrived, or the error. A client certificate the
 * server refuses after verification makes node:tls close the connection
 * without an alert: under TLS 1.3 the client has already seen
 * secureConnect, so only the missing greeting tells.
 */
function handshake(port: number, opts: tls.ConnectionOptions = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: pki.caPem, checkServerIdentity: () => undefined, ...opts });
    let cn: string | undefined;
    let greeted = false;
    let error: string | undefined;
    socket.once('secureConnect', () => {
      const c = socket.getPeerCertificate().subject?.CN;
      cn = Array.isArray(c) ? c[0] : c;
    });
    socket.on('data', () => (greeted = true));
    socket.once('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
    socket.once('close', () => resolve(greeted && error === undefined ? { cn } : { error: error ?? 'closed without a greeting' }));
  });
}

describe('ServerCertificates: SNI selection', () => {
  let certs: ServerCertificates;
  before(() => {
    certs = new ServerCertificates(
      listenerTls({
        certificates: [
          { cert: api.cert, key: api.key },
          { cert: wild.cert, key: wild.key },
          { cert: cnOnly.cert, key: cnOnly.key },
          { cert: dflt.cert, key: dflt.key, default: true },
        ],
      }),
      'listeners[0].tls',
    );
  });

  it('an exact name first, case-insensitive, trailing dot ignored', () => {
    const ctx = certs.contextFor('api.example.com');
    assert.ok(ctx);
    assert.equal(certs.contextFor('API.Example.COM'), ctx);
    assert.equal(certs.contextFor('api.example.com.'), ctx);
    assert.notEqual(certs.contextFor('other.example.com'), ctx, 'the exact name wins over the wildcard');
  });

  it('a wildcard matches exactly one left-most label', () => {
    const w = certs.contextFor('other.example.com');
    assert.ok(w);
    assert.equal(certs.contextFor('X.EXAMPLE.com.'), w);
    const d = certs.contextFor(undefined);
    assert.ok(d);
    assert.notEqual(w, d);
    assert.equal(certs.contextFor('a.b.example.com'), d, 'two labels: not the wildcard');
    assert.equal(certs.contextFor('example.com'), d, 'the bare domain: not the wildcard');
    assert.equal(certs.contextFor('.example.com'), d, 'an empty label: not the wildcard');
  });

  it('the CN names a certificate without DNS SANs; unknown names and no SNI get the default', () => {
    const legacy = certs.contextFor('legacy.example.org');
    assert.ok(legacy);
    assert.notEqual(legacy, certs.contextFor(undefined));
    assert.equal(certs.contextFor('nobody.test'), certs.contextFor(undefined));
    assert.equal(certs.contextFor(''), certs.contextFor(undefined));
  });

  it('names() and describe()', () => {
    assert.deepEqual(certs.names(), ['api.example.com', '*.example.com', 'legacy.example.org', 'default.example.com']);
    const d = certs.describe();
    assert.equal(d.length, 4);
    assert.deepEqual(d.map((c) => c.default), [false, false, false, true]);
    for (const c of d) {
      assert.match(c.validTo, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.ok(Date.parse(c.validTo) > Date.now());
    }
  });

  it('without a default, an unknown name or a missing SNI is refused', () => {
    const strict = new ServerCertificates(listenerTls({ certificates: [{ cert: api.cert, key: api.key }] }), 'listeners[0].tls');
    assert.ok(strict.contextFor('api.example.com'));
    assert.equal(strict.contextFor('www.example.com'), undefined);
    assert.equal(strict.contextFor(undefined), undefined);
  });

  it('the first certificate claiming a name serves it', () => {
    const two = new ServerCertificates(
      listenerTls({ certificates: [{ cert: api.cert, key: api.key }, { cert: wild.cert, key: wild.key }, { cert: api.cert, key: api.key, default: true }] }),
      'l',
    );
    assert.notEqual(two.contextFor('api.example.com'), two.contextFor(undefined));
  });

  it('real handshakes pick the certificate by SNI', async () => {
    const server = await tlsServer(certs.serverOptions());
    try {
      assert.deepEqual(await handshake(server.port, { servername: 'api.example.com' }), { cn: 'api.example.com' });
      assert.deepEqual(await handshake(server.port, { servername: 'Api.Example.com' }), { cn: 'api.example.com' });
      assert.deepEqual(await handshake(server.port, { servername: 'foo.example.com' }), { cn: 'wildcard' });
      assert.deepEqual(await handshake(server.port, { servername: 'a.b.example.com' }), { cn: 'default.example.com' });
      assert.deepEqual(await handshake(server.port, { servername: 'legacy.example.org' }), { cn: 'Legacy.Example.Org' });
      assert.deepEqual(await handshake(server.port, {}), { cn: 'default.example.com' }, 'an IP host sends no SNI');
    } finally {
      await server.close();
    }
  });

  it('real handshakes are refused without a default', async () => {
    const strict = new ServerCertificates(listenerTls({ certificates: [{ cert: api.cert, key: api.key }] }), 'l');
    const server = await tlsServer(strict.serverOptions());
    try {
      assert.deepEqual(await handshake(server.port, { servername: 'api.example.com' }), { cn: 'api.example.com' });
      const unknown = await handshake(server.port, { servername: 'www.example.com' });
      assert.ok(unknown.error, 'unknown name refused');
      const none = await handshake(server.port, {});
      assert.ok(none.error, 'no SNI refused');
    } finally {
      await server.close();
    }
  });

  it('TLS 1.1 is refused (TLS 1.2 minimum by default), TLS 1.2 and 1.3 are served; minVersion TLSv1.3 refuses 1.2', async () => {
    const server = await tlsServer(certs.serverOptions());
    const v13 = await tlsServer(new ServerCertificates(listenerTls({ certificates: [{ cert: dflt.cert, key: dflt.key, default: true }], minVersion: 'TLSv1.3' }), 'l').serverOptions());
    try {
      const old = await handshake(server.port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
      assert.equal(old.error, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'the server answers with a protocol_version alert');
      assert.deepEqual(await handshake(server.port, { maxVersion: 'TLSv1.2' }), { cn: 'default.example.com' });
      assert.deepEqual(await handshake(server.port, { minVersion: 'TLSv1.3' }), { cn: 'default.example.com' });
      assert.ok((await handshake(v13.port, { maxVersion: 'TLSv1.2' })).error);
      assert.deepEqual(await handshake(v13.port, {}), { cn: 'default.example.com' });
    } finally {
      await server.close();
      await v13.close();
    }
  });
});

describe('ServerCertificates: loading errors name the config path', () => {
  function loadError(raw: unknown): string {
    try {
      new ServerCertificates(listenerTls(raw), 'listeners[2].tls');
    } catch (err) {
      return (err as Error).message;
    }
    assert.fail('expected an error');
  }

  it('a missing file', () => {
    const msg = loadError({ certificates: [{ cert: api.cert, key: api.key }, { cert: dflt.cert, key: '/nonexistent/x.key' }] });
    assert.equal(msg, 'listeners[2].tls.certificates[1].key: cannot read /nonexistent/x.key: ENOENT');
    assert.match(loadError({ certificates: [{ cert: '/nonexistent/a.crt', key: api.key }] }), /^listeners\[2\]\.tls\.certificates\[0\]\.cert: cannot read \/nonexistent\/a\.crt: ENOENT$/);
    assert.match(
      loadError({ certificates: [{ cert: api.cert, key: api.key }], clientCa: '/nonexistent/ca.crt', clientAuth: 'optional' }),
      /^listeners\[2\]\.tls\.clientCa: cannot read \/nonexistent\/ca\.crt: ENOENT$/,
    );
  });

  it('a key that does not match its certificate', () => {
    assert.match(loadError({ certificates: [{ cert: api.cert, key: dflt.key }] }), /^listeners\[2\]\.tls\.certificates\[0\]\.key: .* does not match the certificate in /);
  });

  it('files that are not PEM', () => {
    const junk = join(pki.dir, 'junk.pem');
    writeFileSync(junk, 'not a certificate\n');
    assert.match(loadError({ certificates: [{ cert: junk, key: api.key }] }), /^listeners\[2\]\.tls\.certificates\[0\]\.cert: .*junk\.pem holds no PEM certificate/);
    assert.match(loadError({ certificates: [{ cert: api.cert, key: junk }] }), /^listeners\[2\]\.tls\.certificates\[0\]\.key: .*junk\.pem is not a valid PEM private key/);
    assert.match(loadError({ certificates: [{ cert: api.cert, key: api.key }], clientCa: junk, clientAuth: 'require' }), /^listeners\[2\]\.tls\.clientCa: .*holds no PEM certificate/);
    // A key file given as the certificate (and vice versa).
    assert.match(loadError({ certificates: [{ cert: api.key, key: api.cert }] }), /^listeners\[2\]\.tls\.certificates\[0\]\.cert: /);
  });

  it('a bad cipher list', () => {
    assert.match(loadError({ certificates: [{ cert: api.cert, key: api.key }], ciphers: 'NO-SUCH-CIPHER' }), /^listeners\[2\]\.tls\.certificates\[0\]: .*cipher/i);
  });
});

describe('serverTlsOptions', () => {
  const base = () => ({ certificates: [{ cert: api.cert, key: api.key, default: true }] });

  it('clientAuth none / optional / require', () => {
    const none = new ServerCertificates(listenerTls(base()), 'l');
    let o = serverTlsOptions(none.config, none);
    assert.equal(o.requestCert, false);
    assert.equal(o.rejectUnauthorized, false);
    assert.equal(o.ca, undefined);
    assert.equal(o.minVersion, 'TLSv1.2');
    assert.equal(typeof o.SNICallback, 'function');
    assert.equal(o.ALPNProtocols, undefined, 'the listener adds ALPN');
    assert.ok(o.cert && o.key, 'the default certificate is the server context');

    const optional = new ServerCertificates(listenerTls({ ...base(), clientCa: pki.caCert, clientAuth: 'optional', minVersion: 'TLSv1.3', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' }), 'l');
    o = optional.serverOptions();
    assert.equal(o.requestCert, true);
    assert.equal(o.rejectUnauthorized, false);
    assert.ok(o.ca);
    assert.equal(o.minVersion, 'TLSv1.3');
    assert.equal(o.ciphers, 'ECDHE-ECDSA-AES128-GCM-SHA256');

    const req = new ServerCertificates(listenerTls({ ...base(), clientCa: pki.caCert, clientAuth: 'require' }), 'l');
    o = req.serverOptions();
    assert.equal(o.requestCert, true);
    assert.equal(o.rejectUnauthorized, true);
  });

  it('without a default certificate, the server context has none', () => {
    const c = new ServerCertificates(listenerTls({ certificates: [{ cert: api.cert, key: api.key }] }), 'l');
    const o = c.serverOptions();
    assert.equal(o.cert, undefined);
    assert.equal(o.key, undefined);
  });

  it('SNICallback answers a context or an error', async () => {
    const c = new ServerCertificates(listenerTls({ certificates: [{ cert: api.cert, key: api.key }] }), 'l');
    const cb = c.serverOptions().SNICallback!;
    const ask = (name: string) => new Promise<{ err: Error | null; ctx?: tls.SecureContext }>((r) => cb(name, (err, ctx) => r({ err, ctx })));
    const ok = await ask('api.example.com');
    assert.equal(ok.err, null);
    assert.equal(ok.ctx, c.contextFor('api.example.com'));
    const refused = await ask('evil.test');
    assert.match(refused.err!.message, /no certificate for server name "evil\.test"/);
  });
});

describe('subjectAltName parsing', () => {
  it('splits typed entries, unquoting JSON-quoted values', () => {
    assert.deepEqual(parseSubjectAltName(undefined), []);
    assert.deepEqual(parseSubjectAltName('DNS:a.example, IP Address:127.0.0.1, URI:spiffe://x/y, email:a@b.c'), [
      { type: 'DNS', value: 'a.example' },
      { type: 'IP Address', value: '127.0.0.1' },
      { type: 'URI', value: 'spiffe://x/y' },
      { type: 'email', value: 'a@b.c' },
    ]);
    assert.deepEqual(parseSubjectAltName('URI:"http://x/a, b", DNS:c'), [
      { type: 'URI', value: 'http://x/a, b' },
      { type: 'DNS', value: 'c' },
    ]);
    assert.deepEqual(parseSubjectAltName('DNS:"q\\"uote", DNS:d'), [
      { type: 'DNS', value: 'q"uote' },
      { type: 'DNS', value: 'd' },
    ]);
  });

  it('normalizeName', () => {
    assert.equal(normalizeName('API.Example.COM.'), 'api.example.com');
    assert.equal(normalizeName('a'), 'a');
  });
});

describe('clientCertificate on a real TLS connection', () => {
  let server: Awaited<ReturnType<typeof tlsServer>>;
  before(async () => {
    const certs = new ServerCertificates(
      listenerTls({ certificates: [{ cert: dflt.cert, key: dflt.key, default: true }], clientCa: pki.caCert, clientAuth: 'optional' }),
      'l',
    );
    server = await tlsServer(certs.serverOptions());
  });
  after(() => server.close());

  it('a verified certificate: CN, every SAN, authorized, fingerprint', async () => {
    const before = server.seen.length;
    assert.deepEqual(await handshake(server.port, { cert: client.certPem, key: client.keyPem }), { cn: 'default.example.com' });
    const c = server.seen[before];
    assert.ok(c);
    assert.equal(c.subject, 'client-one');
    assert.deepEqual(c.names, ['client-one', 'client-one.example.com', 'spiffe://example.org/ns/a/sa/one', 'one@example.com', '10.1.2.3']);
    assert.equal(c.authorized, true);
    assert.equal(c.error, undefined);
    assert.match(c.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    // Cached per socket: the same object on a second read.
    assert.equal(clientCertificate(server.sockets[before]), c);
  });

  it('an expired certificate and one from another CA are seen, not authorized', async () => {
    const n = server.seen.length;
    await handshake(server.port, { cert: expiredClient.certPem, key: expiredClient.keyPem });
    await handshake(server.port, { cert: strangerClient.certPem, key: strangerClient.keyPem });
    const [old, stranger] = server.seen.slice(n);
    assert.equal(old?.subject, 'client-old');
    assert.equal(old?.authorized, false);
    assert.equal(old?.error, 'CERT_HAS_EXPIRED');
    assert.equal(stranger?.subject, 'client-stranger');
    assert.equal(stranger?.authorized, false);
    assert.match(stranger?.error ?? '', /UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
  });

  it('no certificate: undefined', async () => {
    const n = server.seen.length;
    assert.deepEqual(await handshake(server.port, {}), { cn: 'default.example.com' });
    assert.equal(server.seen.length, n + 1);
    assert.equal(server.seen[n], undefined);
  });

  it('not TLS: undefined', async () => {
    assert.equal(clientCertificate(undefined), undefined);
    assert.equal(clientCertificate({}), undefined);
    const plain = net.createServer();
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    const accepted = new Promise<net.Socket>((r) => plain.once('connection', r));
    const sock = net.connect((plain.address() as net.AddressInfo).port, '127.0.0.1');
    const peer = await accepted;
    assert.equal(clientCertificate(peer), undefined);
    sock.destroy();
    peer.destroy();
    await new Promise<void>((r) => plain.close(() => r()));
  });

  it('with clientAuth require, bad or missing certificates fail the handshake', async () => {
    const certs = new ServerCertificates(
      listenerTls({ certificates: [{ cert: dflt.cert, key: dflt.key, default: true }], clientCa: pki.caCert, clientAuth: 'require' }),
      'l',
    );
    const strict = await tlsServer(certs.serverOptions());
    try {
      assert.ok((await handshake(strict.port, {})).error, 'no certificate');
      assert.ok((await handshake(strict.port, { cert: expiredClient.certPem, key: expiredClient.keyPem })).error, 'expired');
      assert.ok((await handshake(strict.port, { cert: strangerClient.certPem, key: strangerClient.keyPem })).error, 'other CA');
      assert.deepEqual(await handshake(strict.port, { cert: client.certPem, key: client.keyPem }), { cn: 'default.example.com' });
      // Also through an SNI-selected context (its CA store is the clientCa too).
      assert.deepEqual(await handshake(strict.port, { servername: 'default.example.com', cert: client.certPem, key: client.keyPem }), { cn: 'default.example.com' });
      assert.ok((await handshake(strict.port, { servername: 'default.example.com', cert: strangerClient.certPem, key: strangerClient.keyPem })).error);
      assert.equal(strict.seen.filter((c) => c !== undefined).length, 2);
      assert.ok(strict.seen.every((c) => c === undefined || c.authorized));
    } finally {
      await strict.close();
    }
  });
});

describe('loadUpstreamTls', () => {
  it('builds client options', () => {
    const cfg = upstreamTlsSchema.parse({ ca: pki.caCert, serverName: 'api.example.com', cert: client.cert, key: client.key });
    const t = loadUpstreamTls(cfg, 'upstreams[1].tls');
    assert.equal(t.insecure, false);
    assert.equal(t.options.rejectUnauthorized, true);
    assert.equal(t.options.servername, 'api.example.com');
    assert.equal(t.options.minVersion, 'TLSv1.2');
    assert.equal(String(t.options.ca), pki.caPem);
    assert.equal(String(t.options.cert), client.certPem);
    assert.equal(String(t.options.key), client.keyPem);
    assert.match(t.key, /^[A-Za-z0-9_-]{16}$/);
    // Stable for the same inputs, different when anything changes.
    assert.equal(loadUpstreamTls(cfg, 'x').key, t.key);
    assert.notEqual(loadUpstreamTls({ ...cfg, serverName: 'b.example.com' }, 'x').key, t.key);
    assert.notEqual(loadUpstreamTls({ ...cfg, insecureSkipVerify: true }, 'x').key, t.key);
    assert.notEqual(loadUpstreamTls({ ...cfg, cert: api.cert, key: api.key }, 'x').key, t.key);
  });

  it('defaults: system CAs, no SNI override, verification on; insecureSkipVerify turns it off', () => {
    const t = loadUpstreamTls(upstreamTlsSchema.parse({}), 'u');
    assert.equal(t.options.ca, undefined);
    assert.equal(t.options.servername, undefined);
    assert.equal(t.options.cert, undefined);
    assert.equal(t.options.rejectUnauthorized, true);
    const insecure = loadUpstreamTls(upstreamTlsSchema.parse({ insecureSkipVerify: true }), 'u');
    assert.equal(insecure.insecure, true);
    assert.equal(insecure.options.rejectUnauthorized, false);
  });

  it('errors name the config path', () => {
    const err = (raw: unknown) => {
      try {
        loadUpstreamTls(upstreamTlsSchema.parse(raw), 'upstreams[1].tls');
      } catch (e) {
        return (e as Error).message;
      }
      assert.fail('expected an error');
    };
    assert.equal(err({ ca: '/nonexistent/ca.crt' }), 'upstreams[1].tls.ca: cannot read /nonexistent/ca.crt: ENOENT');
    assert.equal(err({ cert: client.cert, key: '/nonexistent/k' }), 'upstreams[1].tls.key: cannot read /nonexistent/k: ENOENT');
    assert.match(err({ cert: client.cert, key: api.key }), /^upstreams\[1\]\.tls\.key: .* does not match the certificate/);
  });

  it('connects with a client certificate to a server that requires one', async () => {
    const certs = new ServerCertificates(
      listenerTls({ certificates: [{ cert: api.cert, key: api.key, default: true }], clientCa: pki.caCert, clientAuth: 'require' }),
      'l',
    );
    const server = await tlsServer(certs.serverOptions());
    try {
      const withCert = loadUpstreamTls(upstreamTlsSchema.parse({ ca: pki.caCert, serverName: 'api.example.com', cert: client.cert, key: client.key }), 'u');
      const connect = (o: tls.ConnectionOptions) =>
        new Promise<string>((resolve) => {
          const s = tls.connect({ host: '127.0.0.1', port: server.port, ...o });
          s.once('data', (d: Buffer) => resolve(d.toString()));
          s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        });
      assert.equal(await connect(withCert.options), 'hi');
      assert.equal(server.seen.at(-1)?.subject, 'client-one');
      // The name is checked: a wrong serverName fails.
      const wrongName = loadUpstreamTls(upstreamTlsSchema.parse({ ca: pki.caCert, serverName: 'other.example.com', cert: client.cert, key: client.key }), 'u');
      assert.equal(await connect(wrongName.options), 'ERR_TLS_CERT_ALTNAME_INVALID');
      // Without the CA, the system store does not know the test CA.
      const noCa = loadUpstreamTls(upstreamTlsSchema.parse({ serverName: 'api.example.com', cert: client.cert, key: client.key }), 'u');
      assert.match(await connect(noCa.options), /UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED/);
      const insecure = loadUpstreamTls(upstreamTlsSchema.parse({ insecureSkipVerify: true, cert: client.cert, key: client.key }), 'u');
      assert.equal(await connect(insecure.options), 'hi');
    } finally {
      await server.close();
    }
  });
});

describe('consumers: tlsSubjects and mtls-auth config', () => {
  function base(): Record<string, any> {
    return {
      listeners: [
        { name: 'web', protocol: 'http', listen: '127.0.0.1:8080' },
        {
          name: 'secure',
          protocol: 'https',
          listen: '127.0.0.1:8443',
          tls: { certificates: [{ cert: 'certs/a.crt', key: 'certs/a.key' }], clientCa: 'certs/ca.crt', clientAuth: 'optional' },
        },
      ],
      upstreams: [{ name: 'users', targets: [{ address: '127.0.0.1:2003' }] }],
      routes: [{ name: 'users-api', listener: 'secure', upstream: 'users', middlewares: [{ 'mtls-auth': { subjects: ['client-one'], consumer: 'required', forwardHeader: 'X-Client-Subject' } }] }],
      consumers: [
        { id: 'one', tlsSubjects: ['client-one', 'spiffe://example.org/ns/a/sa/one'] },
        { id: 'two', tlsSubjects: ['client-two'] },
      ],
    };
  }
  function errorsOf(result: LoadResult): ConfigError[] {
    assert.equal(result.ok, false, 'expected the document to be rejected');
    return result.ok ? [] : result.errors;
  }
  function expectError(edit: (d: Record<string, any>) => void, path: string, message: RegExp): void {
    const doc = base();
    edit(doc);
    const errors = errorsOf(validateConfig(doc, {}));
    assert.equal(errors.length, 1, `expected one error, got ${JSON.stringify(errors)}`);
    assert.equal(errors[0]!.path, path);
    assert.match(errors[0]!.message, message);
  }

  it('the base document is valid; options are normalized', () => {
    const r = validateConfig(base(), {});
    if (!r.ok) assert.fail(JSON.stringify(r.errors));
    assert.deepEqual(r.config.routes[0]!.middlewares[0], {
      name: 'mtls-auth',
      options: { subjects: ['client-one'], consumer: 'required', forwardHeader: 'x-client-subject' },
    });
    assert.deepEqual(r.config.consumers[1]!.tlsSubjects, ['client-two']);
    const d = base();
    d.routes[0].middlewares = [{ 'mtls-auth': {} }];
    const r2 = validateConfig(d, {});
    if (!r2.ok) assert.fail(JSON.stringify(r2.errors));
    assert.deepEqual(r2.config.routes[0]!.middlewares[0]!.options, { consumer: 'optional' });
  });

  it('tlsSubjects: values and uniqueness', () => {
    expectError((d) => (d.consumers[1].tlsSubjects = []), 'consumers[1].tlsSubjects', /at least one/);
    expectError((d) => (d.consumers[1].tlsSubjects = ['']), 'consumers[1].tlsSubjects[0]', /must not be empty/);
    expectError((d) => (d.consumers[1].tlsSubjects = ['a\nb']), 'consumers[1].tlsSubjects[0]', /control characters/);
    expectError((d) => (d.consumers[1].tlsSubjects = ['client-two', 'client-one']), 'consumers[1].tlsSubjects[1]', /"client-one" is already claimed by consumer "one"/);
    expectError((d) => (d.consumers[1].tlsSubjects = ['client-two', 'client-two']), 'consumers[1].tlsSubjects[1]', /listed twice by this consumer/);
  });

  it('mtls-auth options and its listener', () => {
    const mw = (o: unknown) => (d: Record<string, any>) => (d.routes[0].middlewares = [{ 'mtls-auth': o }]);
    expectError(mw({ subjects: [] }), 'routes[0].middlewares[0].mtls-auth.subjects', /at least one/);
    expectError(mw({ consumer: 'maybe' }), 'routes[0].middlewares[0].mtls-auth.consumer', /optional or required/);
    expectError(mw({ forwardHeader: 'bad header' }), 'routes[0].middlewares[0].mtls-auth.forwardHeader', /header name/);
    expectError(mw({ nope: 1 }), 'routes[0].middlewares[0].mtls-auth.nope', /unknown|unrecognized/i);
    expectError((d) => (d.routes[0].listener = 'web'), 'routes[0].middlewares[0].mtls-auth', /listener "web" does not ask for client certificates/);
    expectError(
      (d) => {
        d.listeners[1].tls.clientAuth = 'none';
        delete d.listeners[1].tls.clientCa;
      },
      'routes[0].middlewares[0].mtls-auth',
      /listener "secure" does not ask for client certificates/,
    );
  });

  it('tls blocks: schema messages', () => {
    const up = (tlsBlock: unknown) => (d: Record<string, any>) => (d.upstreams[0].tls = tlsBlock);
    expectError(up({ serverName: '10.0.0.1' }), 'upstreams[0].tls.serverName', /SNI cannot carry an IP address/);
    expectError(up({ cert: 'a.crt' }), 'upstreams[0].tls.key', /cert and key go together/);
    expectError((d) => (d.listeners[1].tls.ciphers = ''), 'listeners[1].tls.ciphers', /OpenSSL cipher list/);
    expectError((d) => delete d.listeners[1].tls.clientCa, 'listeners[1].tls.clientCa', /required with clientAuth: optional/);
    expectError((d) => (d.listeners[1].tls.minVersion = 'TLSv1.1'), 'listeners[1].tls.minVersion', /TLSv1\.2 or TLSv1\.3/);
  });

  it('ConsumerRegistry.byTlsSubject: the first of the names a consumer lists', () => {
    const reg = new ConsumerRegistry([
      { id: 'one', tlsSubjects: ['client-one', 'spiffe://x/one'] },
      { id: 'two', tlsSubjects: ['client-two.example.com'] },
    ]);
    assert.equal(reg.byTlsSubject(['client-one'])?.id, 'one');
    assert.equal(reg.byTlsSubject(['nobody', 'spiffe://x/one'])?.id, 'one');
    assert.equal(reg.byTlsSubject(['client-two', 'client-two.example.com', 'client-one'])?.id, 'two');
    assert.equal(reg.byTlsSubject(['CLIENT-ONE']), undefined, 'exact, case-sensitive');
    assert.equal(reg.byTlsSubject([]), undefined);
  });
});
