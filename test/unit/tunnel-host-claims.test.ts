// The claimed-hosts table (tunnel/host-claims.ts): one code per host, shared
// by every registration of that code, released with its last claimant;
// configured routes are the HTTP listener's business (see the integration
// test). Checked on examples and as a property against a naive model over
// random claim/release sequences. No sockets: registrations are made
// directly in a real TunnelHub, and the implicit upstreams in a real
// TargetRegistry.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { createLogger } from '../../src/observability/logger.js';
import { TargetRegistry } from '../../src/runtime/target-registry.js';
import { HostClaims } from '../../src/tunnel/host-claims.js';
import { Registration, TunnelHub, type StreamOpener } from '../../src/tunnel/hub.js';
import type { ServiceAnnouncement } from '../../src/tunnel/protocol.js';
import { fuzzRuns } from '../helpers/fuzz.js';

const logger = createLogger('silent');

/** An agent connection that never opens a stream (nothing here dials). */
function opener(agentId: string): StreamOpener {
  return {
    agentId,
    listener: 'tunnel',
    open: () => {
      throw new Error('no stream in this test');
    },
  };
}

function setup() {
  const hub = new TunnelHub();
  const targets = new TargetRegistry();
  targets.tunnelSource = (code) => hub.source(code);
  const claims = new HostClaims(targets, logger);
  let seq = 0;
  const registration = (code: string, type: ServiceAnnouncement['type'], hosts: string[]) => {
    const r = new Registration(code, opener(`agent-${++seq}`), seq, { code, type, hosts, up: true });
    hub.register(r);
    return r;
  };
  return { hub, targets, claims, registration };
}

describe('HostClaims', () => {
  test('a claimed host routes to tunnel:<code> over every registration of the code, h2c for grpc', () => {
    const { claims, registration } = setup();
    const a = registration('crm', 'http', ['crm.example.com', 'www.crm.example.com']);
    assert.equal(claims.claim('web', a), null);
    const route = claims.forListener('web').match('crm.example.com')!;
    assert.equal(route.name, 'tunnel:crm');
    assert.equal(route.upstream!.name, 'tunnel:crm');
    assert.equal(route.upstream!.config.protocol, 'http1');
    assert.equal(route.preserveHost, true);
    assert.deepEqual(route.upstream!.targets.map((t) => t.address), [a.identity]);
    assert.equal(claims.forListener('web').match('www.crm.example.com'), route);
    assert.equal(claims.forListener('other').match('crm.example.com'), undefined, 'claims are per listener');
    // A second registration of the code (another agent) joins the same upstream.
    const b = registration('crm', 'http', ['crm.example.com']);
    assert.equal(claims.claim('web', b), null);
    assert.deepEqual(route.upstream!.targets.map((t) => t.address), [a.identity, b.identity]);

    const g = registration('device-1', 'grpc', ['device-1.example.com']);
    assert.equal(claims.claim('web', g), null);
    assert.equal(claims.forListener('web').match('device-1.example.com')!.upstream!.config.protocol, 'h2c');
  });

  test('refusals: a host of another code, a type the code is not served as, hosts on a tcp or udp service', () => {
    const { claims, registration } = setup();
    assert.equal(claims.claim('web', registration('crm', 'http', ['crm.example.com'])), null);
    assert.equal(claims.claim('web', registration('other', 'http', ['free.example.com', 'crm.example.com'])), 'host "crm.example.com" taken by code crm');
    assert.equal(claims.forListener('web').match('free.example.com'), undefined, 'a refused claim holds none of its hosts');
    assert.equal(claims.claim('web', registration('crm', 'grpc', ['crm.example.com'])), 'code crm is served as http on this gateway\'s hosts, not grpc');
    assert.equal(claims.claim('web', registration('ssh', 'tcp', ['ssh.example.com'])), 'hosts need a service of type http or grpc, not tcp');
    assert.equal(claims.claim('web', registration('dns', 'udp', ['dns.example.com'])), 'hosts need a service of type http or grpc, not udp');
  });

  test('the implicit upstream survives a reload (retain) and goes with the last claimant', () => {
    const { claims, targets, registration } = setup();
    const a = registration('crm', 'http', ['crm.example.com']);
    claims.claim('web', a);
    const upstream = claims.forListener('web').match('crm.example.com')!.upstream!;
    targets.retain(new Set(['configured'])); // what every apply does with the config's upstream names
    assert.equal(targets.upstream('tunnel:crm'), upstream.state, 'kept: no config names it, it is pinned');
    claims.release(a);
    assert.equal(claims.forListener('web').match('crm.example.com'), undefined);
    assert.notEqual(targets.upstream('tunnel:crm'), upstream.state, 'released: a later claim makes a new one');
    claims.release(a); // twice is a no-op
  });

  test('property: matches a naive model over random claim and release sequences', () => {
    const code = fc.constantFrom('a', 'b', 'c');
    const type = fc.constantFrom<'http' | 'grpc'>('http', 'grpc');
    const hosts = fc.uniqueArray(fc.constantFrom('h1', 'h2', 'h3', 'h4'), { minLength: 1, maxLength: 3 });
    const op = fc.oneof(fc.record({ kind: fc.constant('claim' as const), code, type, hosts }), fc.record({ kind: fc.constant('release' as const), index: fc.nat(20) }));
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const { claims, registration } = setup();
        const live: { r: Registration; code: string; type: string; hosts: string[] }[] = [];
        for (const o of ops) {
          if (o.kind === 'release') {
            if (live.length === 0) continue;
            const [gone] = live.splice(o.index % live.length, 1);
            claims.release(gone!.r);
          } else {
            const r = registration(o.code, o.type, o.hosts);
            const conflict = o.hosts.some((h) => live.some((l) => l.code !== o.code && l.hosts.includes(h)));
            const mismatch = live.some((l) => l.code === o.code && l.type !== o.type);
            const why = claims.claim('web', r);
            assert.equal(why === null, !conflict && !mismatch, `claim ${o.code}/${o.type} ${o.hosts.join()}: ${why}`);
            if (why === null) live.push({ r, code: o.code, type: o.type, hosts: o.hosts });
          }
          for (const h of ['h1', 'h2', 'h3', 'h4']) {
            const owner = live.find((l) => l.hosts.includes(h));
            assert.equal(claims.forListener('web').match(h)?.name, owner === undefined ? undefined : `tunnel:${owner.code}`, h);
          }
        }
        for (const l of live) claims.release(l.r);
        assert.deepEqual(claims.list(), {});
      }),
      fuzzRuns(300),
    );
  });
});
