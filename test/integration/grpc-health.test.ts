import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startGateway } from '../helpers/gateway.js';
import { startGrpcServer, startRawGrpcServer } from '../helpers/grpc.js';
import { waitFor } from '../helpers/wait.js';
import { probeGrpcHealth } from '../../src/upstream/grpc-health-probe.js';
import { createPki } from '../helpers/certs.js';

/**
 * Active gRPC health checks (`healthCheck.active.type: grpc`): the gRPC
 * Health Checking Protocol against grpc-js servers that serve
 * grpc.health.v1.Health (test/fixtures/grpc/health.proto).
 */

interface TargetStatus {
  address: string;
  healthy: boolean;
  active: string;
  failures: { active: number };
}

function targets(status: unknown, upstream: string): TargetStatus[] {
  const s = status as { upstreams: { name: string; targets: TargetStatus[] }[] };
  return s.upstreams.find((u) => u.name === upstream)!.targets;
}

function probe(options: Parameters<typeof probeGrpcHealth>[0]): Promise<{ ok: boolean; reason: string }> {
  return new Promise((resolve) => probeGrpcHealth(options, (ok, reason) => resolve({ ok, reason })));
}

describe('the gRPC health probe', () => {
  test('SERVING is healthy; NOT_SERVING, an unknown service and no health service are not', async (t) => {
    const server = await startGrpcServer({ name: 'h', health: true });
    const bare = await startGrpcServer({ name: 'bare' });
    t.after(async () => {
      await server.close();
      await bare.close();
    });
    const at = { host: '127.0.0.1', port: server.port, timeoutMs: 1000 };
    assert.deepEqual(await probe({ ...at, service: '' }), { ok: true, reason: 'SERVING' });
    server.setHealth('echo.Echo', 'NOT_SERVING');
    assert.deepEqual(await probe({ ...at, service: 'echo.Echo' }), { ok: false, reason: 'NOT_SERVING' });
    server.setHealth('echo.Echo', 'SERVING');
    assert.deepEqual(await probe({ ...at, service: 'echo.Echo' }), { ok: true, reason: 'SERVING' });
    assert.deepEqual(await probe({ ...at, service: 'no.Such' }), { ok: false, reason: 'grpc-status 5 NOT_FOUND: unknown service no.Such' });
    const r = await probe({ host: '127.0.0.1', port: bare.port, timeoutMs: 1000, service: '' });
    assert.equal(r.ok, false);
    assert.match(r.reason, /^grpc-status 12 UNIMPLEMENTED/);
  });

  test('a refused connection, a non-gRPC answer and a stream reset fail the check', async (t) => {
    const raw = await startRawGrpcServer((stream, headers) => {
      if (headers['x-mode'] === undefined && headers[':authority'] === 'http.example') {
        stream.respond({ ':status': 404, 'content-type': 'text/plain' });
        stream.end('not here');
        return;
      }
      stream.close(0x8);
    });
    t.after(() => raw.close());
    const refused = await probe({ host: '127.0.0.1', port: 1, service: '', timeoutMs: 500 });
    assert.deepEqual(refused, { ok: false, reason: 'ECONNREFUSED' });
    const http = await probe({ host: '127.0.0.1', port: raw.port, service: '', timeoutMs: 500, authority: 'http.example' });
    assert.deepEqual(http, { ok: false, reason: 'HTTP status 404 (expected 200)' });
    const reset = await probe({ host: '127.0.0.1', port: raw.port, service: '', timeoutMs: 500 });
    assert.equal(reset.ok, false);
    assert.match(reset.reason, /ERR_HTTP2_STREAM_ERROR|NGHTTP2_CANCEL|no response/);
  });

  test('over TLS (an h2 upstream): the upstream TLS client options are used', async (t) => {
    const pki = await createPki();
    const cert = await pki.issue('server.example.com');
    const server = await startGrpcServer({ name: 'tls', health: true, tls: { certPem: cert.certPem, keyPem: cert.keyPem } });
    t.after(async () => {
      await server.close();
      await pki.cleanup();
    });
    const at = { host: '127.0.0.1', port: server.port, service: '', timeoutMs: 1000 };
    assert.deepEqual(await probe({ ...at, tls: { ca: pki.caPem, servername: 'server.example.com' } }), { ok: true, reason: 'SERVING' });
    const wrongName = await probe({ ...at, tls: { ca: pki.caPem, servername: 'other.example.com' } });
    assert.equal(wrongName.ok, false);
    assert.match(wrongName.reason, /ERR_TLS_CERT_ALTNAME_INVALID/);
  });
});

describe('active gRPC health checks in the gateway', () => {
  test('a target whose health service says NOT_SERVING is marked unhealthy, then healthy again', async (t) => {
    const a = await startGrpcServer({ name: 'a', health: true });
    const b = await startGrpcServer({ name: 'b', health: true });
    const gw = await startGateway({
      log: { level: 'silent' },
      listeners: [{ name: 'grpc', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [
        {
          name: 'echo-grpc',
          protocol: 'h2c',
          targets: [{ address: a.address }, { address: b.address }],
          healthCheck: {
            active: { type: 'grpc', service: 'echo.Echo', interval: '50ms', timeout: '500ms', healthyThreshold: 2, unhealthyThreshold: 2 },
          },
        },
      ],
      routes: [{ name: 'echo', listener: 'grpc', match: { pathPrefix: '/echo.Echo/' }, upstream: 'echo-grpc' }],
    });
    t.after(async () => {
      await gw.close();
      await Promise.all([a.close(), b.close()]);
    });
    a.setHealth('echo.Echo', 'SERVING');
    b.setHealth('echo.Echo', 'SERVING');
    await waitFor(() => a.healthChecks() >= 2 && b.healthChecks() >= 2, 'the first checks');
    const check = a.calls.find((c) => c.path === '/grpc.health.v1.Health/Check')!;
    assert.equal(check.received[0]!.service, 'echo.Echo');
    assert.deepEqual(check.metadata.get('user-agent').map(String)[0]?.startsWith('portico-health-check'), true);
    assert.ok(targets(gw.gateway.status(), 'echo-grpc').every((x) => x.healthy && x.active === 'healthy'));

    a.setHealth('echo.Echo', 'NOT_SERVING');
    await waitFor(() => !targets(gw.gateway.status(), 'echo-grpc')[0]!.healthy, 'a to be marked unhealthy');
    const view = targets(gw.gateway.status(), 'echo-grpc');
    assert.equal(view[0]!.active, 'unhealthy');
    assert.equal(view[1]!.healthy, true);

    a.setHealth('echo.Echo', 'SERVING');
    await waitFor(() => targets(gw.gateway.status(), 'echo-grpc')[0]!.healthy, 'a to be healthy again');

    // A server that goes away fails its checks too.
    await b.close();
    await waitFor(() => !targets(gw.gateway.status(), 'echo-grpc')[1]!.healthy, 'b (gone) to be marked unhealthy');
  });

  test('an h2 upstream is checked over TLS with its tls: options', async (t) => {
    const pki = await createPki();
    const cert = await pki.issue('server.example.com');
    const a = await startGrpcServer({ name: 'a', health: true, tls: { certPem: cert.certPem, keyPem: cert.keyPem } });
    const b = await startGrpcServer({ name: 'b', health: true, tls: { certPem: cert.certPem, keyPem: cert.keyPem } });
    const gw = await startGateway({
      log: { level: 'silent' },
      listeners: [{ name: 'grpc', protocol: 'http', listen: '127.0.0.1:0', accessLog: false }],
      upstreams: [
        {
          name: 'secure',
          protocol: 'h2',
          tls: { ca: pki.caCert, serverName: 'server.example.com' },
          targets: [{ address: a.address }, { address: b.address }],
          healthCheck: { active: { type: 'grpc', interval: '50ms', timeout: '500ms', healthyThreshold: 1, unhealthyThreshold: 1 } },
        },
      ],
      routes: [{ name: 'r', listener: 'grpc', upstream: 'secure' }],
    });
    t.after(async () => {
      await gw.close();
      await Promise.all([a.close(), b.close()]);
      await pki.cleanup();
    });
    await waitFor(() => a.healthChecks() >= 2 && b.healthChecks() >= 2, 'checks over TLS to reach both servers');
    assert.ok(targets(gw.gateway.status(), 'secure').every((x) => x.healthy));
    b.setHealth('', 'NOT_SERVING');
    await waitFor(() => !targets(gw.gateway.status(), 'secure')[1]!.healthy, 'b to be marked unhealthy');
    assert.equal(targets(gw.gateway.status(), 'secure')[0]!.healthy, true);
  });
});
