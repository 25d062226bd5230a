// Property-based tests of config document reading (YAML with anchors and
// aliases, interpolation, validation): it never throws, it agrees with the
// YAML library on what a document means, and it refuses exactly the
// documents whose alias expansion passes the limit.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseDocument } from 'yaml';
import { loadConfigText, validateConfig, type LoadResult } from '../../src/config/load.js';
import { formatConfigErrors } from '../../src/config/errors.js';
import { MAX_EXPANDED_NODES, readYaml } from '../../src/config/yaml-document.js';
import { fuzzRuns } from '../helpers/fuzz.js';

const VALID = `admin: { listen: 127.0.0.1:9180 }
listeners:
  - { name: web, protocol: http, listen: "127.0.0.1:0" }
  - { name: raw, protocol: tcp, listen: "127.0.0.1:0", upstream: u }
x-t: &t { connect: 1s, response: 5s }
upstreams:
  - { name: u, balancer: round-robin, targets: [{ address: "127.0.0.1:2000", weight: 2 }], timeouts: *t }
routes:
  - name: r
    listener: web
    match: { pathPrefix: /api, methods: [GET, POST], headers: { x-a: { regex: "^v[0-9]+$" } } }
    stripPrefix: true
    middlewares:
      - rate-limit: { rate: 10, key: ip }
    upstream: u
`;

/** A result is well formed: ok with a config, or errors each with a path and a message (and a line within the text). */
function assertWellFormed(r: LoadResult, text: string): void {
  if (r.ok) return;
  assert.ok(r.errors.length > 0);
  const lines = text.split('\n').length;
  for (const e of r.errors) {
    assert.equal(typeof e.path, 'string');
    assert.ok(e.message.length > 0);
    if (e.line !== undefined) assert.ok(e.line >= 1 && e.line <= lines + 1, `line ${e.line} of ${lines}`);
  }
  assert.equal(typeof formatConfigErrors('c.yaml', r.errors), 'string');
}

/** Scalars of a generated YAML tree (see treeText: anchors on some nodes, aliases to anchors written before them). */
const scalar = fc.oneof(fc.integer(), fc.constantFrom('a', 'b c', '"q"', 'true', 'null', '1s', '127.0.0.1:80'));

function treeText(shape: unknown[], names: string[], depth: number): string {
  // shape: a list of items, each a scalar, a nested list, or an alias index.
  const parts = shape.map((item) => {
    if (Array.isArray(item)) {
      const inner = treeText(item, names, depth + 1);
      if (names.length < 20 && depth < 4) {
        const name = `n${names.length}`;
        names.push(name);
        return `&${name} ${inner}`;
      }
      return inner;
    }
    if (typeof item === 'object' && item !== null && 'alias' in item) {
      return names.length === 0 ? '0' : `*${names[(item as { alias: number }).alias % names.length]}`;
    }
    return typeof item === 'string' ? JSON.stringify(item) : String(item);
  });
  return `[${parts.join(', ')}]`;
}

const shapeArb: fc.Arbitrary<unknown[]> = fc.letrec<{ list: unknown[]; item: unknown }>((tie) => ({
  list: fc.array(tie('item'), { maxLength: 5 }),
  item: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalar, fc.record({ alias: fc.nat(50) }), tie('list')),
})).list as fc.Arbitrary<unknown[]>;

function naiveSize(v: unknown, budget: { left: number }): number {
  if (--budget.left < 0) return Infinity;
  if (Array.isArray(v)) return v.reduce((n: number, x) => n + naiveSize(x, budget), 1);
  if (v !== null && typeof v === 'object') return Object.entries(v).reduce((n, [, x]) => n + 1 + naiveSize(x, budget), 1);
  return 1;
}

describe('config documents (property-based)', () => {
  it('loadConfigText never throws on any text', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ unit: fc.constantFrom(...'{}[]:-&*!|>\'"#\n %@`,?'.split('')) })), (text) => {
        assertWellFormed(loadConfigText(text, {}), text);
      }),
      fuzzRuns(3000),
    );
  });

  it('edits of a valid document (a character removed, inserted or replaced, lines swapped) never throw', () => {
    const lines = VALID.split('\n');
    const edit = fc.oneof(
      fc.record({ kind: fc.constant('remove'), at: fc.nat(VALID.length - 1) }),
      fc.record({ kind: fc.constant('insert'), at: fc.nat(VALID.length), ch: fc.constantFrom(' ', '\t', ':', '-', '&', '*', '{', '[', '"', '\n', '#', '%', '\0') }),
      fc.record({ kind: fc.constant('swap'), a: fc.nat(lines.length - 1), b: fc.nat(lines.length - 1) }),
    );
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
        let text = VALID;
        for (const e of edits) {
          if (e.kind === 'remove') text = text.slice(0, e.at) + text.slice(e.at + 1);
          else if (e.kind === 'insert') text = text.slice(0, e.at) + e.ch + text.slice(e.at);
          else {
            const l = text.split('\n');
            [l[e.a], l[e.b]] = [l[e.b]!, l[e.a]!];
            text = l.join('\n');
          }
        }
        assertWellFormed(loadConfigText(text, {}), text);
      }),
      fuzzRuns(3000),
    );
  });

  it('validateConfig never throws on any JSON value, nor on the valid document with one value replaced', () => {
    const base = parseDocument(VALID, { merge: true }).toJS({ maxAliasCount: -1 }) as Record<string, unknown>;
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom('listeners', 'upstreams', 'routes', 'admin', 'drain', 'workers', 'state', 'consumers'), (value, key) => {
        assertWellFormed(validateConfig(value, {}), '');
        assertWellFormed(validateConfig({ ...base, [key]: value }, {}), '');
      }),
      fuzzRuns(3000),
    );
  });

  it('documents with anchors and aliases: read as the YAML library reads them, never throwing', () => {
    fc.assert(
      fc.property(shapeArb, (shape) => {
        const text = `v: ${treeText(shape, [], 0)}\n`;
        const r = readYaml(text);
        const lib = parseDocument(text, { merge: true, uniqueKeys: true });
        if (lib.errors.length > 0) {
          assert.equal(r.ok, false);
          return;
        }
        if (!r.ok) {
          // Refused only for a reason the library would not check: the expansion size.
          assert.match(r.problem.message, /nodes once aliases are expanded|no anchor/);
          return;
        }
        const budget = { left: MAX_EXPANDED_NODES + 1 };
        assert.ok(naiveSize(r.data, budget) <= MAX_EXPANDED_NODES + 1);
        assert.deepEqual(r.data, lib.toJS({ maxAliasCount: -1 }));
      }),
      fuzzRuns(2000),
    );
  });

  it('a chain of aliases is refused exactly when its expansion passes the limit', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 12 }), (levels, fan) => {
        let text = `a0: &a0 [${Array(fan).fill('x').join(', ')}]\n`;
        for (let i = 1; i < levels; i++) text += `a${i}: &a${i} [${Array(fan).fill(`*a${i - 1}`).join(', ')}]\n`;
        // The expanded size: the root mapping, its keys, and level i's list (1 + fan × level i-1) written once each.
        let level = 1 + fan;
        let total = 1 + 1 + level;
        for (let i = 1; i < levels; i++) {
          level = 1 + fan * level;
          total += 1 + level;
        }
        const r = readYaml(text);
        assert.equal(r.ok, total <= MAX_EXPANDED_NODES, `levels ${levels}, fan ${fan}: ${total} nodes`);
      }),
      fuzzRuns(500),
    );
  });
});
