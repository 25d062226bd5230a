// Property tests of the config value parsers (docs/fuzzing.md): durations
// (parseDuration and the `duration` schema), sizes and counts (`int`, e.g.
// an L4 listener's `buffer`), `cidr`, header names and values, and
// `host:port` addresses (parseHostPort / formatHostPort, `listenAddress`).
// Each agrees with a reference model written from its documented grammar,
// never throws, and round-trips what its formatter writes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import fc from 'fast-check';
import { parseDuration } from '../../src/config/duration.js';
import { cidr, duration, headerName, headerValue, int, listenAddress } from '../../src/config/values.js';
import { formatHostPort, parseHostPort } from '../../src/net/address.js';
import { validateConfig } from '../../src/config/load.js';
import { fuzzRuns } from '../helpers/fuzz.js';

const UNIT_MS: Record<string, number> = { '': 1, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * The duration grammar, by hand: optional surrounding white space (as
 * String.prototype.trim removes it), digits, optionally `.` and digits,
 * optionally one unit. The value must be a safe non-negative whole number
 * of milliseconds once rounded, or there is no value.
 */
function referenceDuration(text: string): number | undefined {
  const t = text.trim();
  let i = 0;
  while (i < t.length && t[i]! >= '0' && t[i]! <= '9') i++;
  if (i === 0) return undefined;
  if (t[i] === '.') {
    const j = ++i;
    while (i < t.length && t[i]! >= '0' && t[i]! <= '9') i++;
    if (i === j) return undefined;
  }
  const unit = t.slice(i);
  if (!(unit in UNIT_MS)) return undefined;
  const ms = Math.round(Number(t.slice(0, i)) * UNIT_MS[unit]!);
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** Characters a duration is made of, plus a few that must break it. */
const durationChar = fc.constantFrom(...'0123456789.msh'.split(''), ' ', '\t', '-', '+', 'e', 'd', 'x', '\n', '\u00a0', '٣');
const durationLike = fc.oneof(
  fc.string({ unit: durationChar, maxLength: 24 }),
  fc.string({ maxLength: 24 }),
  fc.tuple(fc.nat(), fc.option(fc.nat(), { nil: undefined }), fc.constantFrom('', 'ms', 's', 'm', 'h')).map(([a, b, u]) => `${a}${b === undefined ? '' : `.${b}`}${u}`),
);

describe('fuzz: durations', () => {
  it('parseDuration of any text agrees with the grammar, and never answers NaN, Infinity, a fraction or a negative', () => {
    fc.assert(
      fc.property(durationLike, (text) => {
        const got = parseDuration(text);
        assert.equal(got, referenceDuration(text), `parseDuration(${JSON.stringify(text)})`);
        if (got !== undefined) assert.ok(Number.isSafeInteger(got) && got >= 0);
      }),
      fuzzRuns(5000),
    );
  });

  it('parseDuration of any number: the rounded value when finite, >= 0 and safe, else nothing', () => {
    fc.assert(
      fc.property(fc.oneof(fc.double(), fc.integer(), fc.constantFrom(Number.MAX_VALUE, Number.MAX_SAFE_INTEGER + 2, -0, 0.5, -0.4)), (n) => {
        const got = parseDuration(n);
        const want = Number.isFinite(n) && n >= 0 && Number.isSafeInteger(Math.round(n)) ? Math.round(n) : undefined;
        assert.equal(got, want, `parseDuration(${n})`);
      }),
      fuzzRuns(3000),
    );
  });

  it('a whole number of ms written in its largest exact unit, or as decimal seconds, parses back to itself', () => {
    const formats = (ms: number): string[] => {
      const out = [`${ms}`, `${ms}ms`, ` ${ms / 1000}s `];
      for (const [u, f] of [['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
        if (ms % f === 0) {
          out.push(`${ms / f}${u}`);
          break;
        }
      }
      return out;
    };
    fc.assert(
      fc.property(fc.oneof(fc.nat(), fc.integer({ min: 0, max: 1e12 }), fc.nat({ max: 1000 }).map((h) => h * 3_600_000)), (ms) => {
        for (const text of formats(ms)) assert.equal(parseDuration(text), ms, `parseDuration(${JSON.stringify(text)})`);
      }),
      fuzzRuns(3000),
    );
  });

  it('the duration schema never throws and accepts exactly what parseDuration puts in its range', () => {
    const schema = duration(1, 600_000, '1ms to 10m');
    fc.assert(
      fc.property(fc.oneof(durationLike, fc.double(), fc.anything()), (v) => {
        const r = schema.safeParse(v);
        const ms = typeof v === 'string' || typeof v === 'number' ? parseDuration(v) : undefined;
        const ok = ms !== undefined && ms >= 1 && ms <= 600_000;
        assert.equal(r.success, ok, `duration(${JSON.stringify(v)})`);
        if (r.success) assert.equal(r.data, ms);
      }),
      fuzzRuns(3000),
    );
  });

  it('long runs of duration characters are answered (the regex does not backtrack exponentially)', () => {
    const long = fc.tuple(fc.constantFrom('1', '1.', '.', '1.1', 'm', 'ms'), fc.integer({ min: 1_000, max: 50_000 }), fc.constantFrom('', 'x', 's', '.', 'msx', ' '));
    fc.assert(
      fc.property(long, ([piece, times, tail]) => {
        const text = piece.repeat(times) + tail;
        assert.equal(parseDuration(text), referenceDuration(text));
      }),
      fuzzRuns(200),
    );
  });
});

describe('fuzz: sizes and counts (int)', () => {
  // An L4 listener's `buffer`: bytes, 4 KiB to 16 MiB.
  const MIN = 4096;
  const MAX = 16 * 1024 * 1024;
  const schema = int(MIN, MAX);
  const NUMERIC = /^\s*-?\d+(\.\d+)?\s*$/;

  it('accepts exactly the whole numbers in range, written as numbers or numeric strings; never throws', () => {
    const sizeLike = fc.oneof(
      fc.integer({ min: -10, max: MAX + 10 }),
      fc.double(),
      fc.integer({ min: MIN - 2, max: MAX + 2 }).map(String),
      fc.string({ unit: fc.constantFrom(...'0123456789.-+ eEkKiBM'.split('')), maxLength: 20 }),
      fc.anything(),
    );
    fc.assert(
      fc.property(sizeLike, (v) => {
        const r = schema.safeParse(v);
        const n = typeof v === 'number' ? v : typeof v === 'string' && NUMERIC.test(v) ? Number(v) : NaN;
        const ok = Number.isInteger(n) && n >= MIN && n <= MAX;
        assert.equal(r.success, ok, `int(${JSON.stringify(v)})`);
        if (r.success) assert.equal(r.data, n);
      }),
      fuzzRuns(5000),
    );
  });

  it('long runs of numeric characters and spaces are answered (no catastrophic backtracking)', () => {
    const long = fc.tuple(fc.constantFrom('1', ' ', '1 ', '-1', '.1', '1.'), fc.integer({ min: 1_000, max: 50_000 }), fc.constantFrom('', 'x', ' ', '.', '1'));
    fc.assert(
      fc.property(long, ([piece, times, tail]) => {
        const text = piece.repeat(times) + tail;
        const n = NUMERIC.test(text) ? Number(text) : NaN;
        assert.equal(schema.safeParse(text).success, Number.isInteger(n) && n >= MIN && n <= MAX);
      }),
      fuzzRuns(200),
    );
  });

  it('a size in range round-trips through its decimal text', () => {
    fc.assert(
      fc.property(fc.integer({ min: MIN, max: MAX }), (n) => {
        assert.equal(schema.parse(String(n)), n);
        assert.equal(schema.parse(` ${n} `), n);
        assert.equal(schema.parse(n), n);
      }),
      fuzzRuns(2000),
    );
  });
});

describe('fuzz: cidr, header names and values', () => {
  const TOKEN = new Set("!#$%&'*+.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-");

  it('cidr: never throws; every IPv4/IPv6 address, alone or with a prefix in range, is accepted; a prefix out of range is not', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: -1, max: 200 }), (ip, bits) => {
        const max = isIP(ip) === 4 ? 32 : 128;
        assert.equal(cidr.safeParse(ip).success, true, ip);
        assert.equal(cidr.safeParse(`${ip}/${bits}`).success, bits >= 0 && bits <= max, `${ip}/${bits}`);
      }),
      fuzzRuns(2000),
    );
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: fc.constantFrom(...'0123456789abcdef.:/%[] '.split('')) }), fc.anything()), (v) => {
        const r = cidr.safeParse(v);
        if (r.success) assert.ok(typeof v === 'string' && isIP(v.split('/')[0]!) !== 0, `accepted ${JSON.stringify(v)}`);
      }),
      fuzzRuns(3000),
    );
  });

  it('header names: exactly the RFC 9110 tokens; header values: anything without CR, LF or NUL', () => {
    const headerish = fc.oneof(fc.string(), fc.string({ unit: fc.constantFrom('a', 'Z', '-', '_', ':', ' ', '\r', '\n', '\0', '\t', '"', '(', 'é', '\u2028') }));
    fc.assert(
      fc.property(headerish, (s) => {
        assert.equal(headerName.safeParse(s).success, s.length > 0 && [...s].every((c) => TOKEN.has(c)), `name ${JSON.stringify(s)}`);
        assert.equal(headerValue.safeParse(s).success, !/[\r\n\0]/.test(s), `value ${JSON.stringify(s)}`);
      }),
      fuzzRuns(5000),
    );
  });
});

describe('fuzz: host:port addresses', () => {
  const host = fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain(), fc.constantFrom('localhost', '0.0.0.0', '::', '::1'));

  it('formatHostPort then parseHostPort (and listenAddress) gives back the same host and port', () => {
    fc.assert(
      fc.property(host, fc.integer({ min: 0, max: 65535 }), (h, p) => {
        const text = formatHostPort({ host: h, port: p });
        assert.deepEqual(parseHostPort(text), { host: h, port: p }, text);
        const r = listenAddress.safeParse(text);
        assert.ok(r.success, text);
        assert.deepEqual(r.data, { host: h, port: p });
      }),
      fuzzRuns(3000),
    );
  });

  it('any text: never throws; what parses has a port 0-65535 and formats back to text that parses the same', () => {
    const addressish = fc.oneof(
      fc.string(),
      fc.string({ unit: fc.constantFrom(...'0123456789abc.:[]% -'.split('')), maxLength: 30 }),
      fc.tuple(fc.string({ unit: fc.constantFrom(...'01a:[] %.'.split('')), maxLength: 8 }), fc.nat({ max: 70000 })).map(([h, p]) => `[${h}]:${p}`),
      fc.tuple(host, fc.string({ maxLength: 8 })).map(([h, p]) => `${h}:${p}`),
      fc.tuple(host, fc.integer({ min: -5, max: 70000 })).map(([h, p]) => `[${h}]:${p}`),
    );
    fc.assert(
      fc.property(addressish, (text) => {
        const hp = parseHostPort(text);
        assert.equal(listenAddress.safeParse(text).success, hp !== undefined);
        if (hp === undefined) return;
        assert.ok(Number.isInteger(hp.port) && hp.port >= 0 && hp.port <= 65535);
        assert.notEqual(hp.host, '');
        assert.deepEqual(parseHostPort(formatHostPort(hp)), hp, `${JSON.stringify(text)} → ${formatHostPort(hp)}`);
      }),
      fuzzRuns(5000),
    );
  });
});

// Counterexamples the properties above found, kept as plain cases.
describe('fuzz regressions: config values', () => {
  it('parseDuration: a digit string too long for a safe number (Infinity) is not a duration', () => {
    assert.equal(parseDuration('1'.repeat(1000)), undefined);
    assert.equal(parseDuration(`${'9'.repeat(400)}h`), undefined);
    assert.equal(parseDuration('9007199254740993'), undefined);
    assert.equal(parseDuration(Number.MAX_VALUE), undefined);
    assert.equal(parseDuration(Number.POSITIVE_INFINITY), undefined);
    assert.equal(parseDuration('9007199254740991'), Number.MAX_SAFE_INTEGER);
  });

  it('config: a listener timeout of 400 digits is refused, not taken for Infinity ms', () => {
    const doc = (headers: string) => ({ listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', timeouts: { headers } }] });
    const huge = validateConfig(doc('9'.repeat(400)), {});
    assert.equal(huge.ok, false);
    const fine = validateConfig(doc('2s'), {});
    assert.ok(fine.ok);
    assert.equal(fine.config.listeners[0]!.protocol === 'http' ? fine.config.listeners[0]!.timeouts.headers : undefined, 2000);
  });

  it('parseHostPort: a host formatHostPort cannot write back ("[[x]:80", "a b:80", "[1.2.3.4]:80") is not an address', () => {
    for (const bad of ['[[x]:80', '[a b]:80', '[:80]:80', 'a b:80', ' :80', '[x]:80', '[1.2.3.4]:80', 'a/b:80', 'a%b:80']) {
      assert.equal(parseHostPort(bad), undefined, bad);
    }
    assert.deepEqual(parseHostPort('[fe80::1%eth0]:80'), { host: 'fe80::1%eth0', port: 80 });
    assert.deepEqual(parseHostPort('my_service.internal:80'), { host: 'my_service.internal', port: 80 });
  });
});
