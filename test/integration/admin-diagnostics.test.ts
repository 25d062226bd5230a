import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startUpstream } from '../helpers/upstream.js';
import { startGateway, simpleConfig } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { openFds, fdsSettle } from '../helpers/fds.js';
import { waitFor } from '../helpers/wait.js';
import { formatHostPort } from '../../src/net/address.js';
import { profileRunning } from '../../src/admin/diagnostics.js';

const TOKEN = 'diagnostics-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };

function config(upstream: string, diagnostics: boolean) {
  return { ...simpleConfig([upstream]), admin: { listen: '127.0.0.1:0', token: TOKEN, diagnostics } };
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string } }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

test('diagnostics are 404 until admin.diagnostics is on; a reload turns them on without a restart', async (t) => {
  const up = await startUpstream();
  const gw = await startGateway(config(up.address, false));
  t.after(async () => {
    await gw.close();
    await up.close();
  });
  const admin = `http://${formatHostPort(gw.gateway.adminAddress()!)}`;
  for (const path of ['/debug/profile?seconds=1', '/debug/heap']) {
    const r = await send(admin, { method: 'POST', path, headers: auth });
    assert.equal(r.status, 404, path);
    assert.equal(JSON.parse(r.body).code, 'NOT_FOUND');
  }
  const ok = await gw.reload(config(up.address, true));
  assert.equal(ok.ok, true);
  // Without the token: the same 401 as every other endpoint.
  const anonymous = await send(admin, { method: 'POST', path: '/debug/profile?seconds=1' });
  assert.equal(anonymous.status, 401);
  assert.equal(JSON.parse(anonymous.body).code, 'ADMIN_UNAUTHORIZED');
  const r = await send(admin, { method: 'POST', path: '/debug/profile?seconds=1', headers: auth });
  assert.equal(r.status, 200);
  const profile = JSON.parse(r.body) as CpuProfile;
  assert.ok(profile.samples.length > 0);
  // Unknown /debug/ paths stay 404 with diagnostics on.
  const other = await send(admin, { method: 'POST', path: '/debug/other', headers: auth });
  assert.equal(other.status, 404);
  assert.equal(JSON.parse(other.body).code, 'NOT_FOUND');
});

test('bad profile requests: 400 BAD_REQUEST for seconds out of 1..60 or not whole, 405 for other methods', async (t) => {
  const up = await startUpstream();
  const gw = await startGateway(config(up.address, true));
  t.after(async () => {
    await gw.close();
    await up.close();
  });
  const admin = `http://${formatHostPort(gw.gateway.adminAddress()!)}`;
  const bad = ['seconds=0', 'seconds=61', 'seconds=1.5', 'seconds=abc', 'seconds=-1', 'seconds=', 'seconds=1&seconds=2', 'secs=1', 'seconds=%201', 'seconds=001'];
  for (const q of bad) {
    const r = await send(admin, { method: 'POST', path: `/debug/profile?${q}`, headers: auth });
    assert.equal(r.status, 400, q);
    const body = JSON.parse(r.body) as { code: string; error: string };
    assert.equal(body.code, 'BAD_REQUEST', q);
    assert.ok(body.error.length > 0);
  }
  const heapQuery = await send(admin, { method: 'POST', path: '/debug/heap?x=1', headers: auth });
  assert.equal(heapQuery.status, 400);
  for (const path of ['/debug/profile', '/debug/heap']) {
    const r = await send(admin, { method: 'GET', path, headers: auth });
    assert.equal(r.status, 405, path);
    assert.equal(r.headers.allow, 'POST');
    assert.equal(JSON.parse(r.body).code, 'METHOD_NOT_ALLOWED');
  }
  assert.equal(profileRunning(), false);
});

test('a CPU profile under load: traffic keeps flowing, a second profile meanwhile is 409, the profile loads', async (t) => {
  const up = await startUpstream((_req, res) => res.end('ok'));
  const gw = await startGateway(config(up.address, true));
  t.after(async () => {
    await gw.close();
    await up.close();
  });
  const admin = `http://${formatHostPort(gw.gateway.adminAddress()!)}`;
  await send(gw.url(), { path: '/warm' });
  const before = openFds();

  let done = false;
  const profiling = send(admin, { method: 'POST', path: '/debug/profile?seconds=2', headers: auth }).finally(() => (done = true));
  await waitFor(() => profileRunning(), 'the profile to start', 5000);
  const second = await send(admin, { method: 'POST', path: '/debug/profile?seconds=1', headers: auth });
  assert.equal(second.status, 409);
  assert.equal(JSON.parse(second.body).code, 'PROFILE_RUNNING');
  const heap = await send(admin, { method: 'POST', path: '/debug/heap', headers: auth });
  assert.equal(heap.status, 409);

  let successes = 0;
  const failures: string[] = [];
  // Bounded: at most 20,000 requests, and only while the profile runs (2 s).
  for (let i = 0; i < 20_000 && !done; i++) {
    try {
      const r = await send(gw.url(), { path: `/load/${i}` });
      if (r.status === 200 && r.body === 'ok') successes++;
      else failures.push(`${r.status} ${r.body.slice(0, 100)}`);
    } catch (err) {
      failures.push((err as Error).message);
    }
  }
  const reply = await profiling;
  t.diagnostic(`${successes} requests through the gateway while the profile ran, ${failures.length} failed`);
  assert.ok(successes > 0, 'requests succeeded while the profile ran');
  assert.deepEqual(failures, []);

  assert.equal(reply.status, 200);
  assert.match(String(reply.headers['content-disposition']), new RegExp(`^attachment; filename="portico-${process.pid}-\\d{8}T\\d{6}Z\\.cpuprofile"$`));
  const profile = JSON.parse(reply.body) as CpuProfile;
  assert.ok(profile.nodes.length > 0);
  assert.ok(profile.samples.length > 0);
  assert.equal(profile.timeDeltas.length, profile.samples.length);
  assert.ok(profile.endTime > profile.startTime);
  const ids = new Set(profile.nodes.map((n) => n.id));
  assert.ok(profile.samples.every((s) => ids.has(s)), 'every sample names a node');
  assert.equal(profileRunning(), false);
  await fdsSettle(before);
});

test('a client that goes away mid-profile stops it: the next profile starts at once', async (t) => {
  const up = await startUpstream();
  const gw = await startGateway(config(up.address, true));
  t.after(async () => {
    await gw.close();
    await up.close();
  });
  const address = gw.gateway.adminAddress()!;
  const admin = `http://${formatHostPort(address)}`;
  const before = openFds();
  const socket = net.connect({ host: address.host, port: address.port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.write(`POST /debug/profile?seconds=60 HTTP/1.1\r\nhost: admin\r\nauthorization: Bearer ${TOKEN}\r\ncontent-length: 0\r\n\r\n`);
  await waitFor(() => profileRunning(), 'the 60 s profile to start', 5000);
  socket.destroy();
  await waitFor(() => !profileRunning(), 'the abandoned profile to stop', 5000);
  const r = await send(admin, { method: 'POST', path: '/debug/profile?seconds=1', headers: auth });
  assert.equal(r.status, 200);
  assert.ok((JSON.parse(r.body) as CpuProfile).samples.length > 0);
  await fdsSettle(before);
});

test('a heap snapshot streams as a .heapsnapshot attachment', async (t) => {
  const up = await startUpstream();
  const gw = await startGateway(config(up.address, true));
  t.after(async () => {
    await gw.close();
    await up.close();
  });
  const admin = `http://${formatHostPort(gw.gateway.adminAddress()!)}`;
  const before = openFds();
  const r = await send(admin, { method: 'POST', path: '/debug/heap', headers: auth });
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-disposition']), new RegExp(`^attachment; filename="portico-${process.pid}-\\d{8}T\\d{6}Z\\.heapsnapshot"$`));
  // Written chunk by chunk as V8 hands them over, not as one buffered body.
  assert.equal(r.headers['transfer-encoding'], 'chunked');
  assert.equal(r.headers['content-length'], undefined);
  const snapshot = JSON.parse(r.body) as { snapshot: { meta: { node_fields: string[] }; node_count: number }; nodes: number[]; strings: string[] };
  assert.ok(snapshot.snapshot.meta.node_fields.includes('name'));
  assert.ok(snapshot.snapshot.node_count > 0);
  assert.equal(snapshot.nodes.length, snapshot.snapshot.node_count * snapshot.snapshot.meta.node_fields.length);
  assert.equal(profileRunning(), false);
  await fdsSettle(before);
});
