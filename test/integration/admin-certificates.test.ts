// Certificates as an admin API resource: uploaded as PEM, served by an
// https listener that names them, renewed in place, protected from delete
// while used; a key never appears in an error message.
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startFromFile, type FileGateway } from '../helpers/admin.js';
import { createPki, type Pki } from '../helpers/certs.js';
import { fdsSettle, openFds } from '../helpers/fds.js';

const FILE = `admin: { listen: 127.0.0.1:0 }
listeners:
  - { name: web, protocol: http, listen: 127.0.0.1:0, accessLog: false }
routes:
  - { name: ping, listener: web, match: { path: /ping }, respond: { body: pong } }
`;

/** The serial number of the certificate the listener serves for `servername`. */
function servedSerial(port: number, ca: string, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, ca, ALPNProtocols: ['http/1.1'] }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      s.end();
      resolve(serial);
    });
    s.on('error', reject);
    s.setTimeout(5000, () => s.destroy(new Error('tls timeout')));
  });
}

describe('admin API: certificates', () => {
  let g: FileGateway;
  let pki: Pki;
  let fds: number;

  before(async () => {
    fds = openFds();
    pki = await createPki();
    g = await startFromFile(FILE);
  });
  after(async () => {
    await g.close();
    await pki.cleanup();
    await fdsSettle(fds);
  });

  it('an uploaded PEM certificate serves on a new https listener, is renewed by PUT, and cannot be deleted while used', async () => {
    const first = await pki.issue('api.test');
    const c = await g.api('POST', '/certificates', { name: 'api', cert: first.certPem, key: first.keyPem });
    assert.equal(c.status, 201, c.body);
    const l = await g.api('POST', '/listeners', { name: 'secure', protocol: 'https', listen: '127.0.0.1:0', tls: { certificates: [{ certificate: 'api' }] } });
    assert.equal(l.status, 201, l.body);
    const port = g.gateway.listenerAddress('secure')!.port;
    const x1 = await servedSerial(port, pki.caPem, 'api.test');

    const renewed = await pki.issue('api.test');
    const put = await g.api('PUT', '/certificates/api', { cert: renewed.certPem, key: renewed.keyPem });
    assert.equal(put.status, 200, put.body);
    const x2 = await servedSerial(port, pki.caPem, 'api.test');
    assert.notEqual(x2, x1, 'the renewed certificate serves on the same listener');
    assert.equal(g.gateway.listenerAddress('secure')!.port, port);

    const del = await g.api('DELETE', '/certificates/api');
    assert.equal(del.status, 409);
    assert.equal(del.json.code, 'IN_USE');
    assert.deepEqual(del.json.referencedBy, [{ kind: 'listeners', name: 'secure', path: 'listeners[1].tls.certificates[0].certificate' }]);
    assert.equal((await g.api('DELETE', '/listeners/secure')).status, 200);
    assert.equal((await g.api('DELETE', '/certificates/api')).status, 200);
  });

  it('a key that does not match, or a listener naming a missing certificate, is refused without the PEM in the message', async () => {
    const a = await pki.issue('a.test');
    const b = await pki.issue('b.test');
    const bad = await g.api('POST', '/certificates', { name: 'mixed', cert: a.certPem, key: b.keyPem });
    assert.equal(bad.status, 400, bad.body);
    assert.equal(bad.json.code, 'INVALID_CONFIG');
    assert.deepEqual(bad.json.errors, [{ path: 'certificates[0].key', message: 'the inline PEM does not match the certificate in the inline PEM' }]);
    assert.doesNotMatch(bad.body, /BEGIN|PRIVATE/);
    const dangling = await g.api('POST', '/listeners', { name: 's2', protocol: 'https', listen: '127.0.0.1:0', tls: { certificates: [{ certificate: 'nope' }] } });
    assert.equal(dangling.status, 409, dangling.body);
    assert.equal(dangling.json.code, 'DANGLING_REFERENCE');
    assert.equal(g.gateway.listenerAddress('s2'), undefined);
  });
});
