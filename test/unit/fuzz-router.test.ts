// Property tests of route matching (docs/fuzzing.md): a Router built from
// random routes answers as a naive reference matcher that sorts the routes
// by the documented precedence (src/http/router.ts) and takes the first
// that matches; splitTarget never throws and never yields a path without a
// leading '/' or with a dot segment left in it; L4 host patterns
// (`*.example.com`) match exactly the names with at least one more label.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import fc from 'fast-check';
import { validateConfig } from '../../src/config/load.js';
import type { HeaderMatchConfig, RouteConfig } from '../../src/config/schema.js';
import { normalizeHost } from '../../src/http/host.js';
import { splitTarget } from '../../src/http/path.js';
import { Router } from '../../src/http/router.js';
import { hostPatternMatches } from '../../src/net/host-pattern.js';
import { fuzzRuns } from '../helpers/fuzz.js';

// ---------------------------------------------------------------- generators

/** Small vocabularies, so that random routes and requests collide often. */
const ROUTE_HOSTS = ['example.com', 'a.example.com', 'b.a.example.com', 'API.Example.com', 'example.com.', '*.example.com', '*.a.example.com', '*', '::1', '10.0.0.1'];
const REQUEST_HOSTS = [undefined, 'example.com', 'a.example.com', 'A.EXAMPLE.COM:8080', 'b.a.example.com', 'x.b.a.example.com', 'api.example.com', 'api.example.com.', 'badexample.com', 'other.org', '[::1]:80', '10.0.0.1:8080'];
const PATHS = ['/', '/a', '/a/', '/a/b', '/ab', '/b', '/a/b/c'];
const REGEXES = ['^/a', 'b$', '^/(a|b)/?$', '/', '^/a/b/c$'];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE'] as const;

const headerMatch: fc.Arbitrary<HeaderMatchConfig> = fc.oneof(
  fc.constantFrom('v', 'w', 'v, w'),
  fc.constantFrom('^v', 'w$').map((regex) => ({ regex })),
  fc.boolean().map((present) => ({ present })),
);

const routeDoc = fc.record(
  {
    priority: fc.integer({ min: -1, max: 1 }),
    host: fc.oneof(fc.constantFrom(...ROUTE_HOSTS), fc.uniqueArray(fc.constantFrom(...ROUTE_HOSTS), { minLength: 1, maxLength: 3 })),
    path: fc.oneof(
      fc.constantFrom(...PATHS).map((path) => ({ path })),
      fc.constantFrom(...PATHS).map((pathPrefix) => ({ pathPrefix })),
      fc.constantFrom(...REGEXES).map((pathRegex) => ({ pathRegex })),
    ),
    methods: fc.uniqueArray(fc.constantFrom(...METHODS), { minLength: 1, maxLength: 2 }),
    headers: fc.dictionary(fc.constantFrom('x-k', 'X-J'), headerMatch, { maxKeys: 2 }),
  },
  { requiredKeys: ['priority'] },
);

const requestArb = fc.record({
  host: fc.constantFrom(...REQUEST_HOSTS),
  path: fc.oneof(fc.constantFrom(...PATHS), fc.constantFrom(...PATHS).map((p) => `${p}x`)),
  method: fc.constantFrom(...METHODS),
  headers: fc.record({ 'x-k': fc.constantFrom('v', 'w', 'vw', ['v', 'w']), 'x-j': fc.constantFrom('v', 'w') }, { requiredKeys: [] }),
});

/** Route configs as validation makes them (defaults filled), named r0, r1, … */
type RouteDoc = typeof routeDoc extends fc.Arbitrary<infer D> ? D : never;

function routeConfigs(docs: RouteDoc[]): RouteConfig[] {
  const routes = docs.map((d, i) => {
    const match: Record<string, unknown> = { ...(d.path ?? {}) };
    if (d.host !== undefined) match.host = d.host;
    if (d.methods !== undefined) match.methods = d.methods;
    if (d.headers !== undefined) match.headers = d.headers;
    return { name: `r${i}`, listener: 'l', respond: {}, priority: d.priority, match };
  });
  const result = validateConfig({ listeners: [{ name: 'l', protocol: 'http', listen: '127.0.0.1:0' }], routes }, {});
  if (!result.ok) assert.fail(result.errors.map((e) => `${e.path}: ${e.message}`).join('\n'));
  return result.config.routes;
}

// ---------------------------------------------------------------- the reference

/** One (route, host) pair: a route with a host list competes once per host. */
interface RefEntry {
  route: RouteConfig;
  order: number;
  /** 2 exact, 1 wildcard, 0 any. */
  hostRank: number;
  /** Exact: the normalized host; wildcard: `.suffix`; any: ''. */
  host: string;
  /** 3 exact, 2 prefix, 1 regex, 0 any. */
  pathRank: number;
  pathLength: number;
}

function refEntries(routes: RouteConfig[]): RefEntry[] {
  const out: RefEntry[] = [];
  routes.forEach((route, order) => {
    const m = route.match;
    const hosts = m.host === undefined ? [undefined] : [m.host].flat();
    for (const h of hosts) {
      let hostRank = 0;
      let host = '';
      if (h !== undefined && h !== '*') {
        if (h.startsWith('*.')) {
          hostRank = 1;
          host = '.' + normalizeHost(h.slice(2));
        } else {
          hostRank = 2;
          host = normalizeHost(h.includes(':') ? `[${h}]` : h);
        }
      }
      const pathRank = m.path !== undefined ? 3 : m.pathPrefix !== undefined ? 2 : m.pathRegex !== undefined ? 1 : 0;
      const pathLength = m.path?.length ?? m.pathPrefix?.replace(/\/+$/, '').length ?? 0;
      out.push({ route, order, hostRank, host, pathRank, pathLength });
    }
  });
  // The documented precedence, key by key.
  return out.sort(
    (a, b) =>
      b.route.priority - a.route.priority ||
      b.hostRank - a.hostRank ||
      (a.hostRank === 1 ? b.host.length - a.host.length : 0) ||
      b.pathRank - a.pathRank ||
      (a.pathRank === 3 || a.pathRank === 2 ? b.pathLength - a.pathLength : 0) ||
      Number(b.route.match.methods !== undefined) - Number(a.route.match.methods !== undefined) ||
      Object.keys(b.route.match.headers ?? {}).length - Object.keys(a.route.match.headers ?? {}).length ||
      a.order - b.order,
  );
}

function refHeader(m: HeaderMatchConfig, v: string | undefined): boolean {
  if (typeof m === 'string') return v === m;
  if ('regex' in m) return v !== undefined && new RegExp(m.regex).test(v);
  return m.present === (v !== undefined);
}

function refMatches(e: RefEntry, host: string, path: string, method: string, headers: IncomingHttpHeaders): boolean {
  if (e.hostRank === 2 && host !== e.host) return false;
  if (e.hostRank === 1 && !(host.endsWith(e.host) && host.length > e.host.length)) return false;
  const m = e.route.match;
  if (m.path !== undefined && path !== m.path) return false;
  if (m.pathPrefix !== undefined) {
    const p = m.pathPrefix.replace(/\/+$/, '');
    if (!(path === p || path.startsWith(p + '/'))) return false;
  }
  if (m.pathRegex !== undefined && !new RegExp(m.pathRegex).test(path)) return false;
  if (m.methods !== undefined && !m.methods.includes(method as (typeof m.methods)[number])) return false;
  for (const [name, hm] of Object.entries(m.headers ?? {})) {
    const v = headers[name.toLowerCase()];
    if (!refHeader(hm, Array.isArray(v) ? v.join(', ') : v)) return false;
  }
  return true;
}

// ---------------------------------------------------------------- properties

describe('fuzz: router', () => {
  it('a router of random routes picks the route the documented precedence picks', () => {
    fc.assert(
      fc.property(fc.array(routeDoc, { minLength: 1, maxLength: 8 }), fc.array(requestArb, { minLength: 1, maxLength: 8 }), (docs, requests) => {
        const routes = routeConfigs(docs);
        const router = new Router(routes.map((config) => ({ config, value: config.name })));
        const reference = refEntries(routes);
        for (const q of requests) {
          const host = normalizeHost(q.host);
          const headers = q.headers as IncomingHttpHeaders;
          const want = reference.find((e) => refMatches(e, host, q.path, q.method, headers))?.route.name;
          assert.equal(router.match(host, q.path, q.method, { headers }), want, `${q.method} ${q.host} ${q.path} ${JSON.stringify(headers)}`);
        }
      }),
      fuzzRuns(2000),
    );
  });
});

describe('fuzz: splitTarget', () => {
  const targetChar = fc.constantFrom('/', '.', '%', '2', 'e', 'E', '?', '#', 'a', 'h', ':', '\\', ' ', '*');
  const target = fc.oneof(
    fc.string(),
    fc.string({ unit: targetChar, maxLength: 30 }),
    fc.tuple(fc.constantFrom('http://', 'HTTPS://', 'https://h', 'http://h:80', 'Http://x/', 'ftp://h/'), fc.string({ unit: targetChar, maxLength: 20 })).map(([a, b]) => a + b),
    fc.array(fc.constantFrom('', '.', '..', '%2e', '%2E%2e', '.%2e', 'a', 'b'), { maxLength: 8 }).map((s) => '/' + s.join('/')),
  );
  const DOT = new Set(['.', '..', '%2e', '%2e%2e', '.%2e', '%2e.']);

  it('never throws; a path is "*" or starts with "/" and has no dot segment left; the query is empty or starts with "?"', () => {
    fc.assert(
      fc.property(target, (t) => {
        const r = splitTarget(t);
        if (r === undefined) {
          // Refused: a target that is not origin-form or `*`, or one with a fragment (RFC 9112 §3.2: a target has none).
          assert.ok((!t.startsWith('/') && t !== '*') || t.includes('#'), `origin-form ${JSON.stringify(t)} was refused`);
          return;
        }
        assert.ok(r.query === '' || r.query.startsWith('?'), JSON.stringify(r));
        if (r.path === '*') return assert.equal(t, '*');
        assert.ok(r.path.startsWith('/'), `${JSON.stringify(t)} → ${JSON.stringify(r.path)}`);
        assert.ok(!r.path.includes('?'), JSON.stringify(r));
        for (const seg of r.path.split('/')) assert.ok(!DOT.has(seg.toLowerCase()), `${JSON.stringify(t)} → ${r.path}`);
        // Normalising twice changes nothing.
        assert.deepEqual(splitTarget(r.path + r.query), r);
      }),
      fuzzRuns(5000),
    );
  });

  it('an origin-form target without dot segments is split as sent', () => {
    const plain = fc.string({ unit: fc.constantFrom('/', 'a', 'b', '%', '2', '?', '=', '&', '~'), maxLength: 30 }).map((s) => `/${s}`);
    fc.assert(
      fc.property(plain, (t) => {
        const r = splitTarget(t);
        assert.ok(r !== undefined);
        assert.equal(r.path + r.query, t);
      }),
      fuzzRuns(2000),
    );
  });
});

describe('fuzz: host patterns (tls SNI routes, forward-proxy allow/deny)', () => {
  const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?$/);
  const name = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));

  it('"*.suffix" matches a name exactly when it is one or more labels followed by ".suffix"', () => {
    fc.assert(
      fc.property(name, fc.array(label, { maxLength: 3 }), fc.oneof(name, fc.string({ maxLength: 12 })), (suffix, extra, other) => {
        const pattern = `*.${suffix}`;
        const sub = [...extra, suffix].join('.');
        assert.equal(hostPatternMatches(pattern, sub), extra.length > 0, `${pattern} vs ${sub}`);
        // Any other name: the reference reading of the pattern.
        const want = other.endsWith(`.${suffix}`) && other.length > suffix.length + 1;
        assert.equal(hostPatternMatches(pattern, other), want, `${pattern} vs ${other}`);
        // A name that only ends with the suffix's text, without the dot, never matches.
        assert.equal(hostPatternMatches(pattern, `x${suffix}`), false);
        // An exact pattern matches only itself.
        assert.equal(hostPatternMatches(suffix, other), other === suffix);
      }),
      fuzzRuns(3000),
    );
  });
});
