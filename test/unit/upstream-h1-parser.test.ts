import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_HEADER_SIZE } from '../../src/upstream/h1/parser.js';
import { requestHead } from '../../src/upstream/h1/request.js';
import { parseChunks, splitAt } from '../helpers/h1-parse.js';
import { Readable } from 'node:stream';
import { fromUpstreamError } from '../../src/errors.js';

const b = (s: string) => Buffer.from(s, 'latin1');

describe('upstream HTTP/1.1 response parser: valid responses', () => {
  test('Content-Length body: head, raw headers as received, body, keep-alive', () => {
    const r = parseChunks([b('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-A:  b c \r\n\r\nhello')]);
    assert.equal(r.error, '');
    assert.equal(r.status, 200);
    assert.equal(r.reason, 'OK');
    assert.deepEqual(r.headers, ['Content-Type', 'text/plain', 'Content-Length', '5', 'X-A', 'b c']);
    assert.equal(r.body, 'hello');
    assert.equal(r.done, true);
    assert.equal(r.keepAlive, true);
  });

  test('a Content-Length body split anywhere arrives with its last part as its own chunk', () => {
    const r = parseChunks([b('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel'), b('lo'), b('world')]);
    assert.deepEqual(
      r.chunks.map((c) => c.toString()),
      ['hel', 'lo', 'world'],
    );
    assert.equal(r.done, true);
  });

  test('body chunks are views of the input, not copies', () => {
    const input = b('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello');
    const r = parseChunks([input]);
    assert.equal(r.chunks[0]!.buffer, input.buffer);
  });

  test('chunked body with extensions and trailers', () => {
    const r = parseChunks([b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n6 ; x="y z"\r\n world\r\n0\r\nX-Sum: 1\r\nX-Other: two\r\n\r\n')]);
    assert.equal(r.error, '');
    assert.equal(r.body, 'hello world');
    assert.deepEqual(r.trailers, ['X-Sum', '1', 'X-Other', 'two']);
    assert.equal(r.done, true);
    assert.equal(r.keepAlive, true);
  });

  test('upper-case hex chunk sizes', () => {
    const r = parseChunks([b('HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n')]);
    assert.equal(r.body, '0123456789');
    assert.equal(r.done, true);
  });

  test('HEAD, 204 and 304 responses have no body even with Content-Length', () => {
    for (const [text, head] of [
      ['HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n', true],
      ['HTTP/1.1 204 No Content\r\nContent-Length: 100\r\n\r\n', false],
      ['HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n', false],
    ] as const) {
      const r = parseChunks([b(`${text}HTTP/1.1`)], { head });
      assert.equal(r.done, true, text);
      assert.equal(r.body, '', text);
      assert.equal(r.rest, 'HTTP/1.1', `${text}: the next bytes are not this response's`);
    }
  });

  test('1xx interim responses are dropped; the final one is handed on', () => {
    const r = parseChunks([b('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok')]);
    assert.equal(r.status, 201);
    assert.deepEqual(r.headers, ['Content-Length', '2']);
    assert.equal(r.body, 'ok');
  });

  test('no framing: the body runs to the end of the stream, and the connection is not reused', () => {
    const r = parseChunks([b('HTTP/1.1 200 OK\r\n\r\nsome'), b(' bytes')], { eof: true });
    assert.equal(r.body, 'some bytes');
    assert.equal(r.done, true);
    assert.equal(r.keepAlive, false);
  });

  test('HTTP/1.0: keep-alive only when asked for; Connection: close ends it; the Keep-Alive hint is read', () => {
    assert.equal(parseChunks([b('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n')]).keepAlive, false);
    assert.equal(parseChunks([b('HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n')]).keepAlive, true);
    assert.equal(parseChunks([b('HTTP/1.1 200 OK\r\nConnection: foo, close\r\nContent-Length: 0\r\n\r\n')]).keepAlive, false);
    assert.equal(parseChunks([b('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n')]).keepAliveHintMs, 5000);
  });

  test('an empty reason phrase, with or without its space', () => {
    assert.equal(parseChunks([b('HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n')]).status, 200);
    assert.equal(parseChunks([b('HTTP/1.1 599 \r\nContent-Length: 0\r\n\r\n')]).status, 599);
  });

  test('duplicate Content-Length fields that agree are one length', () => {
    const r = parseChunks([b('HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok')]);
    assert.equal(r.body, 'ok');
  });

  test('a head as large as the limit is read; the trailer section has its own limit', () => {
    const prefix = 'HTTP/1.1 200 OK\r\nX-Big: ';
    const suffix = '\r\nContent-Length: 0\r\n\r\n';
    const fill = 'a'.repeat(MAX_HEADER_SIZE - prefix.length - suffix.length);
    assert.equal(parseChunks([b(prefix + fill + suffix)]).done, true);
    assert.equal(parseChunks([b(`${prefix}${fill}a${suffix}`)]).error, 'HPE_HEADER_OVERFLOW');
  });
});

/** Each class of response the parser must refuse, with the code it gives. */
const REFUSED: [string, string, string][] = [
  ['not HTTP', 'HTTX/1.1 200 OK\r\n\r\n', 'HPE_INVALID_CONSTANT'],
  ['HTTP/2.0 status line', 'HTTP/2.0 200 OK\r\n\r\n', 'HPE_INVALID_VERSION'],
  ['HTTP/1.2', 'HTTP/1.2 200 OK\r\n\r\n', 'HPE_INVALID_VERSION'],
  ['two spaces', 'HTTP/1.1  200 OK\r\n\r\n', 'HPE_INVALID_STATUS'],
  ['status with letters', 'HTTP/1.1 2x0 OK\r\n\r\n', 'HPE_INVALID_STATUS'],
  ['status below 100', 'HTTP/1.1 099 OK\r\n\r\n', 'HPE_INVALID_STATUS'],
  ['four-digit status', 'HTTP/1.1 2000 OK\r\n\r\n', 'HPE_INVALID_STATUS'],
  ['control byte in the reason', 'HTTP/1.1 200 O\x01K\r\n\r\n', 'HPE_INVALID_STATUS'],
  ['bare LF after the status line', 'HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n', 'HPE_CR_EXPECTED'],
  ['bare LF after a field', 'HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n', 'HPE_CR_EXPECTED'],
  ['bare LF ending the head', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n', 'HPE_CR_EXPECTED'],
  ['bare CR in a value', 'HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
  ['obs-fold', 'HTTP/1.1 200 OK\r\nX-A: a\r\n  b\r\nContent-Length: 0\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
  ['space before the colon', 'HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
  ['name not a token', 'HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
  ['empty name', 'HTTP/1.1 200 OK\r\n: x\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
  ['no colon', 'HTTP/1.1 200 OK\r\nX-A\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
  ['NUL in a value', 'HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
  ['DEL in a value', 'HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
  ['Content-Length with a sign', 'HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello', 'HPE_INVALID_CONTENT_LENGTH'],
  ['Content-Length list', 'HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello', 'HPE_INVALID_CONTENT_LENGTH'],
  ['empty Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n', 'HPE_INVALID_CONTENT_LENGTH'],
  ['Content-Length too large', 'HTTP/1.1 200 OK\r\nContent-Length: 9999999999999999\r\n\r\n', 'HPE_INVALID_CONTENT_LENGTH'],
  ['Content-Length values disagree', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!', 'HPE_INVALID_CONTENT_LENGTH'],
  ['Content-Length and chunked', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 'HPE_UNEXPECTED_CONTENT_LENGTH'],
  ['chunked then Content-Length', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n', 'HPE_UNEXPECTED_CONTENT_LENGTH'],
  ['a coding other than chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n', 'HPE_INVALID_TRANSFER_ENCODING'],
  ['chunked not last', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', 'HPE_INVALID_TRANSFER_ENCODING'],
  ['chunked twice', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n', 'HPE_INVALID_TRANSFER_ENCODING'],
  ['bad chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n', 'HPE_INVALID_CHUNK_SIZE'],
  ['chunk size with a sign', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n', 'HPE_INVALID_CHUNK_SIZE'],
  ['chunk size too long', `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${'f'.repeat(14)}\r\n`, 'HPE_INVALID_CHUNK_SIZE'],
  ['chunk size then bare LF', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n', 'HPE_INVALID_CHUNK_SIZE'],
  ['chunk data not followed by CRLF', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n', 'HPE_CR_EXPECTED'],
  ['control byte in a chunk extension', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a\x01\r\nhello\r\n', 'HPE_INVALID_CHUNK_EXTENSIONS'],
  ['endless chunk extension', `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;${'a'.repeat(5000)}`, 'HPE_CHUNK_EXTENSIONS_OVERFLOW'],
  ['obs-fold in the trailers', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-A: 1\r\n 2\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
  ['101 to a request that asked for no upgrade', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n', 'HPE_UNEXPECTED_UPGRADE'],
  ['endless head', `HTTP/1.1 200 OK\r\nX-A: ${'a'.repeat(MAX_HEADER_SIZE)}`, 'HPE_HEADER_OVERFLOW'],
  ['endless trailers', `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-A: ${'a'.repeat(MAX_HEADER_SIZE)}`, 'HPE_HEADER_OVERFLOW'],
];

describe('upstream HTTP/1.1 response parser: refused responses', () => {
  for (const [name, text, code] of REFUSED) {
    test(`${name} → ${code}, whole or byte by byte`, () => {
      assert.equal(parseChunks([b(text)]).error, code);
      const bytes = b(text);
      assert.equal(parseChunks(splitAt(bytes, [...bytes.keys()])).error, code);
    });
  }

  test('a stream that ends inside a framed body is not a complete response', () => {
    assert.equal(parseChunks([b('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello')], { eof: true }).error, 'EOF');
    assert.equal(parseChunks([b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel')], { eof: true }).error, 'EOF');
    assert.equal(parseChunks([b('HTTP/1.1 200 OK\r\nContent-Le')], { eof: true }).error, 'EOF');
  });
});

describe('upstream HTTP/1.1 request head', () => {
  test('method, path, headers in order; a Buffer body gets its Content-Length; a stream is chunked', () => {
    const h = requestHead({ method: 'POST', path: '/a?b=1', headers: ['host', 'x', 'x-a', 'b'], body: Buffer.from('hello') });
    assert.ok(!(h instanceof Error));
    assert.equal(h.text, 'POST /a?b=1 HTTP/1.1\r\nhost: x\r\nx-a: b\r\ncontent-length: 5\r\n\r\n');
    const s = requestHead({ method: 'PUT', path: '/', headers: ['host', 'x'], body: Readable.from([]) });
    assert.ok(!(s instanceof Error));
    assert.equal(s.text, 'PUT / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n');
    assert.equal(s.contentLength, -1);
  });

  test('no body: no framing header is added', () => {
    const h = requestHead({ method: 'POST', path: '/', headers: ['host', 'x'], body: null });
    assert.ok(!(h instanceof Error));
    assert.equal(h.text, 'POST / HTTP/1.1\r\nhost: x\r\n\r\n');
  });

  test('a given Content-Length frames a stream body, and must match a Buffer body', () => {
    const s = requestHead({ method: 'PUT', path: '/', headers: ['Content-Length', '3'], body: Readable.from([]) });
    assert.ok(!(s instanceof Error));
    assert.equal(s.contentLength, 3);
    assert.ok(!s.text.includes('chunked'));
    const bad = requestHead({ method: 'PUT', path: '/', headers: ['content-length', '3'], body: Buffer.from('hello') });
    assert.ok(bad instanceof Error);
    assert.equal((bad as Error & { code: string }).code, 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
  });

  test('CR, LF or NUL anywhere, a space in the path, or a Transfer-Encoding header: refused', () => {
    const cases: [string, string, string[]][] = [
      ['GET', '/', ['x-a', 'a\r\nx-injected: 1']],
      ['GET', '/', ['x-a', 'a\nb']],
      ['GET', '/', ['x-a', 'a\rb']],
      ['GET', '/', ['x-a', 'a\0b']],
      ['GET', '/', ['x-a\r\nx-b', 'c']],
      ['GET', '/a b', []],
      ['GET', '/a\r\nb', []],
      ['GET', '/', ['transfer-encoding', 'chunked']],
      ['GET', '/', ['content-length', '-1']],
    ];
    for (const [method, path, headers] of cases) {
      const h = requestHead({ method: method as 'GET', path, headers, body: null });
      assert.ok(h instanceof Error, JSON.stringify([path, headers]));
    }
  });
});

describe('upstream HTTP/1.1 client errors map to gateway errors', () => {
  test('every refused response class is UPSTREAM_PROTOCOL_ERROR; an unwritable request is INTERNAL, not retried', () => {
    for (const [name, text] of REFUSED) {
      const r = parseChunks([b(text)]);
      const e = fromUpstreamError(Object.assign(new Error(r.error), { code: r.error }));
      assert.equal(e.code, 'UPSTREAM_PROTOCOL_ERROR', name);
    }
    const bad = requestHead({ method: 'GET', path: '/', headers: ['x-a', 'a\r\nb'], body: null });
    const e = fromUpstreamError(bad);
    assert.equal(e.code, 'INTERNAL');
    assert.equal(e.retryable, false);
    assert.match(e.message, /cannot be written/);
  });
});
