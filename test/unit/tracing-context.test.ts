// W3C Trace Context (https://www.w3.org/TR/trace-context/): the traceparent
// and tracestate parser and formatter, the random ids and the sampling
// rules of beginTrace, with fast-check properties for the parsers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  beginTrace,
  formatTraceparent,
  newSpanId,
  newTraceId,
  parseTraceparent,
  TRACESTATE_MAX_LENGTH,
  TRACESTATE_MAX_MEMBERS,
  validTracestate,
} from '../../src/observability/trace-context.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';
const VALID = `00-${TRACE}-${PARENT}-01`;

const hexLc = (n: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n });
const nonZeroHex = (n: number) => hexLc(n).filter((s) => !/^0+$/.test(s));
const lcalpha = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz');
const keyChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789_-*/');
const simpleKey = fc.tuple(lcalpha, fc.string({ unit: keyChar, maxLength: 20 })).map(([a, b]) => a + b);
const tenantKey = fc
  .tuple(fc.constantFrom(...'abc0123'), fc.string({ unit: keyChar, maxLength: 8 }), lcalpha, fc.string({ unit: keyChar, maxLength: 13 }))
  .map(([a, b, c, d]) => `${a}${b}@${c}${d}`);
const valueChar = fc.integer({ min: 0x21, max: 0x7e }).filter((c) => c !== 0x2c && c !== 0x3d).map((c) => String.fromCharCode(c));
const value = fc
  .tuple(fc.string({ unit: fc.oneof(valueChar, fc.constant(' ')), maxLength: 12 }), valueChar)
  .map(([a, b]) => a + b);

describe('traceparent parser and formatter', () => {
  it('reads the spec examples', () => {
    assert.deepEqual(parseTraceparent(VALID), { version: '00', traceId: TRACE, parentId: PARENT, flags: 1 });
    assert.equal(parseTraceparent(`00-${TRACE}-${PARENT}-00`)!.flags, 0);
    assert.equal(parseTraceparent(` ${VALID}\t`)!.traceId, TRACE, 'OWS around the value');
    // A later version: the version-00 fields are read; more fields must follow a dash.
    assert.equal(parseTraceparent(`cc-${TRACE}-${PARENT}-09-what-the-future-holds`)!.flags, 9);
    assert.equal(parseTraceparent(`cc-${TRACE}-${PARENT}-01`)!.version, 'cc');
  });

  it('rejects what the spec rejects', () => {
    const bad = [
      '',
      'hello',
      `ff-${TRACE}-${PARENT}-01`, // version ff
      `00-${TRACE}-${PARENT}-01-extra`, // version 00 has exactly four fields
      `cc-${TRACE}-${PARENT}-01x`, // later version: character 55 must be a dash
      `00-${'0'.repeat(32)}-${PARENT}-01`, // zero trace-id
      `00-${TRACE}-${'0'.repeat(16)}-01`, // zero parent-id
      `00-${TRACE.toUpperCase()}-${PARENT}-01`, // upper-case hex
      `0G-${TRACE}-${PARENT}-01`,
      `00-${TRACE.slice(1)}-${PARENT}-01`,
      `00-${TRACE}-${PARENT.slice(1)}-01`,
      `00-${TRACE}-${PARENT}-1`,
      `00_${TRACE}-${PARENT}-01`,
      `00-${TRACE}-${PARENT}-0g`,
    ];
    for (const v of bad) assert.equal(parseTraceparent(v), undefined, v);
  });

  it('round-trips: format then parse gives the same ids and sampled flag', () => {
    fc.assert(
      fc.property(nonZeroHex(32), nonZeroHex(16), fc.boolean(), (traceId, spanId, sampled) => {
        const v = formatTraceparent(traceId, spanId, sampled);
        assert.equal(v.length, 55);
        assert.deepEqual(parseTraceparent(v), { version: '00', traceId, parentId: spanId, flags: sampled ? 1 : 0 });
      }),
    );
  });

  it('never throws, and whatever it accepts matches the grammar', () => {
    const grammar = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?$/s;
    const near = fc.tuple(hexLc(2), hexLc(32), hexLc(16), hexLc(2), fc.string({ maxLength: 6 })).map(([a, b, c, d, e]) => `${a}-${b}-${c}-${d}${e}`);
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 80 }), near), (v) => {
        const p = parseTraceparent(v);
        if (p === undefined) return;
        const t = v.trim();
        assert.match(t, grammar);
        assert.notEqual(p.version, 'ff');
        if (p.version === '00') assert.equal(t.length, 55);
        assert.ok(!/^0+$/.test(p.traceId) && !/^0+$/.test(p.parentId));
        assert.equal(p.traceId, t.slice(3, 35));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('tracestate validation', () => {
  it('passes valid lists on as received, trimmed', () => {
    assert.equal(validTracestate('congo=t61rcWkgMzE'), 'congo=t61rcWkgMzE');
    assert.equal(validTracestate(' rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE '), 'rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE');
    assert.equal(validTracestate('a=1,,b=2'), 'a=1,,b=2', 'empty members are allowed');
    assert.equal(validTracestate('fw529a3039@dt=x,t1@sys=y'), 'fw529a3039@dt=x,t1@sys=y');
    assert.equal(validTracestate('k=with space inside'), 'k=with space inside');
  });

  it('drops invalid members, duplicate keys, too many members, too many characters', () => {
    for (const v of ['', ' , ', 'Upper=1', '1abc=x', 'k=', 'k', '=v', 'k=v=w', 'a=1,a=2', 'k=\u0001', 'k=é', 'a@=1', '@b=1', 'a@B=1', `a@${'b'.repeat(15)}=1`]) {
      assert.equal(validTracestate(v), undefined, JSON.stringify(v));
    }
    const members = (n: number) => Array.from({ length: n }, (_, i) => `k${i}=v`).join(',');
    assert.equal(validTracestate(members(TRACESTATE_MAX_MEMBERS)), members(TRACESTATE_MAX_MEMBERS));
    assert.equal(validTracestate(members(TRACESTATE_MAX_MEMBERS + 1)), undefined);
    const long = `k=${'v'.repeat(250)},j=${'v'.repeat(250)}`;
    assert.equal(long.length, 505);
    assert.equal(validTracestate(long), long);
    const tooLong = `k=${'v'.repeat(250)},j=${'v'.repeat(250)},ab=cdef`;
    assert.ok(tooLong.length > TRACESTATE_MAX_LENGTH);
    assert.equal(validTracestate(tooLong), undefined);
  });

  it('accepts every list built from the grammar with distinct keys (up to the limits)', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(fc.oneof(simpleKey, tenantKey), value), { minLength: 1, maxLength: 40, selector: ([k]) => k }), (pairs) => {
        const v = pairs.map(([k, val]) => `${k}=${val}`).join(',');
        const expected = pairs.length <= TRACESTATE_MAX_MEMBERS && v.length <= TRACESTATE_MAX_LENGTH ? v : undefined;
        assert.equal(validTracestate(v), expected);
      }),
    );
  });

  it('never throws; what it accepts has valid members, distinct keys, within the limits', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 600 }), fc.array(fc.tuple(fc.oneof(simpleKey, fc.string({ maxLength: 5 })), fc.string({ maxLength: 8 })), { maxLength: 6 }).map((ps) => ps.map(([k, v]) => `${k}=${v}`).join(','))), (v) => {
        const out = validTracestate(v);
        if (out === undefined) return;
        assert.ok(out.length <= TRACESTATE_MAX_LENGTH);
        const members = out.split(',').map((m) => m.trim()).filter((m) => m !== '');
        assert.ok(members.length >= 1 && members.length <= TRACESTATE_MAX_MEMBERS);
        const keys = members.map((m) => m.slice(0, m.indexOf('=')));
        assert.equal(new Set(keys).size, keys.length);
        for (const m of members) assert.match(m, /^[a-z0-9][a-z0-9_\-*/@]*=[\x20-\x7e]*[\x21-\x7e]$/);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('ids and sampling', () => {
  it('makes non-zero lower-case hex ids, different each time, across pool refills', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const t = newTraceId();
      const s = newSpanId();
      assert.match(t, /^[0-9a-f]{32}$/);
      assert.match(s, /^[0-9a-f]{16}$/);
      assert.ok(!/^0+$/.test(t) && !/^0+$/.test(s));
      seen.add(t).add(s);
    }
    assert.equal(seen.size, 2000);
  });

  it('continues a valid incoming trace: same trace id, its parent-id, a new span id, its sampled flag whatever the rate', () => {
    for (const sample of [0, 1]) {
      const sampled = beginTrace(VALID, 'congo=t61rcWkgMzE', sample);
      assert.equal(sampled.traceId, TRACE);
      assert.equal(sampled.parentId, PARENT);
      assert.notEqual(sampled.spanId, PARENT);
      assert.equal(sampled.sampled, true);
      assert.equal(sampled.tracestate, 'congo=t61rcWkgMzE');
      assert.equal(sampled.traceparent, `00-${TRACE}-${sampled.spanId}-01`);
      const unsampled = beginTrace(`00-${TRACE}-${PARENT}-00`, undefined, sample);
      assert.equal(unsampled.sampled, false);
      assert.equal(unsampled.traceparent, `00-${TRACE}-${unsampled.spanId}-00`);
    }
    // Other flag bits: only bit 0 says sampled; only that bit is sent on.
    assert.equal(beginTrace(`00-${TRACE}-${PARENT}-fe`, undefined, 1).sampled, false);
    assert.match(beginTrace(`00-${TRACE}-${PARENT}-ff`, undefined, 0).traceparent, /-01$/);
    assert.equal(beginTrace(VALID, 'bad key=1', 1).tracestate, undefined, 'an invalid tracestate is dropped');
  });

  it('starts a new trace for an absent or invalid traceparent, sampled by the rate, without its tracestate', () => {
    for (const tp of [undefined, 'garbage', `00-${'0'.repeat(32)}-${PARENT}-01`]) {
      const t0 = beginTrace(tp, 'congo=1', 0);
      assert.notEqual(t0.traceId, TRACE);
      assert.equal(t0.parentId, '');
      assert.equal(t0.sampled, false);
      assert.equal(t0.tracestate, undefined);
      assert.match(t0.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
      assert.equal(beginTrace(tp, undefined, 1).sampled, true);
    }
    let sampled = 0;
    for (let i = 0; i < 2000; i++) if (beginTrace(undefined, undefined, 0.5).sampled) sampled++;
    // Binomial(2000, 0.5): outside 800..1200 has probability below 1e-18.
    assert.ok(sampled > 800 && sampled < 1200, String(sampled));
  });
});
