// The relay client's handshake: request and status lines formatted and
// read back, LF and CRLF endings, the bytes after the line handed back,
// early refusal of lines that cannot be valid, the 1024/256-byte caps
// enforced at the byte that crosses them; properties: any chunking of a
// valid request parses identically, and arbitrary or near-valid bytes
// never throw, give the same verdict under any chunking, and end as
// done-with-error or not-done under the cap.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  formatRelayRequest,
  formatRelayStatus,
  MAX_RELAY_REQUEST,
  MAX_RELAY_STATUS,
  RELAY_REQUEST_PREFIX,
  RELAY_STATUS,
  RelayRequestReader,
  RelayStatusReader,
  type RelayRequestResult,
  type RelayStatusCode,
  type RelayStatusResult,
} from '../../src/tunnel/relay/handshake.js';
import { fuzzRuns } from '../helpers/fuzz.js';

const b = (s: string) => Buffer.from(s, 'latin1');

/** Feeds chunks until done; the result, how many bytes were fed, and the chunks left after it. */
function feed<R extends { done: boolean }>(reader: { push(c: Buffer): R }, chunks: Buffer[]): { result: R; fed: number; after: Buffer[] } {
  let fed = 0;
  for (let i = 0; i < chunks.length; i++) {
    const result = reader.push(chunks[i]!);
    fed += chunks[i]!.length;
    if (result.done) return { result, fed, after: chunks.slice(i + 1) };
  }
  return { result: { done: false } as R, fed, after: [] };
}

function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of at) {
    out.push(bytes.subarray(prev, c));
    prev = c;
  }
  out.push(bytes.subarray(prev));
  return out;
}

const request = (bytes: Buffer) => feed(new RelayRequestReader(), [bytes]).result;

describe('relay request line', () => {
  test('formatRelayRequest → RelayRequestReader, LF or CRLF, with the bytes after the line', () => {
    const line = formatRelayRequest('device-42', 's3cr3t!');
    assert.equal(line, 'PORTICO-RELAY/1 device-42 s3cr3t!\n');
    assert.deepEqual(request(b(`${line}SSH-2.0`)), { done: true, request: { code: 'device-42', token: 's3cr3t!' }, rest: b('SSH-2.0') });
    assert.deepEqual(request(b('PORTICO-RELAY/1 crm tok\r\n')), { done: true, request: { code: 'crm', token: 'tok' }, rest: b('') });
  });

  test('formatRelayRequest refuses an invalid code or token with a RangeError', () => {
    for (const [code, token] of [
      ['', 't'],
      ['a b', 't'],
      ['x'.repeat(64), 't'],
      ['crm', ''],
      ['crm', 'a b'],
      ['crm', 'a\nb'],
      ['crm', 'x'.repeat(513)],
      ['crm', 'é'],
    ]) {
      assert.throws(() => formatRelayRequest(code!, token!), RangeError, `${code} ${token}`);
    }
    assert.equal(formatRelayRequest('x'.repeat(63), 'y'.repeat(512)).length, 16 + 63 + 1 + 512 + 1);
  });

  test('malformed lines are "bad request"', () => {
    for (const line of [
      'PORTICO-RELAY/1 crm\n',
      'PORTICO-RELAY/1 crm tok extra\n',
      'PORTICO-RELAY/1  crm tok\n',
      'PORTICO-RELAY/1 crm  tok\n',
      'PORTICO-RELAY/1 crm tok \n',
      'PORTICO-RELAY/1 crm \n',
      'PORTICO-RELAY/1 cr*m tok\n',
      `PORTICO-RELAY/1 ${'x'.repeat(64)} tok\n`,
      `PORTICO-RELAY/1 crm ${'t'.repeat(513)}\n`,
      'PORTICO-RELAY/1 crm t\tok\n',
      'PORTICO-RELAY/1 crm tok\r\r\n',
      'PORTICO-RELAY/1 crm t\rok\n',
      'portico-relay/1 crm tok\n',
      'PORTICO-RELAY/2 crm tok\n',
      'PORTICO-RELAY/1\n',
      '\n',
      '\r\n',
    ]) {
      assert.deepEqual(request(b(line)), { done: true, error: 'bad request' }, JSON.stringify(line));
    }
  });

  test('a line that cannot become valid is refused at once, without waiting for its end', () => {
    assert.deepEqual(request(b('GET / HTTP/1.1')), { done: true, error: 'bad request' });
    assert.deepEqual(request(Buffer.from([0x16, 0x03, 0x01])), { done: true, error: 'bad request' }, 'a TLS ClientHello');
    assert.deepEqual(request(b('PORTICO-RELAY/1 crm tok\x00')), { done: true, error: 'bad request' });
    assert.deepEqual(request(b('PORTICO-RELAY/1 cr\xe9')), { done: true, error: 'bad request' });
    assert.deepEqual(request(b('PORTICO-RELAY/1 crm t\rok')), { done: true, error: 'bad request' }, 'a CR not followed by LF');
    assert.deepEqual(request(b('PORTICO-RELAY/1 crm tok')), { done: false });
    assert.deepEqual(request(b('PORTICO-RELAY/1 crm tok\r')), { done: false }, 'a CR may be the first half of CRLF');
  });

  test('the 1024-byte cap: a 1024-byte line is read; the 1024th byte without an end of line is refused', () => {
    // Not valid (the token is too long), but read to its end: the cap is about length only.
    const exact = b(`${RELAY_REQUEST_PREFIX}crm ${'t'.repeat(MAX_RELAY_REQUEST - RELAY_REQUEST_PREFIX.length - 5)}\n`);
    assert.equal(exact.length, MAX_RELAY_REQUEST);
    assert.deepEqual(request(exact), { done: true, error: 'bad request' });
    const exactCrlf = b(`${exact.subarray(0, -2).toString('latin1')}\r\n`);
    assert.deepEqual(request(exactCrlf), { done: true, error: 'bad request' });

    const reader = new RelayRequestReader();
    const long = b(`${RELAY_REQUEST_PREFIX}crm ${'t'.repeat(2000)}`);
    assert.deepEqual(reader.push(long.subarray(0, MAX_RELAY_REQUEST - 1)), { done: false });
    assert.deepEqual(reader.push(long.subarray(MAX_RELAY_REQUEST - 1, MAX_RELAY_REQUEST)), { done: true, error: 'too long' });
    // One huge chunk: refused in that push (nothing beyond the cap is kept).
    assert.deepEqual(request(Buffer.concat([b(RELAY_REQUEST_PREFIX), Buffer.alloc(1 << 20, 0x61)])), { done: true, error: 'too long' });
    // 1023 bytes and a CR: the LF would make 1025.
    assert.deepEqual(request(b(`${exact.subarray(0, -1).toString('latin1')}\r`)), { done: true, error: 'too long' });
  });

  test('pushing after done is a caller bug and throws', () => {
    const reader = new RelayRequestReader();
    reader.push(b('x'));
    assert.throws(() => reader.push(b('y')), /after the request was read/);
  });

  const code = fc.string({ unit: fc.constantFrom(...'abcXYZ019_.-'.split('')), minLength: 1, maxLength: 63 });
  const token = fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 512 });
  const eol = fc.constantFrom('\n', '\r\n');

  test('property: any chunking of a valid request parses identically; rest + later chunks = the bytes after the line', () => {
    fc.assert(
      fc.property(code, token, eol, fc.uint8Array({ maxLength: 100 }), fc.array(fc.nat(), { maxLength: 40 }), (c, t, e, after, cuts) => {
        const line = formatRelayRequest(c, t).replace('\n', e);
        const bytes = Buffer.concat([b(line), Buffer.from(after)]);
        const { result, fed, after: later } = feed(new RelayRequestReader(), split(bytes, cuts));
        assert.equal(result.done, true);
        if (!result.done || !('request' in result)) return assert.fail(JSON.stringify(result));
        assert.deepEqual(result.request, { code: c, token: t });
        assert.deepEqual(Buffer.concat([result.rest, ...later]), Buffer.from(after));
        assert.ok(fed - result.rest.length === line.length);
      }),
      fuzzRuns(2000),
    );
  });

  /** Random bytes, near-valid lines (mutated), and long printable runs. */
  const hostile = fc.oneof(
    fc.uint8Array({ maxLength: 1500 }).map((a) => Buffer.from(a)),
    fc
      .tuple(code, token, eol, fc.nat(), fc.integer({ min: 0, max: 255 }))
      .map(([c, t, e, at, byte]) => {
        const line = b(formatRelayRequest(c, t).replace('\n', e));
        line[at % line.length] = byte;
        return line;
      }),
    fc.tuple(fc.string({ unit: fc.constantFrom('a', ' ', '\r', '\n', '-', '*'), maxLength: 1400 })).map(([s]) => b(`${RELAY_REQUEST_PREFIX}${s}`)),
  );

  test('property: hostile bytes never throw; the verdict is chunking-independent; not done only while under the cap', () => {
    fc.assert(
      fc.property(hostile, fc.array(fc.nat(), { maxLength: 20 }), (bytes, cuts) => {
        const whole = feed(new RelayRequestReader(), [bytes]);
        const chunked = feed(new RelayRequestReader(), split(bytes, cuts));
        const norm = (r: RelayRequestResult) => ('request' in r ? { request: r.request } : r);
        assert.deepEqual(norm(chunked.result), norm(whole.result));
        if (!whole.result.done) {
          assert.ok(bytes.length < MAX_RELAY_REQUEST, `${bytes.length} bytes and still not done`);
          assert.equal(bytes.indexOf(0x0a), -1);
        } else if ('request' in whole.result) {
          // A request read from hostile bytes is exactly a valid line.
          const consumed = bytes.length - whole.result.rest.length;
          const line = bytes.subarray(0, consumed).toString('latin1');
          const r = whole.result.request;
          assert.ok(line === formatRelayRequest(r.code, r.token) || line === formatRelayRequest(r.code, r.token).replace('\n', '\r\n'));
        }
      }),
      fuzzRuns(2000),
    );
  });

  test('property: a line of printable bytes without an end of line is refused exactly at byte 1024', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3000 }), (n) => {
        const bytes = Buffer.concat([b(RELAY_REQUEST_PREFIX), Buffer.alloc(n, 0x41)]);
        const reader = new RelayRequestReader();
        let result: RelayRequestResult = { done: false };
        let at = 0;
        while (at < bytes.length && !result.done) result = reader.push(bytes.subarray(at, ++at));
        if (bytes.length < MAX_RELAY_REQUEST) assert.deepEqual(result, { done: false });
        else {
          assert.deepEqual(result, { done: true, error: 'too long' });
          assert.equal(at, MAX_RELAY_REQUEST);
        }
      }),
      fuzzRuns(300),
    );
  });
});

describe('relay status line', () => {
  const status = (bytes: Buffer) => feed(new RelayStatusReader(), [bytes]).result;

  test('every status of the table round-trips, with the service bytes after it', () => {
    for (const code of Object.keys(RELAY_STATUS).map(Number) as RelayStatusCode[]) {
      const line = formatRelayStatus(code);
      assert.equal(line, `${code} ${RELAY_STATUS[code]}\n`);
      assert.deepEqual(status(b(`${line}data`)), { done: true, status: code, reason: RELAY_STATUS[code], rest: b('data') });
    }
    assert.deepEqual(status(b('200 ok\r\n')), { done: true, status: 200, reason: 'ok', rest: b('') });
    assert.deepEqual(status(b('418 \n')), { done: true, status: 418, reason: '', rest: b('') });
  });

  test('malformed status lines are "bad status", at the first impossible byte when possible', () => {
    for (const line of ['20 ok\n', '2000 ok\n', '200ok\n', '600 x\n', '099 x\n', 'abc\n', '200 o\tk\n', '\n', 'SSH-2.0-OpenSSH']) {
      assert.deepEqual(status(b(line)), { done: true, error: 'bad status' }, JSON.stringify(line));
    }
    assert.deepEqual(status(b('200 ok')), { done: false });
  });

  test('the 256-byte cap', () => {
    const reader = new RelayStatusReader();
    const long = b(`200 ${'x'.repeat(400)}`);
    assert.deepEqual(reader.push(long.subarray(0, MAX_RELAY_STATUS - 1)), { done: false });
    assert.deepEqual(reader.push(long.subarray(MAX_RELAY_STATUS - 1)), { done: true, error: 'too long' });
    const exact = b(`200 ${'x'.repeat(MAX_RELAY_STATUS - 5)}\n`);
    assert.equal(exact.length, MAX_RELAY_STATUS);
    assert.equal((status(exact) as { status: number }).status, 200);
  });

  test('property: hostile bytes never throw, verdict chunking-independent, not done only under the cap', () => {
    const hostile = fc.oneof(
      fc.uint8Array({ maxLength: 400 }).map((a) => Buffer.from(a)),
      fc.string({ unit: fc.constantFrom('2', '0', '4', ' ', 'o', 'k', '\r', '\n'), maxLength: 300 }).map(b),
    );
    fc.assert(
      fc.property(hostile, fc.array(fc.nat(), { maxLength: 20 }), (bytes, cuts) => {
        const whole = feed(new RelayStatusReader(), [bytes]).result;
        const chunked = feed(new RelayStatusReader(), split(bytes, cuts)).result;
        const norm = (r: RelayStatusResult) => ('status' in r ? { status: r.status, reason: r.reason } : r);
        assert.deepEqual(norm(chunked), norm(whole));
        if (!whole.done) assert.ok(bytes.length < MAX_RELAY_STATUS);
      }),
      fuzzRuns(2000),
    );
  });
});
