import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BALANCERS } from '../../src/config/schemas/upstream-policy.js';
import { createPicker, hash32 } from '../../src/upstream/balancers/index.js';
import { Target } from '../../src/upstream/target.js';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function targets(...weights: number[]): Target[] {
  return weights.map((w, i) => new Target(`10.0.0.${i + 1}:80`, w));
}

function names(list: readonly Target[], picks: (Target | undefined)[]): string[] {
  return picks.map((t) => {
    assert.ok(t);
    return String.fromCharCode(65 + list.indexOf(t));
  });
}

function pickN(pick: () => Target | undefined, n: number): (Target | undefined)[] {
  const out: (Target | undefined)[] = [];
  for (let i = 0; i < n; i++) out.push(pick());
  return out;
}

describe('every balancer', () => {
  for (const name of BALANCERS) {
    it(`${name}: empty list gives undefined, one target gives that target`, () => {
      assert.equal(createPicker(name, [], mulberry32(1))('k'), undefined);
      assert.equal(createPicker(name, [], mulberry32(1))(), undefined);
      const only = new Target('only:1', 3);
      const pick = createPicker(name, [only], mulberry32(1));
      for (let i = 0; i < 5; i++) {
        assert.equal(pick(), only);
        assert.equal(pick(`key-${i}`), only);
      }
    });
  }
});

describe('weighted-round-robin', () => {
  it('weights 4/3/2 follow nginx smooth WRR: A B C A B A C B A', () => {
    const list = targets(4, 3, 2);
    const pick = createPicker('weighted-round-robin', list);
    assert.deepEqual(names(list, pickN(pick, 9)), ['A', 'B', 'C', 'A', 'B', 'A', 'C', 'B', 'A']);
    assert.deepEqual(names(list, pickN(pick, 9)), ['A', 'B', 'C', 'A', 'B', 'A', 'C', 'B', 'A']);
  });

  it('over 9000 picks counts are exactly 4000/3000/2000, and every window of 9 is exact', () => {
    const list = targets(4, 3, 2);
    const pick = createPicker('weighted-round-robin', list);
    const counts = new Map<Target, number>();
    const seq = pickN(pick, 9000);
    for (const t of seq) counts.set(t!, (counts.get(t!) ?? 0) + 1);
    assert.deepEqual(list.map((t) => counts.get(t)), [4000, 3000, 2000]);
    for (let start = 0; start + 9 <= seq.length; start += 9) {
      const window = seq.slice(start, start + 9);
      assert.deepEqual(list.map((t) => window.filter((x) => x === t).length), [4, 3, 2]);
    }
  });

  it('equal weights rotate in config order', () => {
    const list = targets(1, 1, 1);
    const pick = createPicker('weighted-round-robin', list);
    assert.deepEqual(names(list, pickN(pick, 7)), ['A', 'B', 'C', 'A', 'B', 'C', 'A']);
  });

  it('pickers do not share state', () => {
    const list = targets(4, 3, 2);
    const p1 = createPicker('weighted-round-robin', list);
    p1();
    p1();
    const p2 = createPicker('weighted-round-robin', list);
    assert.deepEqual(names(list, pickN(p2, 4)), ['A', 'B', 'C', 'A']);
  });
});

describe('random', () => {
  it('weights 1/2/7 give shares within 1 point of 10%/20%/70% over 100k picks', () => {
    const list = targets(1, 2, 7);
    const pick = createPicker('random', list, mulberry32(42));
    const counts = [0, 0, 0];
    const N = 100_000;
    for (let i = 0; i < N; i++) counts[list.indexOf(pick()!)]!++;
    const expected = [0.1, 0.2, 0.7];
    counts.forEach((c, i) => {
      assert.ok(Math.abs(c / N - expected[i]!) < 0.01, `target ${i}: share ${c / N}`);
    });
  });

  it('maps random() at bucket edges to the right target', () => {
    const list = targets(1, 2, 7);
    let r = 0;
    const pick = createPicker('random', list, () => r);
    const at = (x: number): Target | undefined => ((r = x), pick());
    assert.equal(at(0), list[0]);
    assert.equal(at(0.0999), list[0]);
    assert.equal(at(0.1), list[1]);
    assert.equal(at(0.2999), list[1]);
    assert.equal(at(0.3), list[2]);
    assert.equal(at(0.999999), list[2]);
  });
});

describe('round-robin', () => {
  it('rotates exactly, ignoring weights', () => {
    const list = targets(5, 1, 1, 1);
    const pick = createPicker('round-robin', list);
    assert.deepEqual(names(list, pickN(pick, 10)), ['A', 'B', 'C', 'D', 'A', 'B', 'C', 'D', 'A', 'B']);
  });
});

describe('consistent-hash', () => {
  const keys = Array.from({ length: 20_000 }, (_, i) => `client-${i}`);
  const ring = (list: readonly Target[]) => createPicker('consistent-hash', list, mulberry32(7));
  const assign = (list: readonly Target[]): (Target | undefined)[] => {
    const pick = ring(list);
    return keys.map((k) => pick(k));
  };
  const ten = Array.from({ length: 10 }, (_, i) => new Target(`backend-${i}.svc:8080`));

  it('hash32 is a deterministic unsigned 32-bit hash', () => {
    assert.equal(hash32('abc'), hash32('abc'));
    assert.notEqual(hash32('abc'), hash32('abd'));
    for (const s of ['', 'a', 'client-1', '\u{1F600}']) {
      const h = hash32(s);
      assert.ok(Number.isInteger(h) && h >= 0 && h <= 0xffffffff, `${s}: ${h}`);
    }
  });

  it('same key gives the same target, across picks and rebuilt pickers', () => {
    const a = ring(ten);
    const b = ring([...ten].reverse());
    for (const k of keys.slice(0, 1000)) {
      const t = a(k);
      assert.equal(a(k), t);
      assert.equal(b(k), t);
    }
  });

  it('10 targets, 20k keys: each within ±35% of the mean', () => {
    const owners = assign(ten);
    const mean = keys.length / ten.length;
    for (const t of ten) {
      const c = owners.filter((o) => o === t).length;
      assert.ok(Math.abs(c - mean) <= 0.35 * mean, `${t.address}: ${c} keys, mean ${mean}`);
    }
  });

  it('adding an 11th target moves at most 1.5/11 of keys, all to the new target', () => {
    const before = assign(ten);
    const extra = new Target('backend-10.svc:8080');
    const after = assign([...ten, extra]);
    let moved = 0;
    for (let i = 0; i < keys.length; i++) {
      if (after[i] !== before[i]) {
        moved++;
        assert.equal(after[i], extra, `key ${keys[i]} moved to ${after[i]?.address}`);
      }
    }
    assert.ok(moved > 0);
    assert.ok(moved / keys.length <= (1 / 11) * 1.5, `moved ${moved}`);
  });

  it('removing a target moves only that target\'s keys', () => {
    const before = assign(ten);
    const removed = ten[3]!;
    const after = assign(ten.filter((t) => t !== removed));
    let moved = 0;
    for (let i = 0; i < keys.length; i++) {
      if (before[i] === removed) {
        moved++;
        assert.notEqual(after[i], removed);
      } else {
        assert.equal(after[i], before[i], `key ${keys[i]} moved`);
      }
    }
    assert.ok(moved > 0);
  });

  it('a weight-2 target gets about twice the keys of a weight-1 target', () => {
    const list = [
      new Target('w1-a:80', 1),
      new Target('w1-b:80', 1),
      new Target('w1-c:80', 1),
      new Target('w1-d:80', 1),
      new Target('w2:80', 2),
    ];
    const owners = assign(list);
    const countOf = (t: Target) => owners.filter((o) => o === t).length;
    const meanW1 = list.slice(0, 4).reduce((s, t) => s + countOf(t), 0) / 4;
    const ratio = countOf(list[4]!) / meanW1;
    assert.ok(ratio >= 1.5 && ratio <= 2.5, `ratio ${ratio}`);
  });

  it('without a key falls back to weighted random', () => {
    const list = targets(1, 9);
    const pick = createPicker('consistent-hash', list, mulberry32(3));
    let second = 0;
    const N = 10_000;
    for (let i = 0; i < N; i++) if ((i % 2 ? pick('') : pick()) === list[1]) second++;
    assert.ok(Math.abs(second / N - 0.9) < 0.02, `share ${second / N}`);
  });
});

describe('least-connections', () => {
  it('picks the target with the fewest in flight', () => {
    const list = targets(1, 1, 1);
    list[0]!.inflight = 5;
    list[1]!.inflight = 1;
    list[2]!.inflight = 3;
    const pick = createPicker('least-connections', list);
    for (let i = 0; i < 5; i++) assert.equal(pick(), list[1]);
  });

  it('divides by weight: inflight 2 weight 2 beats inflight 2 weight 1', () => {
    const list = [new Target('a:1', 1), new Target('b:1', 2)];
    list[0]!.inflight = 2;
    list[1]!.inflight = 2;
    const pick = createPicker('least-connections', list);
    for (let i = 0; i < 5; i++) assert.equal(pick(), list[1]);
  });

  it('spreads ties over the equal targets in rotation', () => {
    const list = targets(1, 1, 1, 1);
    list[2]!.inflight = 4;
    const pick = createPicker('least-connections', list);
    assert.deepEqual(names(list, pickN(pick, 6)), ['A', 'B', 'D', 'A', 'B', 'D']);
  });

  it('follows inflight as it changes', () => {
    const list = targets(1, 1, 1);
    const pick = createPicker('least-connections', list);
    for (let i = 0; i < 9; i++) pick()!.inflight++;
    assert.deepEqual(list.map((t) => t.inflight), [3, 3, 3]);
  });
});

describe('p2c', () => {
  it('rarely picks a busy target (inflight 50) when the other two are idle', () => {
    const list = targets(1, 1, 1);
    list[1]!.inflight = 50;
    const pick = createPicker('p2c', list, mulberry32(11));
    let busy = 0;
    const counts = [0, 0, 0];
    for (let i = 0; i < 10_000; i++) {
      const t = pick()!;
      counts[list.indexOf(t)]!++;
      if (t === list[1]) busy++;
    }
    assert.ok(busy / 10_000 < 0.05, `busy picked ${busy}`);
    assert.ok(counts[0]! > 4000 && counts[2]! > 4000, `counts ${counts}`);
  });

  it('rarely picks a slow target (ewma 100ms vs 1ms)', () => {
    const list = targets(1, 1, 1);
    list[0]!.ewmaMs = 100;
    list[1]!.ewmaMs = 1;
    list[2]!.ewmaMs = 1;
    const pick = createPicker('p2c', list, mulberry32(5));
    let slow = 0;
    for (let i = 0; i < 10_000; i++) if (pick() === list[0]) slow++;
    assert.ok(slow / 10_000 < 0.05, `slow picked ${slow}`);
  });

  it('spreads evenly over equal targets', () => {
    const list = targets(1, 1, 1, 1);
    const pick = createPicker('p2c', list, mulberry32(9));
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 20_000; i++) counts[list.indexOf(pick()!)]!++;
    for (const c of counts) assert.ok(Math.abs(c - 5000) < 500, `counts ${counts}`);
  });

  it('with two targets always compares both', () => {
    const list = targets(1, 1);
    list[0]!.inflight = 1;
    const pick = createPicker('p2c', list, mulberry32(2));
    for (let i = 0; i < 100; i++) assert.equal(pick(), list[1]);
  });
});
