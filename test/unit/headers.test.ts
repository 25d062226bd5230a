import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { peerAddress, readInbound } from '../../src/http/forwarded.js';
import { connectionTokens, isHopByHop } from '../../src/http/hop-by-hop.js';
import { IpSet, parseCidr } from '../../src/net/ip-set.js';
import { headers } from '../../src/middlewares/headers.js';
import { type RequestContext, type ResponseHead, MiddlewareChain, type Middleware } from '../../src/snapshot/snapshot.js';
import { rewrite } from '../../src/middlewares/rewrite.js';

/** A request as readInbound sees it: peer address, raw headers and Node's joined header object. */
function req(remoteAddress: string | undefined, rawHeaders: string[]): IncomingMessage {
  const h: Record<string, string> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const k = rawHeaders[i]!.toLowerCase();
    if (k === 'host' && h[k] !== undefined) continue;
    h[k] = h[k] === undefined ? rawHeaders[i + 1]! : `${h[k]}, ${rawHeaders[i + 1]!}`;
  }
  return { socket: { remoteAddress }, headers: h, rawHeaders } as unknown as IncomingMessage;
}

/** Every value of `name` (case-insensitive) in a flat header list. */
function values(list: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < list.length; i += 2) if (list[i]!.toLowerCase() === name) out.push(list[i + 1]!);
  return out;
}

function names(list: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < list.length; i += 2) out.push(list[i]!.toLowerCase());
  return out;
}

const NONE = new IpSet([]);
const TEN = new IpSet(['10.0.0.0/8']);

describe('hop-by-hop', () => {
  it('isHopByHop knows the standard and legacy names', () => {
    for (const n of ['connection', 'proxy-connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']) {
      assert.equal(isHopByHop(n), true, n);
    }
    for (const n of ['content-type', 'content-length', 'host', 'authorization', 'x-forwarded-for', 'trailers']) {
      assert.equal(isHopByHop(n), false, n);
    }
  });

  it('connectionTokens lists named headers, lower-cased, without close/keep-alive', () => {
    assert.equal(connectionTokens(undefined), null);
    assert.equal(connectionTokens('close'), null);
    assert.equal(connectionTokens('Keep-Alive'), null);
    assert.equal(connectionTokens(' , '), null);
    assert.deepEqual(connectionTokens('keep-alive, X-Secret, Upgrade'), new Set(['x-secret', 'upgrade']));
    assert.deepEqual(connectionTokens(['close, X-A', 'x-b']), new Set(['x-a', 'x-b']));
  });
});

describe('readInbound: hop-by-hop and Host', () => {
  it('drops hop-by-hop headers, those named in Connection, Host and X-Real-IP', () => {
    const view = readInbound(
      req('203.0.113.9', [
        'Host', 'example.com',
        'Connection', 'keep-alive, X-Secret',
        'X-Secret', 's',
        'Keep-Alive', 'timeout=5',
        'Proxy-Connection', 'keep-alive',
        'Transfer-Encoding', 'chunked',
        'Upgrade', 'websocket',
        'Proxy-Authorization', 'Basic eA==',
        'Trailer', 'X-T',
        'X-Real-IP', '1.1.1.1',
        'Accept', '*/*',
        'X-Custom', '1',
        'X-Custom', '2',
      ]),
      NONE,
      false,
    );
    assert.deepEqual(names(view.headers), ['accept', 'x-custom', 'x-custom', 'x-forwarded-for', 'x-forwarded-proto', 'x-real-ip', 'x-forwarded-host']);
    assert.deepEqual(values(view.headers, 'x-custom'), ['1', '2']);
    assert.deepEqual(values(view.headers, 'x-real-ip'), ['203.0.113.9']);
    assert.deepEqual(values(view.headers, 'x-forwarded-host'), ['example.com']);
    assert.equal(values(view.headers, 'host').length, 0);
  });

  it('keeps the original name case of end-to-end headers', () => {
    const view = readInbound(req('203.0.113.9', ['Host', 'h', 'X-Custom-Thing', 'v']), NONE, false);
    assert.equal(view.headers[0], 'X-Custom-Thing');
    assert.equal(view.headers[1], 'v');
  });

  it('keeps "TE: trailers" but drops other TE values', () => {
    const kept = readInbound(req('203.0.113.9', ['Host', 'h', 'TE', 'trailers']), NONE, false);
    assert.deepEqual(values(kept.headers, 'te'), ['trailers']);
    const dropped = readInbound(req('203.0.113.9', ['Host', 'h', 'TE', 'gzip']), NONE, false);
    assert.deepEqual(values(dropped.headers, 'te'), []);
    const mixed = readInbound(req('203.0.113.9', ['Host', 'h', 'TE', 'trailers, deflate']), NONE, false);
    assert.deepEqual(values(mixed.headers, 'te'), []);
  });

  it('keeps "TE: trailers" when Connection names TE, as RFC 9110 §10.1.4 requires senders of TE to do', () => {
    const kept = readInbound(req('203.0.113.9', ['Host', 'h', 'Connection', 'TE', 'TE', 'trailers']), NONE, false);
    assert.deepEqual(values(kept.headers, 'te'), ['trailers']);
    assert.deepEqual(values(kept.headers, 'connection'), []);
  });

  it('omits X-Forwarded-Host when there is no Host', () => {
    const view = readInbound(req('203.0.113.9', []), NONE, false);
    assert.deepEqual(values(view.headers, 'x-forwarded-host'), []);
  });
});

describe('readInbound: Host and body framing', () => {
  it('reports the Host header as sent', () => {
    assert.equal(readInbound(req('203.0.113.9', ['Host', 'API.example.com:8080']), NONE, false).host, 'API.example.com:8080');
    assert.equal(readInbound(req('203.0.113.9', []), NONE, false).host, undefined);
  });

  it('Content-Length: kept, parsed, and a body only when > 0', () => {
    const five = readInbound(req('203.0.113.9', ['Host', 'h', 'Content-Length', '5']), NONE, false);
    assert.equal(five.hasBody, true);
    assert.equal(five.contentLength, 5);
    assert.deepEqual(values(five.headers, 'content-length'), ['5']);
    const zero = readInbound(req('203.0.113.9', ['Host', 'h', 'Content-Length', '0']), NONE, false);
    assert.equal(zero.hasBody, false);
    assert.equal(zero.contentLength, 0);
    const none = readInbound(req('203.0.113.9', ['Host', 'h']), NONE, false);
    assert.equal(none.hasBody, false);
    assert.equal(none.contentLength, -1);
  });

  it('Transfer-Encoding means a body and is not forwarded; with Content-Length too, Content-Length goes', () => {
    const chunked = readInbound(req('203.0.113.9', ['Host', 'h', 'Transfer-Encoding', 'chunked']), NONE, false);
    assert.equal(chunked.hasBody, true);
    assert.deepEqual(values(chunked.headers, 'transfer-encoding'), []);
    const both = readInbound(req('203.0.113.9', ['Host', 'h', 'Content-Length', '5', 'Transfer-Encoding', 'chunked']), NONE, false);
    assert.equal(both.hasBody, true);
    assert.equal(both.contentLength, -1);
    assert.deepEqual(values(both.headers, 'content-length'), []);
  });
});

describe('readInbound: forwarding headers', () => {
  const forged = ['Host', 'public.example.com', 'X-Forwarded-For', '1.2.3.4', 'X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'evil.example'];

  it('an untrusted peer: client forwarding headers are discarded and the peer is the client', () => {
    for (const trusted of [NONE, TEN]) {
      const view = readInbound(req('203.0.113.9', forged), trusted, false);
      assert.equal(view.clientIp, '203.0.113.9');
      assert.deepEqual(values(view.headers, 'x-forwarded-for'), ['203.0.113.9']);
      assert.deepEqual(values(view.headers, 'x-forwarded-proto'), ['http']);
      assert.deepEqual(values(view.headers, 'x-forwarded-host'), ['public.example.com']);
      assert.deepEqual(values(view.headers, 'x-real-ip'), ['203.0.113.9']);
    }
  });

  it('X-Forwarded-Proto reflects TLS when not taken from a trusted peer', () => {
    const view = readInbound(req('203.0.113.9', ['Host', 'h', 'X-Forwarded-Proto', 'http']), NONE, true);
    assert.deepEqual(values(view.headers, 'x-forwarded-proto'), ['https']);
  });

  it('a trusted peer: the chain is kept, the peer appended, and the client is the right-most untrusted hop', () => {
    const view = readInbound(
      req('10.0.0.1', ['Host', 'public.example.com', 'X-Forwarded-For', '192.0.2.1, 198.51.100.7, 10.0.0.2', 'X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'www.example.com']),
      TEN,
      false,
    );
    assert.equal(view.clientIp, '198.51.100.7');
    assert.deepEqual(values(view.headers, 'x-forwarded-for'), ['192.0.2.1, 198.51.100.7, 10.0.0.2, 10.0.0.1']);
    assert.deepEqual(values(view.headers, 'x-forwarded-proto'), ['https']);
    assert.deepEqual(values(view.headers, 'x-forwarded-host'), ['www.example.com']);
    assert.deepEqual(values(view.headers, 'x-real-ip'), ['198.51.100.7']);
  });

  it('a trusted peer: several X-Forwarded-For headers are joined in order', () => {
    const view = readInbound(req('10.0.0.1', ['Host', 'h', 'X-Forwarded-For', '192.0.2.1', 'X-Forwarded-For', '198.51.100.7']), TEN, false);
    assert.deepEqual(values(view.headers, 'x-forwarded-for'), ['192.0.2.1, 198.51.100.7, 10.0.0.1']);
    assert.equal(view.clientIp, '198.51.100.7');
  });

  it('a trusted peer without X-Forwarded-For: the peer is the client', () => {
    const view = readInbound(req('10.0.0.1', ['Host', 'h']), TEN, false);
    assert.equal(view.clientIp, '10.0.0.1');
    assert.deepEqual(values(view.headers, 'x-forwarded-for'), ['10.0.0.1']);
    assert.deepEqual(values(view.headers, 'x-forwarded-proto'), ['http']);
    assert.deepEqual(values(view.headers, 'x-forwarded-host'), ['h']);
  });

  it('a chain of only trusted hops: the left-most is the client', () => {
    const view = readInbound(req('10.0.0.1', ['Host', 'h', 'X-Forwarded-For', '10.0.0.3, 10.0.0.2']), TEN, false);
    assert.equal(view.clientIp, '10.0.0.3');
  });

  it('a garbage hop stops trust at the last good hop', () => {
    const mid = readInbound(req('10.0.0.1', ['Host', 'h', 'X-Forwarded-For', '198.51.100.7, garbage, 10.0.0.2']), TEN, false);
    assert.equal(mid.clientIp, '10.0.0.2');
    const right = readInbound(req('10.0.0.1', ['Host', 'h', 'X-Forwarded-For', '198.51.100.7, not-an-ip']), TEN, false);
    assert.equal(right.clientIp, '10.0.0.1');
    // An untrusted hop to the right of the garbage is found before it.
    const before = readInbound(req('10.0.0.1', ['Host', 'h', 'X-Forwarded-For', '1.1.1.1, garbage, 203.0.113.5']), TEN, false);
    assert.equal(before.clientIp, '203.0.113.5');
  });

  it('IPv4-mapped peers are normalized', () => {
    const view = readInbound(req('::ffff:127.0.0.1', ['Host', 'h']), NONE, false);
    assert.equal(view.clientIp, '127.0.0.1');
    assert.deepEqual(values(view.headers, 'x-forwarded-for'), ['127.0.0.1']);
    // …and trusted by an IPv4 rule.
    const trusted = readInbound(req('::ffff:10.0.0.1', ['Host', 'h', 'X-Forwarded-For', '198.51.100.7']), TEN, false);
    assert.equal(trusted.clientIp, '198.51.100.7');
    assert.deepEqual(values(trusted.headers, 'x-forwarded-for'), ['198.51.100.7, 10.0.0.1']);
  });

  it('an IPv6 peer is used as is', () => {
    const view = readInbound(req('2001:db8::5', ['Host', 'h']), NONE, false);
    assert.equal(view.clientIp, '2001:db8::5');
  });

  it('peerAddress', () => {
    assert.equal(peerAddress('::ffff:1.2.3.4'), '1.2.3.4');
    assert.equal(peerAddress('::1'), '::1');
    assert.equal(peerAddress('2001:db8::1'), '2001:db8::1');
    assert.equal(peerAddress(undefined), '');
  });
});

describe('readInbound: X-Request-Id', () => {
  it('keeps a valid id', () => {
    const view = readInbound(req('203.0.113.9', ['Host', 'h', 'X-Request-Id', 'abc-123_x.y:z']), NONE, false);
    assert.equal(view.requestId, 'abc-123_x.y:z');
    // Never forwarded twice: at most the client's one value (the proxy phase may re-add it).
    assert.ok(values(view.headers, 'x-request-id').length <= 1);
  });

  it('a valid id is found after an invalid one', () => {
    const view = readInbound(req('203.0.113.9', ['Host', 'h', 'X-Request-Id', 'bad id', 'X-Request-Id', 'good-id']), NONE, false);
    assert.equal(view.requestId, 'good-id');
    assert.ok(!values(view.headers, 'x-request-id').includes('bad id'));
  });

  it('ignores an id with spaces or over 200 characters', () => {
    for (const bad of ['has space', 'x'.repeat(300), 'a"b', '']) {
      const view = readInbound(req('203.0.113.9', ['Host', 'h', 'X-Request-Id', bad]), NONE, false);
      assert.equal(view.requestId, undefined, JSON.stringify(bad));
      assert.deepEqual(values(view.headers, 'x-request-id'), []);
    }
    const max = readInbound(req('203.0.113.9', ['Host', 'h', 'X-Request-Id', 'y'.repeat(200)]), NONE, false);
    assert.equal(max.requestId, 'y'.repeat(200));
  });
});

describe('IpSet', () => {
  it('IPv4 CIDRs and single addresses', () => {
    const s = new IpSet(['10.0.0.0/8', '192.0.2.7']);
    assert.equal(s.size, 2);
    assert.equal(s.has('10.1.2.3'), true);
    assert.equal(s.has('10.255.255.255'), true);
    assert.equal(s.has('11.0.0.1'), false);
    assert.equal(s.has('192.0.2.7'), true);
    assert.equal(s.has('192.0.2.8'), false);
    // Asked twice (the cache) gives the same answer.
    assert.equal(s.has('10.1.2.3'), true);
    assert.equal(s.has('11.0.0.1'), false);
  });

  it('IPv6 CIDRs', () => {
    const s = new IpSet(['2001:db8::/32', '::1']);
    assert.equal(s.has('2001:db8::1'), true);
    assert.equal(s.has('2001:db8:ffff::1'), true);
    assert.equal(s.has('2001:db9::1'), false);
    assert.equal(s.has('::1'), true);
    assert.equal(s.has('10.0.0.1'), false);
  });

  it('IPv4-mapped addresses and ranges fold to IPv4', () => {
    const v4 = new IpSet(['10.0.0.0/8']);
    assert.equal(v4.has('::ffff:10.0.0.1'), true);
    assert.equal(v4.has('::ffff:11.0.0.1'), false);
    const mapped = new IpSet(['::ffff:192.168.0.0/112']);
    assert.equal(mapped.has('192.168.3.4'), true);
    assert.equal(mapped.has('::ffff:192.168.3.4'), true);
    assert.equal(mapped.has('192.169.0.1'), false);
    assert.deepEqual(parseCidr('::ffff:10.0.0.0/104')?.[1], 8);
  });

  it('garbage is never a member; an empty set has nothing', () => {
    assert.equal(TEN.has('garbage'), false);
    assert.equal(TEN.has(''), false);
    assert.equal(NONE.size, 0);
    assert.equal(NONE.has('10.0.0.1'), false);
  });

  it('rejects an invalid CIDR', () => {
    assert.throws(() => new IpSet(['10.0.0.0/33']), /invalid CIDR/);
    assert.throws(() => new IpSet(['proxy.local']), /invalid CIDR/);
    assert.equal(parseCidr('2001:db8::/129'), undefined);
  });
});

/** A context with just what the middlewares read. */
function ctx(upstreamPath: string, upstreamHeaders: string[] = []): RequestContext {
  return { upstreamPath, upstreamHeaders } as unknown as RequestContext;
}

function runRewrite(mw: Middleware, path: string): string {
  const c = ctx(path);
  const r = mw.onRequest!(c);
  assert.equal(r, undefined);
  return c.upstreamPath;
}

describe('rewrite middleware', () => {
  it('strips the prefix', () => {
    const mw = rewrite({ stripPrefix: '/users', rules: [] });
    assert.equal(mw.name, 'rewrite');
    assert.equal(runRewrite(mw, '/users/42'), '/42');
    assert.equal(runRewrite(mw, '/users'), '/');
    assert.equal(runRewrite(mw, '/users/'), '/');
    assert.equal(runRewrite(mw, '/users/a/b'), '/a/b');
  });

  it('a prefix written with a trailing slash strips the same', () => {
    const mw = rewrite({ stripPrefix: '/users/', rules: [] });
    assert.equal(runRewrite(mw, '/users/42'), '/42');
    assert.equal(runRewrite(mw, '/users'), '/');
  });

  it('applies regex rules in order, each to the result of the one before', () => {
    const mw = rewrite({
      rules: [
        { pattern: '^/v1/(.*)$', replacement: '/v2/$1' },
        { pattern: '^/v2/', replacement: '/v3/' },
      ],
    });
    assert.equal(runRewrite(mw, '/v1/items'), '/v3/items');
    assert.equal(runRewrite(mw, '/v2/items'), '/v3/items');
    assert.equal(runRewrite(mw, '/other'), '/other');
  });

  it('strips first, then rewrites; a result without a leading slash gets one', () => {
    const mw = rewrite({ stripPrefix: '/users', rules: [{ pattern: '^/v1/(.*)$', replacement: '/v2/$1' }] });
    assert.equal(runRewrite(mw, '/users/v1/a'), '/v2/a');
    const bare = rewrite({ rules: [{ pattern: '^/api/', replacement: '' }] });
    assert.equal(runRewrite(bare, '/api/x'), '/x');
  });
});

describe('headers middleware', () => {
  it('is undefined without rules', () => {
    assert.equal(headers(undefined, undefined), undefined);
    assert.equal(headers({}, {}), undefined);
  });

  it('request side: set replaces existing values case-insensitively, remove deletes, add appends', () => {
    const mw = headers({ set: { 'X-Gateway': 'portico' }, remove: ['x-debug'], add: { 'X-Extra': '1', Accept: 'text/html' } }, undefined)!;
    assert.ok(mw.onRequest);
    assert.equal(mw.onResponse, undefined);
    const c = ctx('/', ['x-gateway', 'old', 'X-GATEWAY', 'old2', 'X-Debug', '1', 'Accept', '*/*']);
    mw.onRequest(c);
    assert.deepEqual(c.upstreamHeaders, ['Accept', '*/*', 'X-Gateway', 'portico', 'X-Extra', '1', 'Accept', 'text/html']);
  });

  it('response side: edits the head\'s flat header list the same way', () => {
    const mw = headers(undefined, { set: { 'X-Served-By': 'portico' }, remove: ['X-Debug'], add: { Vary: 'origin' } })!;
    assert.ok(mw.onResponse);
    assert.equal(mw.onRequest, undefined);
    const head: ResponseHead = {
      status: 200,
      headers: ['x-served-by', 'upstream', 'X-DEBUG', '1', 'Vary', 'accept', 'Content-Type', 'text/plain'],
    };
    mw.onResponse(ctx('/'), head);
    assert.deepEqual(head.headers, ['Vary', 'accept', 'Content-Type', 'text/plain', 'X-Served-By', 'portico', 'Vary', 'origin']);
    assert.equal(head.status, 200);
  });

  it('response side: add keeps every existing value (Set-Cookie)', () => {
    const mw = headers(undefined, { add: { 'Set-Cookie': 'c=3' } })!;
    const head: ResponseHead = { status: 200, headers: ['set-cookie', 'a=1', 'set-cookie', 'b=2'] };
    mw.onResponse!(ctx('/'), head);
    assert.deepEqual(values(head.headers, 'set-cookie'), ['a=1', 'b=2', 'c=3']);
  });
});

describe('MiddlewareChain', () => {
  function recorder(log: string[], name: string, onRequest?: (c: RequestContext) => void | Promise<void>): Middleware {
    return {
      name,
      onRequest: onRequest ?? (() => void log.push(`req:${name}`)),
      onResponse: () => void log.push(`res:${name}`),
    };
  }

  it('runs request hooks in order and response hooks in reverse, synchronously', () => {
    const log: string[] = [];
    const chain = new MiddlewareChain([recorder(log, 'a'), recorder(log, 'b'), recorder(log, 'c')]);
    assert.deepEqual(chain.names, ['a', 'b', 'c']);
    assert.equal(chain.runRequest(ctx('/')), undefined);
    chain.runResponse(ctx('/'), { status: 200, headers: [] });
    assert.deepEqual(log, ['req:a', 'req:b', 'req:c', 'res:c', 'res:b', 'res:a']);
  });

  it('an empty chain does nothing', () => {
    const chain = new MiddlewareChain([]);
    assert.deepEqual(chain.names, []);
    assert.equal(chain.runRequest(ctx('/')), undefined);
    chain.runResponse(ctx('/'), { status: 200, headers: [] });
  });

  it('skips middlewares without a hook', () => {
    const log: string[] = [];
    const chain = new MiddlewareChain([{ name: 'only-res', onResponse: () => void log.push('res') }, { name: 'only-req', onRequest: () => void log.push('req') }]);
    chain.runRequest(ctx('/'));
    chain.runResponse(ctx('/'), { status: 200, headers: [] });
    assert.deepEqual(log, ['req', 'res']);
  });

  it('an async hook makes runRequest return a promise and the rest runs after it', async () => {
    const log: string[] = [];
    const chain = new MiddlewareChain([
      recorder(log, 'a'),
      recorder(log, 'b', async (c) => {
        log.push('req:b:start');
        await new Promise((r) => setTimeout(r, 5));
        c.upstreamPath = '/from-b';
        log.push('req:b:end');
      }),
      recorder(log, 'c', (c) => void log.push(`req:c saw ${c.upstreamPath}`)),
    ]);
    const c = ctx('/');
    const r = chain.runRequest(c);
    assert.ok(r instanceof Promise);
    assert.deepEqual(log, ['req:a', 'req:b:start']);
    await r;
    assert.deepEqual(log, ['req:a', 'req:b:start', 'req:b:end', 'req:c saw /from-b']);
  });

  it('several async hooks chain', async () => {
    const log: string[] = [];
    const later = (name: string) => async () => {
      await Promise.resolve();
      log.push(name);
    };
    const chain = new MiddlewareChain([recorder(log, 'a', later('a')), recorder(log, 'b'), recorder(log, 'c', later('c')), recorder(log, 'd')]);
    await chain.runRequest(ctx('/'));
    assert.deepEqual(log, ['a', 'req:b', 'c', 'req:d']);
  });

  it('a throwing hook propagates and stops the chain', () => {
    const log: string[] = [];
    const chain = new MiddlewareChain([
      recorder(log, 'a'),
      recorder(log, 'b', () => {
        throw new Error('denied');
      }),
      recorder(log, 'c'),
    ]);
    assert.throws(() => chain.runRequest(ctx('/')), /denied/);
    assert.deepEqual(log, ['req:a']);
  });

  it('a rejecting hook propagates and stops the chain', async () => {
    const log: string[] = [];
    const chain = new MiddlewareChain([
      recorder(log, 'a', async () => {
        throw new Error('limited');
      }),
      recorder(log, 'b'),
    ]);
    await assert.rejects(async () => chain.runRequest(ctx('/')), /limited/);
    assert.deepEqual(log, []);
  });

  it('a hook thrown after an async one rejects the promise', async () => {
    const log: string[] = [];
    const chain = new MiddlewareChain([
      recorder(log, 'a', async () => void log.push('a')),
      recorder(log, 'b', () => {
        throw new Error('late');
      }),
      recorder(log, 'c'),
    ]);
    const r = chain.runRequest(ctx('/'));
    assert.ok(r instanceof Promise);
    await assert.rejects(r, /late/);
    assert.deepEqual(log, ['a']);
  });

  it('hooks keep their `this`', () => {
    class Counter implements Middleware {
      readonly name = 'counter';
      count = 0;
      onRequest(): void {
        this.count++;
      }
      onResponse(): void {
        this.count += 10;
      }
    }
    const m = new Counter();
    const chain = new MiddlewareChain([m]);
    chain.runRequest(ctx('/'));
    chain.runResponse(ctx('/'), { status: 200, headers: [] });
    assert.equal(m.count, 11);
  });
});
