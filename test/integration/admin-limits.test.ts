import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { formatHostPort } from '../../src/net/address.js';
import { authorized } from '../../src/admin/server.js';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { fdsSettle, openFds } from '../helpers/fds.js';
import { closedWithin, connect } from '../helpers/tcp.js';

const KEY = 'admin-key-0123456789abcdef';

/** GET `path` on the admin API with an Authorization header (or none); resolves with the status. */
function adminGet(address: string, path: string, authorization?: string): Promise<number> {
  return fetch(`http://${address}${path}`, { headers: authorization === undefined ? {} : { authorization } }).then(async (r) => {
    await r.arrayBuffer();
    return r.status;
  });
}

describe('the admin listener', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  let admin: string;
  let port: number;
  before(async () => {
    up = await startUpstream();
    gw = await startGateway({
      admin: { listen: '127.0.0.1:0', apiKey: KEY },
      listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [{ name: 'up', targets: [{ address: up.address }] }],
      routes: [{ name: 'r', listener: 'web', upstream: 'up' }],
    });
    admin = formatHostPort(gw.gateway.adminAddress()!);
    port = gw.gateway.adminAddress()!.port;
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('a slowloris client (a head dripped byte by byte) and a silent one are answered 408 and closed', async () => {
    const fds = openFds();
    // The silent client sends nothing at all.
    const silent = await connect(port);
    const silentClosed = closedWithin(silent, 20_000);
    // The slow one sends one header byte every 250 ms: 60 bytes would take 15 s.
    const slow = await connect(port);
    let reply = '';
    slow.on('data', (d: Buffer) => (reply += d.toString('latin1')));
    const slowClosed = new Promise<void>((resolve) => slow.once('close', () => resolve()));
    slow.on('error', () => undefined);
    slow.write('GET /status HTTP/1.1\r\nHost: admin\r\n');
    const drip = 'X-Slow: ' + 'a'.repeat(52);
    let written = 0;
    const timer = setInterval(() => {
      if (slow.destroyed || slow.writableEnded || written === drip.length) return clearInterval(timer);
      slow.write(drip[written++]!);
    }, 250);
    await slowClosed;
    clearInterval(timer);
    assert.match(reply, /^HTTP\/1\.1 408 /);
    assert.ok(written < drip.length, `closed while the client was still sending (${written} of ${drip.length} bytes)`);
    assert.equal(await silentClosed, true, 'the silent connection was closed');
    await fdsSettle(fds);
  });

  test('the Bearer scheme is case-insensitive (RFC 9110 §11.1); the token is not', async () => {
    for (const h of [`Bearer ${KEY}`, `bearer ${KEY}`, `BEARER ${KEY}`, `bEaReR ${KEY}`, `Bearer   ${KEY}`]) {
      assert.equal(await adminGet(admin, '/status', h), 200, h);
    }
    for (const h of [undefined, `Bearer ${KEY.toUpperCase()}`, `Bearer ${KEY}x`, `Bearer${KEY}`, `Basic ${KEY}`, `Bearerx ${KEY}`, 'Bearer ', 'bearer']) {
      assert.equal(await adminGet(admin, '/status', h), 401, String(h));
    }
  });

  test('authorized() parses the credentials exactly', () => {
    assert.equal(authorized(`bearer ${KEY}`, KEY), true);
    assert.equal(authorized(`Bearer\t${KEY}`, KEY), false, 'the separator is SP (RFC 9110 §11.4)');
    assert.equal(authorized(`Bearer ${KEY} `, KEY), false);
    assert.equal(authorized('', KEY), false);
    assert.equal(authorized(undefined, KEY), false);
  });
});
