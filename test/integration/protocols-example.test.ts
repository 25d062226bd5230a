import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import tls from 'node:tls';
import { parse } from 'yaml';
import { loadConfigText } from '../../src/config/load.js';
import { startGateway } from '../helpers/gateway.js';
import { createPki } from '../helpers/certs.js';
import { echoMethods, grpcClient, helloMethods, startGrpcServer, unaryCall } from '../helpers/grpc.js';

/** Issue 4's config document, exactly as the issue gives it. */
const ISSUE_DOC = `
listeners:
  - name: web-tls
    protocol: https                 # serves HTTP/1.1 and HTTP/2 (ALPN)
    listen: 127.0.0.1:8443
    tls:
      certificates:                 # picked by SNI from each certificate's names
        - { cert: certs/api.crt, key: certs/api.key }
        - { cert: certs/default.crt, key: certs/default.key, default: true }   # when no name matches the SNI (or no SNI)
      clientCa: certs/ca.crt
      clientAuth: require           # require | optional | none
  - name: grpc
    protocol: http                  # cleartext HTTP/1.1 and h2c (prior knowledge) on one port
    listen: 127.0.0.1:50051
upstreams:
  - name: echo-grpc
    protocol: h2c                   # http1 (default) | h2 | h2c
    targets: [{ address: 127.0.0.1:50055 }]
  - name: hello-mtls
    protocol: h2
    tls: { ca: certs/ca.crt, serverName: server.example.com, cert: certs/client.crt, key: certs/client.key }
    targets: [{ address: 127.0.0.1:8080 }]
routes:
  - name: echo
    listener: grpc
    match: { pathPrefix: /echo.Echo/ }
    upstream: echo-grpc
    grpcMetadata: { set: { x-gateway: portico } }
`;

test('issue 4 document: validates as written, then serves gRPC over h2c and an mTLS chain end to end', async (t) => {
  const pki = await createPki();
  t.after(() => pki.cleanup());
  // The document's relative certificate paths, in a working directory of their own.
  const dir = join(pki.dir, 'site');
  await mkdir(join(dir, 'certs'), { recursive: true });
  const place = async (name: string, issued: { certPem: string; keyPem: string }) => {
    await writeFile(join(dir, 'certs', `${name}.crt`), issued.certPem);
    await writeFile(join(dir, 'certs', `${name}.key`), issued.keyPem);
  };
  await place('api', await pki.issue('api.example.com'));
  await place('default', await pki.issue('default.example.com'));
  await place('client', await pki.issue('portico-gateway', { client: true }));
  await copyFile(pki.caCert, join(dir, 'certs', 'ca.crt'));
  const cwd = process.cwd();
  process.chdir(dir);
  t.after(() => process.chdir(cwd));
  const asWritten = loadConfigText(ISSUE_DOC, {});
  assert.equal(asWritten.ok, true, asWritten.ok ? '' : JSON.stringify(asWritten.errors));

  // Real peers: the Echo service over h2c, the HelloWorld service over mutual TLS.
  const echo = await startGrpcServer({ name: 'echo' });
  t.after(() => echo.close());
  const serverCert = await pki.issue('server.example.com');
  const hello = await startGrpcServer({ name: 'hello', tls: { certPem: serverCert.certPem, keyPem: serverCert.keyPem, clientCaPem: pki.caPem } });
  t.after(() => hello.close());

  // Fixed ports become port 0 and the targets the real servers; one route is added for the mTLS upstream.
  const doc = parse(
    ISSUE_DOC.replace('127.0.0.1:8443', '127.0.0.1:0')
      .replace('127.0.0.1:50051', '127.0.0.1:0')
      .replace('127.0.0.1:50055', echo.address)
      .replace('127.0.0.1:8080', hello.address),
  ) as { listeners: Record<string, unknown>[]; routes: Record<string, unknown>[] };
  for (const l of doc.listeners) l.accessLog = false;
  doc.routes.push({ name: 'hello', listener: 'web-tls', match: { pathPrefix: '/helloworld.HelloWorld/' }, upstream: 'hello-mtls' });
  const gw = await startGateway(doc);
  t.after(() => gw.close());
  process.chdir(cwd);

  // gRPC over h2c on the `grpc` listener, with the route's metadata rule applied.
  const client = grpcClient(gw.url('grpc').replace('http://', ''));
  t.after(() => client.close());
  const r = await unaryCall(client, echoMethods().UnaryEcho, { message: 'hi' });
  assert.deepEqual(r.responses, [{ message: 'hi' }]);
  assert.deepEqual(echo.calls.at(-1)!.metadata.get('x-gateway'), ['portico']);

  // gRPC over TLS with a client certificate on `web-tls`, to the HelloWorld server over mutual TLS.
  const client2 = await pki.issue('app.example.com', { client: true });
  const tlsAddress = gw.url('web-tls').replace('http://', '');
  const secure = grpcClient(tlsAddress, { tls: { caPem: pki.caPem, certPem: client2.certPem, keyPem: client2.keyPem, serverName: 'api.example.com' } });
  t.after(() => secure.close());
  const h = await unaryCall(secure, helloMethods().SayHelloWorld, { name: 'portico' });
  assert.match((h.responses[0] as { message: string }).message, /portico/);
  assert.equal(hello.calls.length, 1);

  // SNI picks api.example.com's certificate; an unknown name gets the default one.
  const port = Number(new URL(gw.url('web-tls')).port);
  const served = (servername: string) =>
    new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername, ca: pki.caPem, cert: client2.certPem, key: client2.keyPem, rejectUnauthorized: false });
      s.once('secureConnect', () => {
        resolve(String(s.getPeerCertificate().subject.CN));
        s.destroy();
      });
      s.once('error', reject);
    });
  assert.equal(await served('api.example.com'), 'api.example.com');
  assert.equal(await served('other.example.org'), 'default.example.com');

  // clientAuth: require — no client certificate, no call.
  const anonymous = grpcClient(tlsAddress, { tls: { caPem: pki.caPem, serverName: 'api.example.com' } });
  t.after(() => anonymous.close());
  await assert.rejects(unaryCall(anonymous, helloMethods().SayHelloWorld, { name: 'x' }, { deadlineMs: 3000 }), (err: { code: number }) => err.code === 14);
  assert.equal(hello.calls.length, 1);
});
