import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { Carried, ConnectionRegistry, entryOf, formatPeer, listSocket, unlistSocket, type ConnectionKind } from '../../src/runtime/connection-registry.js';

/** An entry that counts its closes. */
class Probe extends Carried {
  readonly kind: ConnectionKind;
  closes = 0;
  constructor(kind: ConnectionKind = 'tcp', owner = { name: 'l' }) {
    super(owner);
    this.kind = kind;
  }
  peer(): string {
    return '127.0.0.1:1';
  }
  bytesIn(): number {
    return 1;
  }
  bytesOut(): null {
    return null;
  }
  protected shutdown(): void {
    this.closes++;
  }
}

test('ids are unique, stable while listed, never reused, and prefixed with the worker slot', () => {
  const r = new ConnectionRegistry(3);
  const ids = new Set<string>();
  const entries: Probe[] = [];
  for (let i = 0; i < 1000; i++) {
    const p = new Probe();
    r.add(p);
    entries.push(p);
    ids.add(r.idOf(p));
    if (i % 3 === 0) r.remove(entries[i >> 1]!);
  }
  assert.equal(ids.size, 1000);
  for (const id of ids) assert.match(id, /^3-[0-9a-z]+$/);
  const p = entries[999]!;
  const id = r.idOf(p);
  r.add(p);
  assert.equal(r.idOf(p), id, 'adding a listed entry again keeps its id');
  assert.equal(r.get(id), p);
  assert.equal(r.get(id.replace(/^3-/, '0-')), undefined, "another worker's id");
  for (const bad of ['', '3-', '3-!', '3-zzzzzzzzzzzz', '-1', '3-1-1', '3-' + 'a'.repeat(100)]) assert.equal(r.get(bad), undefined, bad);
});

test('remove happens once: the second remove is a no-op and the count stays right', () => {
  const r = new ConnectionRegistry();
  const a = new Probe();
  const b = new Probe();
  r.add(a);
  r.add(b);
  const id = r.idOf(a);
  assert.equal(r.remove(a), true);
  assert.equal(r.remove(a), false);
  a.unregister();
  assert.equal(r.size, 1);
  assert.equal(r.get(id), undefined);
  assert.equal(r.close(id), 'unknown');
  assert.equal(r.remove(new Probe()), false, 'never listed');
});

test('close runs the kind’s shutdown once, however often it is asked for', () => {
  const r = new ConnectionRegistry();
  const p = new Probe();
  r.add(p);
  const id = r.idOf(p);
  assert.equal(r.close(id), 'closing');
  assert.equal(r.close(id), 'already-closing');
  assert.equal(p.close(), false);
  assert.equal(p.closes, 1);
  assert.equal(r.size, 1, 'listed until the frontend removes it');
});

test('list filters by kind and listener and reads the listener name at list time', () => {
  const r = new ConnectionRegistry();
  const owner = { name: 'before' };
  r.add(new Probe('tcp', owner));
  r.add(new Probe('udp', owner));
  r.add(new Probe('tcp', { name: 'other' }));
  owner.name = 'after';
  assert.equal(r.list({ kind: 'tcp' }).length, 2);
  assert.equal(r.list({ listener: 'after' }).length, 2);
  assert.equal(r.list({ listener: 'before' }).length, 0);
  const [one] = r.list({ kind: 'udp', listener: 'after' }, Date.now() + 5);
  assert.equal(one!.peer, '127.0.0.1:1');
  assert.equal(one!.bytesIn, 1);
  assert.equal(one!.bytesOut, null);
  assert.ok(one!.ageMs >= 5);
  assert.equal('route' in one!, false);
});

test('listSocket unlists on the first close, unlistSocket earlier, and both only once', () => {
  const r = new ConnectionRegistry();
  const socket = new EventEmitter();
  const p = new Probe();
  listSocket(r, socket, p);
  assert.equal(entryOf(socket), p);
  socket.emit('close');
  socket.emit('close');
  assert.equal(r.size, 0);
  assert.equal(entryOf(socket), undefined);
  const other = new EventEmitter();
  const q = new Probe();
  listSocket(r, other, q);
  unlistSocket(other);
  other.emit('close');
  assert.equal(r.size, 0);
});

test('peers: IPv4, IPv4-mapped IPv6 unmapped, IPv6 bracketed, unknown', () => {
  assert.equal(formatPeer('10.0.0.1', 80), '10.0.0.1:80');
  assert.equal(formatPeer('::ffff:10.0.0.1', 80), '10.0.0.1:80');
  assert.equal(formatPeer('::1', 443), '[::1]:443');
  assert.equal(formatPeer(undefined, undefined), 'unknown');
});
