import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DiscoveryBackend, DiscoveryUpdate } from '../../src/discovery/backend.js';
import { DiscoveredTargets } from '../../src/discovery/discovered-targets.js';
import { createLogger } from '../../src/observability/logger.js';

/** A backend the test answers for (the guards are DiscoveredTargets' own; real backends are tested against real servers). */
class Answering implements DiscoveryBackend {
  readonly type = 'test';
  readonly origin = 'test://';
  push: ((u: DiscoveryUpdate) => void) | undefined;
  closed = false;
  start(onUpdate: (u: DiscoveryUpdate) => void): void {
    this.push = onUpdate;
  }
  close(): void {
    this.closed = true;
  }
}

const logger = createLogger('silent');
const set = (...addresses: string[]): DiscoveryUpdate => ({ ok: true, targets: addresses.map((address) => ({ address, weight: 1 })), skipped: [] });

describe('DiscoveredTargets: the guards every discovery gets', () => {
  it('keeps the last targets while the backend fails, and shows it', () => {
    const b = new Answering();
    const d = new DiscoveredTargets('u', b, 0, logger);
    const seen: string[][] = [];
    d.subscribe((t) => seen.push(t.map((x) => x.address)));
    d.start();
    assert.equal(d.health().state, 'starting');
    b.push!(set('10.0.0.2:80', '10.0.0.1:80'));
    assert.deepEqual(d.current().map((t) => t.address), ['10.0.0.1:80', '10.0.0.2:80'], 'sorted, so order changes are no change');
    b.push!({ ok: false, error: 'store down' });
    assert.equal(d.current().length, 2);
    assert.equal(d.health().state, 'error');
    assert.equal(d.health().error, 'store down');
    assert.equal(d.health().failures, 1);
    b.push!(set('10.0.0.1:80', '10.0.0.2:80'));
    assert.equal(d.health().state, 'ok');
    assert.equal(seen.length, 1, 'the same set again is no change');
    d.close();
    assert.ok(b.closed);
  });

  it('holds an empty answer for emptyGrace, then applies it; a non-empty answer in between cancels it', async () => {
    const b = new Answering();
    const d = new DiscoveredTargets('u', b, 150, logger);
    d.start();
    b.push!(set('10.0.0.1:80'));
    b.push!(set());
    assert.equal(d.health().state, 'holding-empty');
    assert.equal(d.current().length, 1);
    b.push!(set('10.0.0.3:80'));
    assert.equal(d.health().state, 'ok');
    await new Promise((r) => setTimeout(r, 250));
    assert.deepEqual(d.current().map((t) => t.address), ['10.0.0.3:80'], 'the cancelled hold applied nothing');
    b.push!(set());
    await new Promise((r) => setTimeout(r, 250));
    assert.deepEqual(d.current(), []);
    assert.equal(d.health().state, 'ok');
    d.close();
  });

  it('applies an empty answer at once with emptyGrace 0, and reports skipped entries', () => {
    const b = new Answering();
    const d = new DiscoveredTargets('u', b, 0, logger);
    d.start();
    b.push!(set('10.0.0.1:80'));
    b.push!({ ok: true, targets: [], skipped: [{ entry: '/real_server/bad', reason: 'its name "bad" is not host:port' }] });
    assert.deepEqual(d.current(), []);
    assert.equal(d.health().skipped[0]!.entry, '/real_server/bad');
    d.close();
    b.push!(set('10.0.0.9:80'));
    assert.deepEqual(d.current(), [], 'nothing is taken after close()');
  });
});
