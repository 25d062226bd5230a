// Property tests of what the admin API parses or computes itself: JSON
// merge patch (RFC 7396), If-Match (RFC 9110 §13.1.1), and the write-back
// of a changed document into its YAML file.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseDocument } from 'yaml';
import { mergePatch } from '../../src/admin/merge-patch.js';
import { etagOf, ifMatch } from '../../src/admin/etag.js';
import { renderDocument } from '../../src/sources/document-text.js';
import { readYaml } from '../../src/config/yaml-document.js';
import { fuzzRuns, STANDARD_RUNS } from '../helpers/fuzz.js';

const key = fc.oneof(fc.constantFrom('name', 'id', 'a', 'b', '__proto__', 'constructor'), fc.string({ maxLength: 6 }));
const json = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, fc.constant(null), fc.boolean(), fc.integer(), fc.string({ maxLength: 8 }), fc.array(tie('value'), { maxLength: 3 }), tie('object')),
  object: fc.dictionary(key, tie('value'), { maxKeys: 4 }),
})) as { value: fc.Arbitrary<unknown>; object: fc.Arbitrary<Record<string, unknown>> };
const parsedJson = json.value.map((v) => JSON.parse(JSON.stringify(v)) as unknown);
const parsedObject = json.object.map((v) => JSON.parse(JSON.stringify(v)) as Record<string, unknown>);

describe('JSON merge patch (RFC 7396)', () => {
  it('matches the RFC 7396 appendix A examples', () => {
    const cases: [unknown, unknown, unknown][] = [
      [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
      [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
      [{ a: 'b' }, { a: null }, {}],
      [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
      [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
      [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
      [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
      [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
      [['a', 'b'], ['c', 'd'], ['c', 'd']],
      [{ a: 'b' }, ['c'], ['c']],
      [{ a: 'foo' }, null, null],
      [{ a: 'foo' }, 'bar', 'bar'],
      [{ e: null }, { a: 1 }, { e: null, a: 1 }],
      [[1, 2], { a: 'b', c: null }, { a: 'b' }],
      [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
    ];
    for (const [target, patch, result] of cases) assert.deepEqual(mergePatch(target, patch), result);
  });

  it('never changes its arguments, never touches a prototype, and is idempotent', () => {
    fc.assert(
      fc.property(parsedJson, parsedJson, (target, patch) => {
        const before = JSON.stringify([target, patch]);
        const once = mergePatch(target, patch);
        assert.equal(JSON.stringify([target, patch]), before);
        assert.deepEqual(mergePatch(once, patch), once);
        assert.equal(({} as Record<string, unknown>).polluted, undefined);
        if (once !== null && typeof once === 'object' && !Array.isArray(once)) assert.equal(Object.getPrototypeOf(once), Object.prototype);
      }),
      fuzzRuns(STANDARD_RUNS),
    );
  });

  it('an object patch sets every non-null key it names and removes every null one', () => {
    fc.assert(
      fc.property(parsedObject, parsedObject, (target, patch) => {
        const out = mergePatch(target, patch) as Record<string, unknown>;
        for (const [k, v] of Object.entries(patch)) {
          if (v === null) assert.ok(!Object.prototype.hasOwnProperty.call(out, k));
          else assert.ok(Object.prototype.hasOwnProperty.call(out, k));
        }
        for (const k of Object.keys(target)) if (!(k in patch)) assert.deepEqual(out[k], target[k]);
      }),
      fuzzRuns(STANDARD_RUNS),
    );
  });
});

describe('If-Match', () => {
  const rev = fc.stringMatching(/^[0-9a-f]{16}$/);
  it('matches exactly the current strong tag, among others, and never a weak one', () => {
    fc.assert(
      fc.property(rev, rev, fc.array(rev, { maxLength: 3 }), (current, other, extra) => {
        assert.deepEqual(ifMatch(undefined, current), { kind: 'any' });
        assert.deepEqual(ifMatch(' * ', current), { kind: 'any' });
        assert.deepEqual(ifMatch([...extra, current].map(etagOf).join(', '), current), { kind: 'match', revision: current });
        assert.deepEqual(ifMatch(`W/${etagOf(current)}`, current), { kind: 'stale' });
        if (other !== current && !extra.includes(current)) assert.deepEqual(ifMatch([other, ...extra].map(etagOf).join(','), current), { kind: 'stale' });
      }),
      fuzzRuns(STANDARD_RUNS),
    );
  });
  it('never throws on any header text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), rev, (h, current) => {
        const r = ifMatch(h, current);
        assert.ok(r.kind === 'any' || r.kind === 'stale' || (r.kind === 'match' && r.revision === current));
      }),
      fuzzRuns(STANDARD_RUNS),
    );
  });
});

describe('write-back into the YAML file', () => {
  const item = fc.record({ name: fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/), port: fc.integer({ min: 1, max: 65535 }), tags: fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }) });
  const doc = fc.record({ listeners: fc.uniqueArray(item, { selector: (i) => i.name, maxLength: 4 }), note: fc.option(fc.string({ maxLength: 10 }), { nil: undefined }) }).map((d) => JSON.parse(JSON.stringify(d)) as Record<string, unknown>);

  it('the written text reads back as exactly the new document, whatever the old one was', () => {
    fc.assert(
      fc.property(doc, doc, (before, next) => {
        const d = parseDocument('{}');
        d.contents = d.createNode(before) as typeof d.contents;
        const oldText = `# head comment\n${d.toString()}`;
        const text = renderDocument('portico.yaml', oldText, next);
        const read = readYaml(text);
        assert.ok(read.ok);
        assert.deepEqual(read.data, next);
        assert.match(text, /^# head comment/);
      }),
      fuzzRuns(500),
    );
  });

  it('a comment on a list item stays with that item when others are added or removed', () => {
    const text = 'listeners:\n  - name: a\n    port: 1\n  # b is special\n  - name: b # inline\n    port: 2\n';
    const out = renderDocument('p.yaml', text, { listeners: [{ name: 'z', port: 9 }, { name: 'b', port: 3 }] });
    assert.match(out, /# b is special\n\s+- name: b # inline\n\s+port: 3/);
    assert.doesNotMatch(out, /name: a/);
    assert.deepEqual(readYaml(out).ok && (readYaml(out) as { data: unknown }).data, { listeners: [{ name: 'z', port: 9 }, { name: 'b', port: 3 }] });
  });

  it('a .json file is written as formatted JSON', () => {
    assert.equal(renderDocument('p.json', '{"a":1}', { a: 2, b: [1] }), '{\n  "a": 2,\n  "b": [\n    1\n  ]\n}\n');
  });
});
