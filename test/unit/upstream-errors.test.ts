import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { errors } from 'undici';
import { GatewayError, fromUpstreamError, isConnectFailure } from '../../src/errors.js';

const withCode = (code: string, message = code): Error => Object.assign(new Error(message), { code });

describe('fromUpstreamError: the class of each upstream failure', () => {
  test('every llhttp parse error is UPSTREAM_PROTOCOL_ERROR, with or without its HPE_ code', () => {
    for (const code of ['HPE_INVALID_CHUNK_SIZE', 'HPE_CR_EXPECTED', 'HPE_LF_EXPECTED', 'HPE_UNEXPECTED_CONTENT_LENGTH', 'HPE_INVALID_HEADER_TOKEN', 'HPE_STRICT']) {
      assert.equal(fromUpstreamError(withCode(code)).code, 'UPSTREAM_PROTOCOL_ERROR', code);
    }
    // undici builds some parser errors without a code (e.g. an invalid chunk size in its JS parser wrapper).
    const noCode = new errors.HTTPParserError('Response does not match the HTTP/1.1 protocol (Invalid character in chunk size)');
    assert.equal(fromUpstreamError(noCode).code, 'UPSTREAM_PROTOCOL_ERROR');
  });

  test('a connection lost after an HTTP/1.1 response head cut the body short: UPSTREAM_PROTOCOL_ERROR; before it: UPSTREAM_RESET', () => {
    for (const code of ['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']) {
      assert.equal(fromUpstreamError(withCode(code), true).code, 'UPSTREAM_PROTOCOL_ERROR', code);
      assert.equal(fromUpstreamError(withCode(code), false).code, 'UPSTREAM_RESET', code);
    }
    // A body timeout stays a timeout.
    assert.equal(fromUpstreamError(withCode('UND_ERR_BODY_TIMEOUT'), true).code, 'UPSTREAM_RESPONSE_TIMEOUT');
  });

  test('connect failures (and only they) may fail over', () => {
    for (const code of ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT']) {
      assert.equal(isConnectFailure(fromUpstreamError(withCode(code))), true, code);
    }
    for (const code of ['ECONNRESET', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT', 'HPE_INVALID_CHUNK_SIZE']) {
      assert.equal(isConnectFailure(fromUpstreamError(withCode(code))), false, code);
    }
    assert.equal(isConnectFailure(new GatewayError('DOWNSTREAM_ABORTED')), false);
  });
});
