// Service codes, code patterns and port ranges (tunnel spec, "Code
// patterns"): the examples of the spec, every rejected form with its
// RangeError, and properties against a naive reference (a pattern list
// matches a code iff some pattern is the code, or a prefix of it ending in
// `*`; a port list matches iff some range contains the port).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compileCodePatterns, compilePortRanges, isValidCode, isValidCodePattern, mergePortRanges, parsePortRange } from '../../src/tunnel/code-pattern.js';
import { fuzzRuns } from '../helpers/fuzz.js';

const CODE_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-'.split('');
const codeChar = fc.constantFrom(...CODE_CHARS);
/** Short codes from a small alphabet, so that patterns and codes often share prefixes. */
const smallCode = fc.string({ unit: fc.constantFrom('a', 'b', '-', '1'), minLength: 1, maxLength: 6 });
const anyCode = fc.string({ unit: codeChar, minLength: 1, maxLength: 63 });
const pattern = fc.oneof(smallCode, smallCode.map((c) => `${c}*`), fc.string({ unit: fc.constantFrom('a', 'b', '-', '1'), maxLength: 2 }).map((c) => `${c}*`));

function reference(patterns: string[], code: string): boolean {
  if (!isValidCode(code)) return false;
  return patterns.some((p) => (p.endsWith('*') ? code.startsWith(p.slice(0, -1)) : code === p));
}

describe('isValidCode', () => {
  test('1-63 characters of [A-Za-z0-9_.-]', () => {
    for (const ok of ['a', 'crm', 'device-42', 'A.b_c-9', 'x'.repeat(63)]) assert.equal(isValidCode(ok), true, ok);
    for (const bad of ['', 'x'.repeat(64), 'a b', 'a*', 'é', 'a/b', 'a:b', 'a\n', '*', ' a', 42, null, undefined]) assert.equal(isValidCode(bad), false, String(bad));
  });

  test('property: valid iff every character is in the set and the length is 1-63', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (s) => {
        const expected = s.length >= 1 && s.length <= 63 && [...s].every((c) => CODE_CHARS.includes(c));
        assert.equal(isValidCode(s), expected);
      }),
      fuzzRuns(2000),
    );
  });
});

describe('compileCodePatterns', () => {
  test('the spec examples: exact, prefix*, *', () => {
    const m = compileCodePatterns(['crm', 'ssh', 'device-*']);
    assert.equal(m('crm'), true);
    assert.equal(m('ssh'), true);
    assert.equal(m('device-42'), true);
    assert.equal(m('device-'), true, 'a glob * matches zero characters');
    assert.equal(m('device'), false);
    assert.equal(m('crm2'), false);
    assert.equal(m('CRM'), false, 'codes are case-sensitive');
    assert.equal(m('device-4 2'), false, 'an invalid code never matches, even under a prefix');
    const all = compileCodePatterns(['*']);
    assert.equal(all('anything.at_all-1'), true);
    assert.equal(all(''), false);
    assert.equal(all('x'.repeat(64)), false);
    assert.equal(all('a b'), false);
    assert.equal(compileCodePatterns([])('crm'), false, 'an empty list allows nothing');
  });

  test('invalid patterns are refused with a RangeError naming them', () => {
    for (const bad of ['', 'a*b', '**', '*a', 'a b', 'dev ice-*', `${'x'.repeat(63)}*`, 'x'.repeat(64), 'é*']) {
      assert.equal(isValidCodePattern(bad), false, bad);
      assert.throws(() => compileCodePatterns(['ok', bad]), (err: Error) => err instanceof RangeError && err.message.includes(JSON.stringify(bad)), bad);
    }
    assert.equal(isValidCodePattern(`${'x'.repeat(62)}*`), true);
  });

  test('property: the compiled predicate agrees with the reference, for related and unrelated codes', () => {
    fc.assert(
      fc.property(fc.array(pattern, { maxLength: 6 }), fc.oneof(smallCode, anyCode, fc.string({ maxLength: 70 })), (patterns, code) => {
        assert.equal(compileCodePatterns(patterns)(code), reference(patterns, code));
      }),
      fuzzRuns(3000),
    );
  });

  test('property: compiling never throws for valid patterns, always throws RangeError for a list with an invalid one', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 8 }), { maxLength: 5 }), (patterns) => {
        const valid = patterns.every(isValidCodePattern);
        if (valid) compileCodePatterns(patterns);
        else assert.throws(() => compileCodePatterns(patterns), RangeError);
      }),
      fuzzRuns(2000),
    );
  });
});

describe('compilePortRanges', () => {
  test('"N-M", "N" and N; bounds inclusive', () => {
    const m = compilePortRanges(['20000-20100', '8080', 443]);
    for (const p of [20000, 20050, 20100, 8080, 443]) assert.equal(m(p), true, String(p));
    for (const p of [19999, 20101, 8081, 442, 444, 0, -1, 65536, 8080.5, Number.NaN]) assert.equal(m(p), false, String(p));
    assert.equal(compilePortRanges([])(80), false);
    assert.equal(compilePortRanges(['1-65535'])(65535), true);
    assert.deepEqual(parsePortRange(' 10 - 20 '), { from: 10, to: 20 });
  });

  test('invalid entries are refused with a RangeError', () => {
    for (const bad of ['', '0', '65536', '10-5', '1-65536', 'a', '1-2-3', '-5', '5-', '1.5', 0, 65536, 1.5, -3, Number.NaN, '123456']) {
      assert.throws(() => compilePortRanges([80, bad]), RangeError, String(bad));
    }
  });

  test('overlapping and adjacent ranges merge', () => {
    assert.deepEqual(mergePortRanges(['10-20', '15-30', 31, '40-50', '45']), [
      { from: 10, to: 31 },
      { from: 40, to: 50 },
    ]);
  });

  test('property: agrees with the naive reference', () => {
    const range = fc.tuple(fc.integer({ min: 1, max: 400 }), fc.integer({ min: 0, max: 40 }), fc.constantFrom('range', 'string', 'number'));
    fc.assert(
      fc.property(fc.array(range, { maxLength: 8 }), fc.array(fc.integer({ min: -5, max: 460 }), { minLength: 1, maxLength: 20 }), (list, ports) => {
        const entries = list.map(([from, len, kind]) => (kind === 'range' ? `${from}-${Math.min(65535, from + len)}` : kind === 'string' ? String(from) : from));
        const m = compilePortRanges(entries);
        for (const p of ports) {
          const expected = list.some(([from, len, kind]) => (kind === 'range' ? p >= from && p <= from + len : p === from));
          assert.equal(m(p), expected, `port ${p} in ${JSON.stringify(entries)}`);
        }
      }),
      fuzzRuns(2000),
    );
  });
});
