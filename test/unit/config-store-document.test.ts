import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkStoredShape, mergeDocuments, SHARED_SECTIONS, storedPart } from '../../src/sources/shared-sections.js';
import { parseStoreUrl } from '../../src/stores/store-url.js';
import { fuzzRuns, STANDARD_RUNS } from '../helpers/fuzz.js';

describe('the shared sections of a config kept in a store', () => {
  const local = { listeners: [{ name: 'web' }], admin: { listen: '127.0.0.1:0' }, routes: [{ name: 'from-file' }] };

  it('merges: each section the store has replaces the file\'s; the others come from the file', () => {
    assert.deepEqual(mergeDocuments(local, undefined), local);
    assert.deepEqual(mergeDocuments(local, { upstreams: [{ name: 'u' }] }), { ...local, upstreams: [{ name: 'u' }] });
    assert.deepEqual(mergeDocuments(local, { routes: [] }), { ...local, routes: [] });
  });

  it('refuses a stored document that holds a local section or is not a mapping, naming each', () => {
    assert.deepEqual(checkStoredShape({ routes: [], upstreams: [] }), []);
    assert.deepEqual(
      checkStoredShape({ routes: [], listeners: [], admin: {} }).map((e) => e.path),
      ['listeners', 'admin'],
    );
    for (const v of [null, [], 'text', 3]) assert.equal(checkStoredShape(v)[0]!.path, '(root)');
  });

  it('splits a write: shared sections go to the store (a dropped one stored empty), a changed local section is refused', () => {
    assert.deepEqual(storedPart({ ...local, routes: [{ name: 'r2' }] }, local), { ok: true, stored: { routes: [{ name: 'r2' }] } });
    assert.deepEqual(storedPart({ listeners: local.listeners, admin: local.admin }, local), { ok: true, stored: { routes: [] } });
    assert.deepEqual(storedPart({ ...local, listeners: [] }, local), { ok: false, sections: ['listeners'] });
    assert.deepEqual(storedPart({ ...local, log: { level: 'debug' } }, local), { ok: false, sections: ['log'] });
  });

  it('merge then split gives back the stored part, for any documents', () => {
    const section = fc.array(fc.record({ name: fc.string({ maxLength: 5 }) }), { maxLength: 3 });
    const sharedDoc = fc.record(Object.fromEntries(SHARED_SECTIONS.map((k) => [k, section])), { requiredKeys: [] });
    const localDoc = fc.record({ listeners: section, routes: section, log: fc.record({ level: fc.constantFrom('info', 'debug') }) }, { requiredKeys: ['listeners'] });
    fc.assert(
      fc.property(localDoc, sharedDoc, (l, st) => {
        const merged = mergeDocuments(l, st);
        const split = storedPart(merged, l);
        assert.ok(split.ok);
        // What the store gets makes the same merged document again.
        assert.deepEqual(mergeDocuments(l, split.stored), merged);
      }),
      fuzzRuns(STANDARD_RUNS / 4),
    );
  });
});

describe('store URLs (portico config push --to, pull --from)', () => {
  it('reads etcd and ZooKeeper URLs with their prefix or path', () => {
    assert.deepEqual(parseStoreUrl('etcd://127.0.0.1:2379/portico'), { type: 'etcd', endpoints: ['http://127.0.0.1:2379'], prefix: '/portico' });
    assert.deepEqual(parseStoreUrl('etcd://a:1,b:2'), { type: 'etcd', endpoints: ['http://a:1', 'http://b:2'], prefix: '/portico' });
    assert.deepEqual(parseStoreUrl('zookeeper://127.0.0.1:2181/x/y'), { type: 'zookeeper', servers: ['127.0.0.1:2181'], path: '/x/y' });
    assert.deepEqual(parseStoreUrl('zk://[::1]:2181/'), { type: 'zookeeper', servers: ['[::1]:2181'], path: '/portico' });
  });

  it('says why other text is not one, as a class', () => {
    for (const bad of ['', 'etcd:/x', 'http://127.0.0.1:2379', 'etcd://127.0.0.1/p', 'etcd://127.0.0.1:0/p', 'etcd://h:1/p/', 'etcd://h:1//p', 'zookeeper://h:1,/p', 'consul://h:8500']) {
      const r = parseStoreUrl(bad);
      assert.ok('error' in r, bad);
    }
  });

  it('never throws, and what it accepts has host:port endpoints and an absolute path', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.constantFrom('etcd://', 'zookeeper://', 'zk://').chain((s) => fc.string().map((t) => s + t))), (text) => {
        const r = parseStoreUrl(text);
        if ('error' in r) return;
        const path = r.type === 'etcd' ? r.prefix : r.path;
        assert.match(path, /^(\/[^/\s]+)+$/);
      }),
      fuzzRuns(STANDARD_RUNS),
    );
  });
});
