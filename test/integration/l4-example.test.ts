import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { dirname, join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { loadConfigFile } from '../../src/sources/file.js';
import type { Config } from '../../src/config/schema.js';
import { Gateway } from '../../src/gateway.js';
import { sealV1 } from '../../src/l4/sealed/codec.js';
import { connectSealed } from '../../src/l4/sealed/client.js';
import { createLogger } from '../../src/observability/logger.js';
import { createPki, type Pki } from '../helpers/certs.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { connect, echo, readAll, startTcpServer, type TcpServer } from '../helpers/tcp.js';

const EXAMPLE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'examples', 'l4.yaml');
const SECRET = 'the-sealed-secret';

/**
 * Issue 5's document (examples/l4.yaml) as written, served with real peers:
 * only the listen ports (to 0) and the target addresses (to the test's
 * servers) are changed after validation.
 */
describe('the L4 example document, as written, with real peers', () => {
  let redis: TestRedis;
  let pki: Pki;
  let db: tls.Server;
  let dns: dgram.Socket;
  let backend: TcpServer;
  let gateway: Gateway;
  let config: Config;

  const addr = (name: string) => gateway.listenerAddress(name)!;

  before(async () => {
    const loaded = loadConfigFile(EXAMPLE, { SEALED_SECRET: SECRET });
    assert.ok(loaded.ok, loaded.ok ? '' : JSON.stringify(loaded.errors));
    config = loaded.config;

    redis = await startRedis();
    pki = await createPki();
    const dbCert = await pki.issue('db.example.com');
    db = tls.createServer({ cert: dbCert.certPem, key: dbCert.keyPem }, (s) => s.end('db says hi'));
    await new Promise<void>((r) => db.listen(0, '127.0.0.1', r));
    dns = dgram.createSocket('udp4');
    dns.on('message', (m, rinfo) => dns.send(Buffer.concat([Buffer.from('answer:'), m]), rinfo.port, rinfo.address));
    await new Promise<void>((r) => dns.bind(0, '127.0.0.1', r));
    backend = await startTcpServer(echo);

    const targets: Record<string, string> = {
      'redis-pool': `127.0.0.1:${redis.port}`,
      db: `127.0.0.1:${(db.address() as { port: number }).port}`,
      dns: `127.0.0.1:${dns.address().port}`,
    };
    const served: Config = {
      ...config,
      listeners: config.listeners.map((l) => ({ ...l, listen: { ...l.listen, port: 0 }, accessLog: false })) as Config['listeners'],
      upstreams: config.upstreams.map((u) => ({ ...u, targets: [{ address: targets[u.name]!, weight: 1 }] })),
    };
    gateway = new Gateway(createLogger('silent'));
    const r = await gateway.apply(served);
    assert.ok(r.ok, JSON.stringify(r));
  });

  after(async () => {
    await gateway?.stop(500);
    await redis?.stop();
    db?.close();
    dns?.close();
    await backend?.close();
    await pki?.cleanup();
  });

  it('validates with the documented defaults', () => {
    const byName = new Map(config.listeners.map((l) => [l.name, l]));
    assert.deepEqual([...byName.keys()], ['redis', 'sni', 'dns', 'sealed', 'outbound']);
    const sealed = byName.get('sealed')!;
    assert.equal(sealed.protocol, 'sealed');
    if (sealed.protocol === 'sealed') {
      assert.equal(sealed.secret, SECRET);
      assert.equal(sealed.timeout, 3000);
      assert.equal(sealed.timeouts.handshake, 5000);
    }
    assert.equal(config.upstreams[0]!.balancer, 'consistent-hash');
  });

  it('redis: a real redis-server answers PING through the tcp listener', async () => {
    const c = await connect(addr('redis').port);
    const got = readAll(c);
    c.end('PING\r\n');
    assert.equal((await got).toString(), '+PONG\r\n');
  });

  it('sni: a TLS client asking for db.example.com reaches db, end to end, through passthrough', async () => {
    const text = await new Promise<string>((resolve, reject) => {
      const c = tls.connect({ host: '127.0.0.1', port: addr('sni').port, servername: 'db.example.com', ca: pki.caPem }, () => undefined);
      let out = '';
      c.on('data', (d: Buffer) => (out += d.toString()));
      c.on('end', () => resolve(out));
      c.on('error', reject);
    });
    assert.equal(text, 'db says hi');
  });

  it('dns: a datagram gets its answer through the udp listener', async () => {
    const client = dgram.createSocket('udp4');
    try {
      const answer = new Promise<string>((resolve) => client.once('message', (m) => resolve(m.toString())));
      client.send('query-1', addr('dns').port, '127.0.0.1');
      assert.equal(await answer, 'answer:query-1');
    } finally {
      client.close();
    }
  });

  it('sealed: a line sealed with the secret reaches an allowed backend; the client library reads 200 and relays', async () => {
    const line = sealV1(backend.address, { secret: SECRET, kdf: 'md5' });
    const socket = await connectSealed(addr('sealed'), line);
    const got = readAll(socket);
    socket.end('through the sealed gateway');
    assert.equal((await got).toString(), 'through the sealed gateway');
  });

  it('outbound: the forward proxy allows only *.example.com on 80/443, so a loopback destination is refused with 403', async () => {
    const c = await connect(addr('outbound').port);
    const got = readAll(c);
    c.write(`GET http://127.0.0.1:${backend.port}/ HTTP/1.1\r\nHost: 127.0.0.1:${backend.port}\r\nConnection: close\r\n\r\n`);
    assert.match((await got).toString(), /^HTTP\/1\.1 403 /);
  });
});
