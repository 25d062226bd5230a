import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { authorityHostname, parseAuthority, requestAuthority, type AuthorityFields } from '../../src/http/host.js';
import { absoluteAuthority } from '../../src/http/path.js';
import { parserError, transferCodingError } from '../../src/http/framing.js';

describe('parseAuthority (RFC 3986 §3.2.2–3.2.3, RFC 9110 §7.2)', () => {
  it('accepts names, IPv4, bracketed IPv6 and ports, and normalizes the host', () => {
    assert.deepEqual(parseAuthority('example.com'), { hostname: 'example.com', port: -1 });
    assert.deepEqual(parseAuthority('API.Example.COM:8080'), { hostname: 'api.example.com', port: 8080 });
    assert.deepEqual(parseAuthority('example.com.'), { hostname: 'example.com', port: -1 });
    assert.deepEqual(parseAuthority('example.com.:443'), { hostname: 'example.com', port: 443 });
    assert.deepEqual(parseAuthority('10.0.0.1:0'), { hostname: '10.0.0.1', port: 0 });
    assert.deepEqual(parseAuthority('[::1]'), { hostname: '::1', port: -1 });
    assert.deepEqual(parseAuthority('[2001:DB8::1]:65535'), { hostname: '2001:db8::1', port: 65535 });
    assert.deepEqual(parseAuthority('svc_name.internal~x'), { hostname: 'svc_name.internal~x', port: -1 });
    assert.deepEqual(parseAuthority('a:00080'), { hostname: 'a', port: 80 });
    assert.deepEqual(parseAuthority('localhost'), { hostname: 'localhost', port: -1 });
  });

  it('refuses lists, userinfo, paths, spaces, controls, bad ports and odd spellings', () => {
    for (const bad of [
      '',
      'a, b',
      'a,b',
      'user@host',
      'user:pw@host',
      'host/path',
      'host?q',
      'host#f',
      'ho st',
      ' host',
      'host\t',
      'host\u0000',
      'host\r\nx: y',
      'host:',
      'host:65536',
      'host:99999',
      'host:123456',
      'host:-1',
      'host:+80',
      'host:8a',
      'host:80:80',
      '::1',
      '[::1',
      '[::1]x',
      '[::1]:',
      '[fe80::1%25eth0]',
      '[v1.fe]',
      '[1.2.3.4]',
      ':80',
      '.',
      '.example.com',
      'a..b',
      'example.com..',
      'internal%2etest',
      'a;b',
      'a=b',
      "a'b",
      'a*b',
      'a(b)',
      'exämple.com',
      'a\\b',
    ]) {
      assert.equal(parseAuthority(bad), undefined, JSON.stringify(bad));
      assert.equal(authorityHostname(bad), undefined, JSON.stringify(bad));
    }
  });

  it('authorityHostname agrees with parseAuthority on any string', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'aZ09.-_~:[]@/, %1fx'.split(''), '\u0000', 'é') }), (s) => {
        const full = parseAuthority(s);
        assert.equal(authorityHostname(s), full?.hostname);
        if (full !== undefined) {
          assert.ok(!/[\s,@/?#%]/.test(full.hostname), s);
          assert.ok(full.port >= -1 && full.port <= 65535, s);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('absoluteAuthority (RFC 9112 §3.2.2)', () => {
  it('is the authority of an http(s) absolute-form target, as written', () => {
    assert.equal(absoluteAuthority('http://Internal.Test:8080/x?y'), 'Internal.Test:8080');
    assert.equal(absoluteAuthority('HTTPS://h'), 'h');
    assert.equal(absoluteAuthority('http://h?q=1'), 'h');
    assert.equal(absoluteAuthority('http:///x'), '');
    assert.equal(absoluteAuthority('http://u@h/'), 'u@h');
    assert.equal(absoluteAuthority('http://h#@evil/'), 'h#@evil', 'a fragment stays in, and makes it invalid');
  });

  it('is undefined for origin-form, asterisk-form, authority-form and other schemes', () => {
    for (const t of ['/x', '/', '*', 'h:443', 'ftp://h/', 'http:/h', '']) assert.equal(absoluteAuthority(t), undefined, t);
  });
});

describe('requestAuthority: Host rules (RFC 9112 §3.2, RFC 9113 §8.3.1)', () => {
  const h1 = (f: Partial<AuthorityFields>): ReturnType<typeof requestAuthority> =>
    requestAuthority({ host: undefined, hostCount: f.host === undefined ? 0 : 1, pseudo: undefined, target: undefined, requireHost: true, h2: false, ...f });
  const h2 = (f: Partial<AuthorityFields>): ReturnType<typeof requestAuthority> =>
    requestAuthority({ host: undefined, hostCount: f.host === undefined ? 0 : 1, pseudo: undefined, target: undefined, requireHost: false, h2: true, ...f });

  it('HTTP/1.1: Host as sent, routed by its normalized host', () => {
    assert.deepEqual(h1({ host: 'Public.Test:8080' }), { authority: 'Public.Test:8080', hostname: 'public.test' });
  });

  it('HTTP/1.1: an absolute-form target replaces Host', () => {
    assert.deepEqual(h1({ host: 'public.test', target: 'internal.test' }), { authority: 'internal.test', hostname: 'internal.test' });
  });

  it('HTTP/1.1: refuses two Host lines, no Host, an invalid Host or target authority', () => {
    assert.equal(h1({ host: 'a', hostCount: 2 }), 'more than one Host header');
    assert.equal(h1({}), 'missing Host header');
    assert.equal(h1({ target: 'a' }), 'missing Host header', 'absolute-form still needs Host');
    assert.equal(h1({ host: 'a, b' }), 'invalid Host header');
    assert.equal(h1({ host: 'bad host', target: 'a' }), 'invalid Host header');
    assert.equal(h1({ host: 'a', target: '' }), 'invalid authority in the request target');
    assert.equal(h1({ host: 'a', target: 'u@b' }), 'invalid authority in the request target');
  });

  it('HTTP/1.1: an empty Host is valid and names no host; HTTP/1.0 needs none', () => {
    assert.deepEqual(h1({ host: '' }), { authority: '', hostname: '' });
    assert.deepEqual(h1({ requireHost: false }), { authority: undefined, hostname: '' });
  });

  it('HTTP/2: :authority, else Host; both must name the same host and port', () => {
    assert.deepEqual(h2({ pseudo: 'a.test' }), { authority: 'a.test', hostname: 'a.test' });
    assert.deepEqual(h2({ host: 'a.test' }), { authority: 'a.test', hostname: 'a.test' });
    assert.deepEqual(h2({ pseudo: 'a.test:443', host: 'A.TEST.:443' }), { authority: 'a.test:443', hostname: 'a.test' });
    assert.equal(h2({ pseudo: 'a.test', host: 'b.test' }), 'Host and :authority differ');
    assert.equal(h2({ pseudo: 'a.test', host: 'a.test:443' }), 'Host and :authority differ');
    assert.equal(h2({ pseudo: 'a.test', host: 'a.test', hostCount: 2 }), 'more than one Host header');
    assert.equal(h2({ pseudo: 'u@a.test' }), 'invalid :authority');
    assert.equal(h2({ pseudo: '' }), 'invalid :authority');
    assert.equal(h2({}), 'missing :authority and Host');
    assert.equal(h2({ host: '' }), 'invalid Host header');
  });
});

describe('transferCodingError (RFC 9112 §6.1, §7)', () => {
  it('accepts chunked alone, in any case, with empty list elements', () => {
    for (const v of ['chunked', 'Chunked', ' chunked ', ', chunked', 'chunked,']) assert.equal(transferCodingError(v), null, v);
  });

  it('answers 501 for any other coding, alone or with chunked', () => {
    for (const v of ['xchunked', 'gzip', 'chunked, gzip', 'gzip, chunked', 'deflate', 'compress, chunked', 'identity', 'gzip;level=1, chunked']) {
      const err = transferCodingError(v);
      assert.equal(err?.code, 'UNSUPPORTED_TRANSFER_CODING', v);
      assert.equal(err?.status, 501, v);
    }
  });

  it('answers 400 for invalid values, chunked twice or with parameters, or no coding', () => {
    for (const v of ['chunked, chunked', 'chunked;x=1', 'chu nked', 'chunked\u0001', '"chunked"', '', ' , ', 'gzip/1']) {
      const err = transferCodingError(v);
      assert.equal(err?.code, 'BAD_FRAMING', JSON.stringify(v));
      assert.equal(err?.status, 400, JSON.stringify(v));
    }
  });
});

describe('parserError: node:http parse errors as gateway errors', () => {
  const hpe = (code: string, reason: string, rawPacket?: string) => Object.assign(new Error(reason), { code, reason, rawPacket: rawPacket === undefined ? undefined : Buffer.from(rawPacket, 'latin1') });

  it('a parse error in a body is BAD_FRAMING with the parser code', () => {
    for (const code of ['HPE_INVALID_CHUNK_SIZE', 'HPE_STRICT', 'HPE_CHUNK_EXTENSIONS_OVERFLOW', 'HPE_CR_EXPECTED', 'HPE_INVALID_HEADER_TOKEN']) {
      const err = parserError(hpe(code, 'why'), true);
      assert.equal(err.code, 'BAD_FRAMING');
      assert.equal(err.status, 400);
      assert.match(err.message, new RegExp(`\\(${code}\\)`));
    }
  });

  it('in a head: framing headers are BAD_FRAMING, the rest BAD_REQUEST; sizes and timeouts keep their status', () => {
    assert.equal(parserError(hpe('HPE_INVALID_CONTENT_LENGTH', 'x'), false).code, 'BAD_FRAMING');
    assert.equal(parserError(hpe('HPE_UNEXPECTED_CONTENT_LENGTH', 'x'), false).code, 'BAD_FRAMING');
    assert.equal(parserError(hpe('HPE_INVALID_METHOD', 'x'), false).code, 'BAD_REQUEST');
    assert.equal(parserError(hpe('HPE_HEADER_OVERFLOW', 'x'), false).status, 431);
    const timeout = Object.assign(new Error('t'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' });
    assert.equal(parserError(timeout, false).status, 408);
    assert.equal(parserError(timeout, true).status, 408);
    assert.match(parserError(timeout, true).message, /body/);
  });

  it('an invalid Transfer-Encoding head is 501 when it names a coding other than chunked', () => {
    const head = (te: string) => `POST / HTTP/1.1\r\nHost: x\r\n${te}\r\n\r\n0\r\n\r\n`;
    assert.equal(parserError(hpe('HPE_INVALID_TRANSFER_ENCODING', 'x', head('Transfer-Encoding: chunked, gzip')), false).status, 501);
    assert.equal(parserError(hpe('HPE_INVALID_TRANSFER_ENCODING', 'x', head('transfer-encoding:gzip\r\nTransfer-Encoding: chunked')), false).status, 501);
    assert.equal(parserError(hpe('HPE_INVALID_TRANSFER_ENCODING', 'x', head('Transfer-Encoding: chunked, chunked')), false).code, 'BAD_FRAMING');
    assert.equal(parserError(hpe('HPE_INVALID_TRANSFER_ENCODING', 'x'), false).code, 'BAD_FRAMING');
  });
});
