import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, it } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import type { RouteConfig } from '../../src/config/schema.js';
import { normalizeHost } from '../../src/http/host.js';
import { splitTarget } from '../../src/http/path.js';
import { Router } from '../../src/http/router.js';

/**
 * Route configs as validation produces them (defaults filled). Each entry is
 * a route document without `listener`; `name` defaults to r0, r1, … and the
 * route answers directly so no upstream is needed.
 */
function routeConfigs(...routes: Record<string, unknown>[]): RouteConfig[] {
  const result = validateConfig(
    {
      listeners: [{ name: 'l', protocol: 'http', listen: '127.0.0.1:0' }],
      routes: routes.map((r, i) => ({ name: `r${i}`, listener: 'l', respond: {}, ...r })),
    },
    {},
  );
  if (!result.ok) assert.fail(result.errors.map((e) => `${e.path}: ${e.message}`).join('\n'));
  return result.config.routes;
}

function router(...routes: Record<string, unknown>[]): Router<string> {
  return new Router(routeConfigs(...routes).map((config) => ({ config, value: config.name })));
}

/** Matches as the handler does: host through normalizeHost, target through splitTarget. */
function match(r: Router<string>, host: string | undefined, target: string, method = 'GET', headers: IncomingHttpHeaders = {}) {
  const split = splitTarget(target);
  assert.ok(split, `bad target ${target}`);
  return r.match(normalizeHost(host), split.path, method, { headers });
}

describe('normalizeHost', () => {
  it('lower-cases and drops the port and one trailing dot', () => {
    assert.equal(normalizeHost('API.Example.com:8080'), 'api.example.com');
    assert.equal(normalizeHost('api.example.com.'), 'api.example.com');
    assert.equal(normalizeHost('api.example.com.:80'), 'api.example.com');
    assert.equal(normalizeHost('[::1]:8080'), '::1');
    assert.equal(normalizeHost('[2001:DB8::1]'), '2001:db8::1');
    assert.equal(normalizeHost(undefined), '');
    assert.equal(normalizeHost(''), '');
  });
});

describe('Router: hosts', () => {
  it('matches an exact host case-insensitively, ignoring the port and a trailing dot', () => {
    const r = router({ name: 'api', match: { host: 'api.example.com' } });
    assert.equal(match(r, 'api.example.com', '/'), 'api');
    assert.equal(match(r, 'API.Example.com:8080', '/'), 'api');
    assert.equal(match(r, 'api.example.com.', '/'), 'api');
    assert.equal(match(r, 'www.example.com', '/'), undefined);
    assert.equal(match(r, undefined, '/'), undefined);
  });

  it('normalizes the route host too', () => {
    const r = router({ name: 'api', match: { host: 'API.EXAMPLE.COM.' } });
    assert.equal(match(r, 'api.example.com', '/'), 'api');
  });

  it('matches an IPv6 literal host', () => {
    const r = router({ name: 'v6', match: { host: '::1' } });
    assert.equal(match(r, '[::1]:8080', '/'), 'v6');
    assert.equal(match(r, '[::1]', '/'), 'v6');
    assert.equal(match(r, '[::2]:8080', '/'), undefined);
    const bracketed = router({ name: 'v6b', match: { host: '[::1]' } });
    assert.equal(match(bracketed, '[::1]:8080', '/'), 'v6b');
  });

  it('a wildcard matches subdomains at any depth, not the apex nor a look-alike', () => {
    const r = router({ name: 'w', match: { host: '*.example.com' } });
    assert.equal(match(r, 'a.example.com', '/'), 'w');
    assert.equal(match(r, 'a.b.example.com', '/'), 'w');
    assert.equal(match(r, 'A.Example.COM:443', '/'), 'w');
    assert.equal(match(r, 'example.com', '/'), undefined);
    assert.equal(match(r, 'badexample.com', '/'), undefined);
    assert.equal(match(r, 'example.com.evil.org', '/'), undefined);
  });

  it('a host list matches any of its hosts; "*" matches any host', () => {
    const r = router({ name: 'multi', match: { host: ['a.com', '*.b.com'] } }, { name: 'any', match: { host: '*' } });
    assert.equal(match(r, 'a.com', '/'), 'multi');
    assert.equal(match(r, 'x.b.com', '/'), 'multi');
    assert.equal(match(r, 'c.com', '/'), 'any');
    assert.equal(match(r, undefined, '/'), 'any');
  });
});

describe('Router: paths', () => {
  it('pathPrefix matches on segment boundaries', () => {
    const r = router({ name: 'users', match: { pathPrefix: '/users' } });
    assert.equal(match(r, 'h', '/users'), 'users');
    assert.equal(match(r, 'h', '/users/'), 'users');
    assert.equal(match(r, 'h', '/users/42'), 'users');
    assert.equal(match(r, 'h', '/users?x=1'), 'users');
    assert.equal(match(r, 'h', '/usersx'), undefined);
    assert.equal(match(r, 'h', '/user'), undefined);
    assert.equal(match(r, 'h', '/'), undefined);
  });

  it('a pathPrefix with a trailing slash also matches the bare prefix', () => {
    const r = router({ name: 'users', match: { pathPrefix: '/users/' } });
    assert.equal(match(r, 'h', '/users'), 'users');
    assert.equal(match(r, 'h', '/users/42'), 'users');
    assert.equal(match(r, 'h', '/usersx'), undefined);
  });

  it('pathPrefix "/" matches every path', () => {
    const r = router({ name: 'root', match: { pathPrefix: '/' } });
    assert.equal(match(r, 'h', '/'), 'root');
    assert.equal(match(r, 'h', '/anything/at/all'), 'root');
  });

  it('path matches exactly', () => {
    const r = router({ name: 'health', match: { path: '/health' } });
    assert.equal(match(r, 'h', '/health'), 'health');
    assert.equal(match(r, 'h', '/health?verbose=1'), 'health');
    assert.equal(match(r, 'h', '/health/'), undefined);
    assert.equal(match(r, 'h', '/healthz'), undefined);
    assert.equal(match(r, 'h', '/Health'), undefined);
  });

  it('matches after dot-segment removal, so /public/../admin reaches only /admin routes', () => {
    const r = router({ name: 'public', match: { pathPrefix: '/public' } }, { name: 'admin', match: { pathPrefix: '/admin' } });
    assert.equal(match(r, 'h', '/public/../admin'), 'admin');
    assert.equal(match(r, 'h', '/public/%2e%2e/admin'), 'admin');
  });

  it('pathRegex', () => {
    const r = router({ name: 'item', match: { pathRegex: '^/items/\\d+$' } });
    assert.equal(match(r, 'h', '/items/42'), 'item');
    assert.equal(match(r, 'h', '/items/abc'), undefined);
    assert.equal(match(r, 'h', '/items/42/x'), undefined);
    // Repeated matches give the same answer (no stateful lastIndex).
    assert.equal(match(r, 'h', '/items/42'), 'item');
  });
});

describe('Router: methods and headers', () => {
  it('methods', () => {
    const r = router({ name: 'rw', match: { methods: ['get', 'POST'] } });
    assert.equal(match(r, 'h', '/', 'GET'), 'rw');
    assert.equal(match(r, 'h', '/', 'POST'), 'rw');
    assert.equal(match(r, 'h', '/', 'DELETE'), undefined);
  });

  it('a route with methods comes before one without, whatever the order', () => {
    const r = router({ name: 'any', match: { pathPrefix: '/a' } }, { name: 'get', match: { pathPrefix: '/a', methods: ['GET'] } });
    assert.equal(match(r, 'h', '/a', 'GET'), 'get');
    assert.equal(match(r, 'h', '/a', 'PUT'), 'any');
  });

  it('header exact string', () => {
    const r = router({ name: 'prod', match: { headers: { 'X-Env': 'prod' } } });
    assert.equal(match(r, 'h', '/', 'GET', { 'x-env': 'prod' }), 'prod');
    assert.equal(match(r, 'h', '/', 'GET', { 'x-env': 'Prod' }), undefined);
    assert.equal(match(r, 'h', '/', 'GET', { 'x-env': 'dev' }), undefined);
    assert.equal(match(r, 'h', '/', 'GET', {}), undefined);
  });

  it('header regex', () => {
    const r = router({ name: 'v', match: { headers: { 'x-version': { regex: '^v[12]$' } } } });
    assert.equal(match(r, 'h', '/', 'GET', { 'x-version': 'v1' }), 'v');
    assert.equal(match(r, 'h', '/', 'GET', { 'x-version': 'v2' }), 'v');
    assert.equal(match(r, 'h', '/', 'GET', { 'x-version': 'v3' }), undefined);
    assert.equal(match(r, 'h', '/', 'GET', {}), undefined);
  });

  it('header present: true / false', () => {
    const r = router(
      { name: 'with', match: { path: '/p', headers: { authorization: { present: true } } } },
      { name: 'without', match: { path: '/a', headers: { authorization: { present: false } } } },
    );
    assert.equal(match(r, 'h', '/p', 'GET', { authorization: 'Bearer x' }), 'with');
    assert.equal(match(r, 'h', '/p', 'GET', {}), undefined);
    assert.equal(match(r, 'h', '/a', 'GET', {}), 'without');
    assert.equal(match(r, 'h', '/a', 'GET', { authorization: 'Bearer x' }), undefined);
  });

  it('all header matches must hold; more header matches come first', () => {
    const r = router(
      { name: 'one', match: { headers: { 'x-a': '1' } } },
      { name: 'two', match: { headers: { 'x-a': '1', 'x-b': '2' } } },
    );
    assert.equal(match(r, 'h', '/', 'GET', { 'x-a': '1', 'x-b': '2' }), 'two');
    assert.equal(match(r, 'h', '/', 'GET', { 'x-a': '1', 'x-b': '3' }), 'one');
    assert.equal(match(r, 'h', '/', 'GET', { 'x-b': '2' }), undefined);
  });
});

describe('Router: specificity', () => {
  it('exact host beats wildcard beats none, whatever the config order', () => {
    const r = router(
      { name: 'none' },
      { name: 'wild', match: { host: '*.example.com' } },
      { name: 'exact', match: { host: 'a.example.com' } },
    );
    assert.equal(match(r, 'a.example.com', '/'), 'exact');
    assert.equal(match(r, 'b.example.com', '/'), 'wild');
    assert.equal(match(r, 'other.org', '/'), 'none');
  });

  it('an exact host whose path does not match falls back to wildcard and host-less routes', () => {
    const r = router(
      { name: 'exact', match: { host: 'a.example.com', pathPrefix: '/api' } },
      { name: 'wild', match: { host: '*.example.com', pathPrefix: '/static' } },
      { name: 'none' },
    );
    assert.equal(match(r, 'a.example.com', '/api/x'), 'exact');
    assert.equal(match(r, 'a.example.com', '/static/x'), 'wild');
    assert.equal(match(r, 'a.example.com', '/other'), 'none');
  });

  it('a longer wildcard suffix beats a shorter one', () => {
    const r = router({ name: 'short', match: { host: '*.example.com' } }, { name: 'long', match: { host: '*.api.example.com' } });
    assert.equal(match(r, 'x.api.example.com', '/'), 'long');
    assert.equal(match(r, 'x.www.example.com', '/'), 'short');
  });

  it('exact path beats longer prefix beats shorter prefix beats regex beats none', () => {
    const r = router(
      { name: 'none' },
      { name: 'regex', match: { pathRegex: '^/users' } },
      { name: 'short', match: { pathPrefix: '/users' } },
      { name: 'long', match: { pathPrefix: '/users/admin' } },
      { name: 'exact', match: { path: '/users/admin' } },
    );
    assert.equal(match(r, 'h', '/users/admin'), 'exact');
    assert.equal(match(r, 'h', '/users/admin/x'), 'long');
    assert.equal(match(r, 'h', '/users/1'), 'short');
    assert.equal(match(r, 'h', '/usersx'), 'regex');
    assert.equal(match(r, 'h', '/other'), 'none');
  });

  it('priority overrides specificity', () => {
    const r = router(
      { name: 'exact', match: { host: 'a.example.com', path: '/users' } },
      { name: 'catchall', priority: 10 },
    );
    assert.equal(match(r, 'a.example.com', '/users'), 'catchall');
    const low = router(
      { name: 'exact', match: { path: '/users' } },
      { name: 'regex', priority: -1, match: { pathRegex: '.' } },
      { name: 'below', match: { pathRegex: '.' }, priority: -2 },
    );
    assert.equal(match(low, 'h', '/users'), 'exact');
    assert.equal(match(low, 'h', '/x'), 'regex');
  });

  it('a higher-priority host-less route beats an exact-host route for that host', () => {
    const r = router({ name: 'exact', match: { host: 'a.com' } }, { name: 'urgent', priority: 1, match: { pathPrefix: '/' } });
    assert.equal(match(r, 'a.com', '/'), 'urgent');
  });

  it('ties keep config order', () => {
    const a = router({ name: 'first', match: { pathPrefix: '/x' } }, { name: 'second', match: { pathPrefix: '/x' } });
    assert.equal(match(a, 'h', '/x/1'), 'first');
    const b = router({ name: 'second', match: { pathPrefix: '/x' } }, { name: 'first', match: { pathPrefix: '/x' } });
    assert.equal(match(b, 'h', '/x/1'), 'second');
    const c = router({ name: 'first', match: { pathRegex: '^/a' } }, { name: 'second', match: { pathRegex: '^/ab' } });
    assert.equal(match(c, 'h', '/abc'), 'first');
  });

  it('no match returns undefined', () => {
    const r = router({ name: 'a', match: { host: 'a.com', path: '/a', methods: ['GET'] } });
    assert.equal(match(r, 'b.com', '/a'), undefined);
    assert.equal(match(r, 'a.com', '/b'), undefined);
    assert.equal(match(r, 'a.com', '/a', 'POST'), undefined);
    assert.equal(match(r, 'a.com', '/a'), 'a');
    assert.equal(new Router<string>([]).match('a.com', '/', 'GET', { headers: {} }), undefined);
  });
});

describe('splitTarget', () => {
  it('splits the query off', () => {
    assert.deepEqual(splitTarget('/a/b?x=1&y=2'), { path: '/a/b', query: '?x=1&y=2' });
    assert.deepEqual(splitTarget('/a/b'), { path: '/a/b', query: '' });
    assert.deepEqual(splitTarget('/?'), { path: '/', query: '?' });
  });

  it('removes dot segments', () => {
    assert.deepEqual(splitTarget('/a/b/../c'), { path: '/a/c', query: '' });
    assert.deepEqual(splitTarget('/public/%2e%2e/admin'), { path: '/admin', query: '' });
    assert.deepEqual(splitTarget('/public/%2E%2E/admin'), { path: '/admin', query: '' });
    assert.deepEqual(splitTarget('/public/.%2e/admin'), { path: '/admin', query: '' });
    assert.deepEqual(splitTarget('/a/./b'), { path: '/a/b', query: '' });
    assert.deepEqual(splitTarget('/a/b/.'), { path: '/a/b/', query: '' });
    assert.deepEqual(splitTarget('/a/b/..'), { path: '/a/', query: '' });
    assert.deepEqual(splitTarget('/../../etc/passwd'), { path: '/etc/passwd', query: '' });
    assert.deepEqual(splitTarget('/..'), { path: '/', query: '' });
  });

  it('leaves dots inside segments and in the query alone', () => {
    assert.deepEqual(splitTarget('/.well-known/x'), { path: '/.well-known/x', query: '' });
    assert.deepEqual(splitTarget('/a/..b'), { path: '/a/..b', query: '' });
    assert.deepEqual(splitTarget('/a?next=/../b'), { path: '/a', query: '?next=/../b' });
  });

  it('accepts absolute-form', () => {
    assert.deepEqual(splitTarget('http://h/x?y'), { path: '/x', query: '?y' });
    assert.deepEqual(splitTarget('https://h:8443/a/../b'), { path: '/b', query: '' });
    assert.deepEqual(splitTarget('http://h'), { path: '/', query: '' });
    assert.deepEqual(splitTarget('http://h?q=1'), { path: '/', query: '?q=1' });
  });

  it('keeps "*" and rejects other forms', () => {
    assert.deepEqual(splitTarget('*'), { path: '*', query: '' });
    assert.equal(splitTarget('foo'), undefined);
    assert.equal(splitTarget('example.com:443'), undefined);
    assert.equal(splitTarget(''), undefined);
  });
});
