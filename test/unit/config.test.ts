import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatPath, loadConfigText, validateConfig, type LoadResult } from '../../src/config/load.js';
import type { ConfigError } from '../../src/config/errors.js';
import { parseDuration } from '../../src/config/duration.js';
import { formatHostPort, parseHostPort } from '../../src/net/address.js';
import type { Config } from '../../src/config/schema.js';

/** A small valid document; each test breaks one thing in a fresh copy. */
function base(): Record<string, any> {
  return {
    listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:8080' }],
    upstreams: [{ name: 'users', targets: [{ address: '127.0.0.1:2003' }] }],
    routes: [{ name: 'r', listener: 'web', upstream: 'users' }],
  };
}

function errorsOf(result: LoadResult): ConfigError[] {
  assert.equal(result.ok, false, 'expected the document to be rejected');
  return result.ok ? [] : result.errors;
}

function okConfig(result: LoadResult): Config {
  if (!result.ok) assert.fail(`expected a valid document, got:\n${result.errors.map((e) => `${e.path}: ${e.message}`).join('\n')}`);
  return result.config;
}

/** Validates `base()` changed by `edit`; returns the errors, which must be exactly one. */
function oneError(edit: (doc: Record<string, any>) => void, env: NodeJS.ProcessEnv = {}): ConfigError {
  const doc = base();
  edit(doc);
  const errors = errorsOf(validateConfig(doc, env));
  assert.equal(errors.length, 1, `expected one error, got ${JSON.stringify(errors)}`);
  return errors[0]!;
}

function assertError(err: ConfigError, path: string, message: string | RegExp): void {
  assert.equal(err.path, path);
  if (typeof message === 'string') assert.equal(err.message, message);
  else assert.match(err.message, message);
}

describe('validateConfig: the base document', () => {
  it('is valid', () => {
    const c = okConfig(validateConfig(base(), {}));
    assert.equal(c.routes[0]!.upstream, 'users');
  });

  it('rejects a non-mapping root', () => {
    for (const raw of [null, 42, 'x', []]) {
      const errors = errorsOf(validateConfig(raw, {}));
      assert.equal(errors.length, 1);
      assert.equal(errors[0]!.path, '(root)');
    }
  });
});

describe('validateConfig: unknown keys', () => {
  it('at the top level', () => {
    assertError(oneError((d) => (d.foo = 1)), 'foo', 'unknown key');
  });

  it('nested in a route match', () => {
    assertError(oneError((d) => (d.routes[0].match = { foo: 1 })), 'routes[0].match.foo', 'unknown key');
  });

  it('nested in upstream timeouts and targets', () => {
    assertError(oneError((d) => (d.upstreams[0].timeouts = { conect: '2s' })), 'upstreams[0].timeouts.conect', 'unknown key (did you mean "connect"?)');
    assertError(
      oneError((d) => (d.upstreams[0].targets[0].wieght = 2)),
      'upstreams[0].targets[0].wieght',
      'unknown key (did you mean "weight"?)',
    );
  });

  it('inside a union branch keep their full path (listeners[0].accessLog: { foo })', () => {
    // accessLog is `bool | { path }`; the object branch is reported, under the field's own path.
    const doc = base();
    doc.listeners[0].accessLog = { foo: 1 };
    const errors = errorsOf(validateConfig(doc, {}));
    assert.ok(
      errors.some((e) => e.path === 'listeners[0].accessLog.foo' && e.message === 'unknown key'),
      `got ${JSON.stringify(errors)}`,
    );
    for (const e of errors) assert.ok(e.path.startsWith('listeners[0].accessLog'), `path ${e.path} lost its prefix`);
  });

  it('inside a header-match union keep their full path', () => {
    const doc = base();
    doc.routes[0].match = { headers: { 'x-a': { foo: 1 } } };
    const errors = errorsOf(validateConfig(doc, {}));
    assert.ok(errors.length >= 1);
    for (const e of errors) assert.ok(e.path.startsWith('routes[0].match.headers.x-a'), `path ${e.path} lost its prefix`);
  });
});

describe('validateConfig: values', () => {
  it('a bad duration names its path and the accepted forms', () => {
    assertError(
      oneError((d) => (d.upstreams[0].timeouts = { connect: 'soon' })),
      'upstreams[0].timeouts.connect',
      /duration/,
    );
    assertError(oneError((d) => (d.upstreams[0].timeouts = { connect: -5 })), 'upstreams[0].timeouts.connect', /duration/);
  });

  it('a negative or fractional weight is rejected; 0 (drained) is allowed', () => {
    assertError(oneError((d) => (d.upstreams[0].targets[0].weight = -1)), 'upstreams[0].targets[0].weight', 'must be >= 0');
    const drained = base();
    drained.upstreams[0].targets[0].weight = 0;
    assert.equal(validateConfig(drained, {}).ok, true);
    assertError(
      oneError((d) => (d.upstreams[0].targets[0].weight = 1.5)),
      'upstreams[0].targets[0].weight',
      'must be a whole number',
    );
  });

  it('a weight written as the string "3" (after env interpolation) is accepted as 3', () => {
    const doc = base();
    doc.upstreams[0].targets[0].weight = '${W}';
    const c = okConfig(validateConfig(doc, { W: '3' }));
    assert.equal(c.upstreams[0]!.targets[0]!.weight, 3);
    const doc2 = base();
    doc2.upstreams[0].targets[0].weight = '3';
    assert.equal(okConfig(validateConfig(doc2, {})).upstreams[0]!.targets[0]!.weight, 3);
  });

  it('a non-numeric weight string is rejected', () => {
    assert.equal(oneError((d) => (d.upstreams[0].targets[0].weight = 'abc')).path, 'upstreams[0].targets[0].weight');
  });

  it('a target without a port from 1 to 65535 is rejected', () => {
    assertError(
      oneError((d) => (d.upstreams[0].targets[0].address = '127.0.0.1:0')),
      'upstreams[0].targets[0].address',
      /port from 1 to 65535/,
    );
  });

  it('an upstream without targets is rejected', () => {
    assertError(oneError((d) => (d.upstreams[0].targets = [])), 'upstreams[0].targets', 'needs at least one target (or a discovery)');
  });

  it('a bad name is rejected', () => {
    assertError(oneError((d) => (d.routes[0].name = '-bad')), 'routes[0].name', /letters, digits/);
  });

  it('methods are upper-cased and unknown ones rejected', () => {
    const doc = base();
    doc.routes[0].match = { methods: ['get', 'Post'] };
    assert.deepEqual(okConfig(validateConfig(doc, {})).routes[0]!.match.methods, ['GET', 'POST']);
    assert.equal(oneError((d) => (d.routes[0].match = { methods: ['GET', 'FETCH'] })).path, 'routes[0].match.methods[1]');
  });
});

describe('validateConfig: references and names', () => {
  it('a route naming a missing upstream', () => {
    assertError(oneError((d) => (d.routes[0].upstream = 'x')), 'routes[0].upstream', 'no upstream named "x"');
  });

  it('a route naming a missing listener', () => {
    assertError(oneError((d) => (d.routes[0].listener = 'api')), 'routes[0].listener', 'no listener named "api"');
  });

  it('duplicate names in each section', () => {
    assertError(
      oneError((d) => d.listeners.push({ name: 'web', protocol: 'http', listen: '127.0.0.1:8081' })),
      'listeners[1].name',
      'duplicate name "web"',
    );
    assertError(
      oneError((d) => d.upstreams.push({ name: 'users', targets: [{ address: '127.0.0.1:1' }] })),
      'upstreams[1].name',
      'duplicate name "users"',
    );
    assertError(
      oneError((d) => d.routes.push({ name: 'r', listener: 'web', upstream: 'users' })),
      'routes[1].name',
      'duplicate name "r"',
    );
  });

  it('a wildcard host anywhere but a leading "*." is rejected', () => {
    assertError(oneError((d) => (d.routes[0].match = { host: 'a.*.com' })), 'routes[0].match.host', /leading "\*\."/);
    assertError(oneError((d) => (d.routes[0].match = { host: ['a.com', '*example.com'] })), 'routes[0].match.host[1]', /wildcard/);
  });
});

describe('validateConfig: route rules', () => {
  it('two of path, pathPrefix and pathRegex', () => {
    assertError(
      oneError((d) => (d.routes[0].match = { path: '/a', pathPrefix: '/b' })),
      'routes[0].match',
      'use only one of path, pathPrefix and pathRegex',
    );
    assertError(
      oneError((d) => (d.routes[0].match = { pathPrefix: '/b', pathRegex: '^/c' })),
      'routes[0].match',
      'use only one of path, pathPrefix and pathRegex',
    );
  });

  it('an invalid regex in pathRegex, rewrite and header match', () => {
    assertError(oneError((d) => (d.routes[0].match = { pathRegex: '(' })), 'routes[0].match.pathRegex', /^must be a valid regular expression: .+/);
    assertError(
      oneError((d) => (d.routes[0].rewrite = [{ pattern: '[', replacement: '/' }])),
      'routes[0].rewrite[0].pattern',
      /^must be a valid regular expression: .+/,
    );
    assertError(
      oneError((d) => (d.routes[0].match = { headers: { 'x-a': { regex: '(' } } })),
      'routes[0].match.headers.x-a.regex',
      /^must be a valid regular expression: .+/,
    );
  });

  it('a path not starting with "/"', () => {
    assertError(oneError((d) => (d.routes[0].match = { pathPrefix: 'users' })), 'routes[0].match.pathPrefix', 'must start with "/"');
  });

  it('a route with both upstream and respond', () => {
    assertError(
      oneError((d) => (d.routes[0].respond = { status: 204 })),
      'routes[0].upstream',
      'a route needs exactly one of upstream, respond or token-endpoint',
    );
  });

  it('a route with neither upstream nor respond', () => {
    assertError(
      oneError((d) => delete d.routes[0].upstream),
      'routes[0].upstream',
      'a route needs exactly one of upstream, respond or token-endpoint',
    );
  });

  it('stripPrefix without pathPrefix', () => {
    assertError(oneError((d) => (d.routes[0].stripPrefix = true)), 'routes[0].stripPrefix', 'needs match.pathPrefix');
    assertError(
      oneError((d) => {
        d.routes[0].stripPrefix = true;
        d.routes[0].match = { path: '/users' };
      }),
      'routes[0].stripPrefix',
      'needs match.pathPrefix',
    );
  });
});

describe('validateConfig: addresses and security', () => {
  it('a bad listen address', () => {
    for (const bad of ['nope', '127.0.0.1', '127.0.0.1:70000', '::1:80']) {
      assertError(oneError((d) => (d.listeners[0].listen = bad)), 'listeners[0].listen', /must be host:port/);
    }
  });

  it('listen addresses are parsed into host and port', () => {
    const doc = base();
    doc.listeners[0].listen = '[::1]:8443';
    assert.deepEqual(okConfig(validateConfig(doc, {})).listeners[0]!.listen, { host: '::1', port: 8443 });
  });

  it('a duplicate listen address, also against admin', () => {
    assertError(
      oneError((d) => d.listeners.push({ name: 'web2', protocol: 'http', listen: '127.0.0.1:8080' })),
      'listeners[1].listen',
      /127\.0\.0\.1:8080 is already used by listeners\[0\]\.listen/,
    );
    assertError(
      oneError((d) => (d.admin = { listen: '127.0.0.1:8080' })),
      'listeners[0].listen',
      /already used by admin\.listen/,
    );
  });

  it('port 0 may be used by several listeners', () => {
    const doc = base();
    doc.listeners[0].listen = '127.0.0.1:0';
    doc.listeners.push({ name: 'web2', protocol: 'http', listen: '127.0.0.1:0' });
    okConfig(validateConfig(doc, {}));
  });

  it('admin on 0.0.0.0 needs a token of at least 16 characters (apiKey is its alias)', () => {
    assertError(
      oneError((d) => (d.admin = { listen: '0.0.0.0:9180' })),
      'admin.token',
      'is required when admin.listen is not a loopback address',
    );
    assertError(oneError((d) => (d.admin = { listen: '0.0.0.0:9180', apiKey: 'short' })), 'admin.apiKey', 'must be at least 16 characters');
    assertError(oneError((d) => (d.admin = { listen: '0.0.0.0:9180', token: 'short' })), 'admin.token', 'must be at least 16 characters');
    okConfig(validateConfig({ ...base(), admin: { listen: '0.0.0.0:9180', apiKey: 'x'.repeat(16) } }, {}));
    const r = validateConfig({ ...base(), admin: { listen: '0.0.0.0:9180', apiKey: 'y'.repeat(16) } }, {});
    assert.ok(r.ok && r.config.admin?.token === 'y'.repeat(16), 'apiKey is carried as token');
    assertError(oneError((d) => (d.admin = { listen: '0.0.0.0:9180', token: 'x'.repeat(16), apiKey: 'x'.repeat(16) })), 'admin.apiKey', 'is the older name of token: set only token');
  });

  it('admin on a loopback address needs no apiKey', () => {
    for (const listen of ['127.0.0.1:9180', 'localhost:9180', '[::1]:9180']) {
      okConfig(validateConfig({ ...base(), admin: { listen } }, {}));
    }
  });

  it('an invalid trustedProxies entry', () => {
    assertError(
      oneError((d) => (d.listeners[0].trustedProxies = ['10.0.0.0/8', 'proxy.local'])),
      'listeners[0].trustedProxies[1]',
      /IP address or CIDR/,
    );
    // Looks like a CIDR but is not one: caught by the reference pass.
    assertError(
      oneError((d) => (d.listeners[0].trustedProxies = ['10.0.0.0/33'])),
      'listeners[0].trustedProxies[0]',
      'is not a valid IP address or CIDR',
    );
    const doc = base();
    doc.listeners[0].trustedProxies = ['10.0.0.0/8', '2001:db8::/32', '192.0.2.1'];
    okConfig(validateConfig(doc, {}));
  });

  it('a bad hashKey', () => {
    for (const bad of ['foo', 'header:', 'cookie:a b', 'header:bad name']) {
      assertError(oneError((d) => (d.upstreams[0].hashKey = bad)), 'upstreams[0].hashKey', 'must be ip, uri, header:NAME or cookie:NAME');
    }
    for (const good of ['ip', 'uri', 'header:X-User', 'cookie:session']) {
      const doc = base();
      doc.upstreams[0].hashKey = good;
      assert.equal(okConfig(validateConfig(doc, {})).upstreams[0]!.hashKey, good);
    }
  });
});

describe('validateConfig: header names and values', () => {
  it('a bad header name in remove', () => {
    assertError(
      oneError((d) => (d.routes[0].requestHeaders = { remove: ['bad name'] })),
      'routes[0].requestHeaders.remove[0]',
      /valid header name/,
    );
  });

  it('a bad header name as a set key names the reason, not just "invalid key"', () => {
    assertError(
      oneError((d) => (d.routes[0].requestHeaders = { set: { 'bad name': 'x' } })),
      'routes[0].requestHeaders.set.bad name',
      /valid header name/,
    );
  });

  it('a bad header name as a match.headers key names the reason', () => {
    assertError(
      oneError((d) => (d.routes[0].match = { headers: { 'x(y)': 'v' } })),
      'routes[0].match.headers.x(y)',
      /valid header name/,
    );
  });

  it('a header value with CR/LF', () => {
    assertError(
      oneError((d) => (d.routes[0].responseHeaders = { set: { 'X-A': 'a\r\nb' } })),
      'routes[0].responseHeaders.set.X-A',
      'must not contain CR, LF or NUL',
    );
  });
});

describe('environment interpolation', () => {
  const yaml = (listen: string, body = 'ok') => `
listeners:
  - name: web
    protocol: http
    listen: "${listen}"
routes:
  - name: r
    listener: web
    respond: { body: "${body}" }
`;

  it('${NAME} is replaced', () => {
    const c = okConfig(loadConfigText(yaml('127.0.0.1:${PORT}'), { PORT: '9000' }));
    assert.deepEqual(c.listeners[0]!.listen, { host: '127.0.0.1', port: 9000 });
  });

  it('${NAME:-default} uses the default when unset or empty, the value when set', () => {
    assert.equal(okConfig(loadConfigText(yaml('127.0.0.1:${PORT:-7000}'), {})).listeners[0]!.listen.port, 7000);
    assert.equal(okConfig(loadConfigText(yaml('127.0.0.1:${PORT:-7000}'), { PORT: '' })).listeners[0]!.listen.port, 7000);
    assert.equal(okConfig(loadConfigText(yaml('127.0.0.1:${PORT:-7000}'), { PORT: '7001' })).listeners[0]!.listen.port, 7001);
  });

  it('several references in one string', () => {
    const c = okConfig(loadConfigText(yaml('${HOST:-127.0.0.1}:${PORT}'), { PORT: '81', HOST: '127.0.0.2' }));
    assert.deepEqual(c.listeners[0]!.listen, { host: '127.0.0.2', port: 81 });
    const d = okConfig(loadConfigText(yaml('${HOST:-127.0.0.1}:${PORT}'), { PORT: '82' }));
    assert.deepEqual(d.listeners[0]!.listen, { host: '127.0.0.1', port: 82 });
  });

  it('$${ is a literal ${ and needs no variable', () => {
    const c = okConfig(loadConfigText(yaml('127.0.0.1:80', 'cost: $${PRICE}'), {}));
    assert.equal(c.routes[0]!.respond!.body, 'cost: ${PRICE}');
  });

  it('a value cannot inject YAML structure', () => {
    const c = okConfig(loadConfigText(yaml('127.0.0.1:80', '${B}'), { B: 'a: b\nc: [d]' }));
    assert.equal(c.routes[0]!.respond!.body, 'a: b\nc: [d]');
  });

  it('a missing variable is an error with its path', () => {
    const doc = base();
    doc.upstreams[0].targets[0].address = '${NOPE}:80';
    const errors = errorsOf(validateConfig(doc, {}));
    assert.deepEqual(errors, [{ path: 'upstreams[0].targets[0].address', message: 'environment variable NOPE is not set' }]);
  });

  it('a missing variable is reported from YAML text too', () => {
    const errors = errorsOf(loadConfigText(yaml('127.0.0.1:${PORT}'), {}));
    assert.deepEqual(errors, [{ path: 'listeners[0].listen', message: 'environment variable PORT is not set' }]);
  });
});

describe('loadConfigText', () => {
  it('reports a YAML syntax error', () => {
    const errors = errorsOf(loadConfigText('listeners: [\n', {}));
    assert.ok(errors.length >= 1);
    assert.equal(errors[0]!.path, '(document)');
    assert.ok(errors[0]!.message.length > 0);
    assert.ok(!errors[0]!.message.includes('\n'));
  });

  it('reports a duplicate key', () => {
    const errors = errorsOf(loadConfigText('watch: true\nwatch: false\n', {}));
    assert.equal(errors[0]!.path, '(document)');
    assert.match(errors[0]!.message, /unique/i);
  });

  it('an empty or comment-only document is refused: a config needs a listener', () => {
    for (const text of ['', '# nothing yet\n', '---\n', 'listeners: []\n']) {
      const errors = errorsOf(loadConfigText(text, {}));
      assert.deepEqual(errors.map((e) => e.path), ['listeners'], JSON.stringify(text));
      assert.match(errors[0]!.message, /at least one listener/);
    }
  });

  it('fills every default of a one-listener document', () => {
    const c = okConfig(loadConfigText('listeners: [{ name: web, protocol: http, listen: 127.0.0.1:0 }]\n', {}));
    assert.deepEqual({ ...c, listeners: [] }, {
      configSource: { type: 'file' },
      log: { level: 'info' },
      watch: false,
      shutdownTimeout: 10_000,
      drain: 0,
      listeners: [],
      upstreams: [],
      routes: [],
      consumers: [],
      state: { store: 'memory' },
      tracing: { sample: 0.1 },
      certificates: [],
      workers: 1,
    });
  });

  it('reports several schema errors at once', () => {
    const text = `
bogus: 1
listeners:
  - name: web
    protocol: http
    listen: nowhere
  - name: other
    protocol: quic
    listen: 127.0.0.1:1
upstreams:
  - name: users
    targets: [{ address: 127.0.0.1:2003, weight: -2 }]
    timeouts: { connect: soon }
routes:
  - name: r
    listener: web
    upstream: users
    match: { bar: 1 }
`;
    const errors = errorsOf(loadConfigText(text, {}));
    const got = errors.map((e) => e.path).sort();
    assert.deepEqual(got, [
      'bogus',
      'listeners[0].listen',
      'listeners[1].protocol',
      'routes[0].match.bar',
      'upstreams[0].targets[0].weight',
      'upstreams[0].timeouts.connect',
    ]);
    assert.equal(errors.length, 6);
  });

  it('reports several reference errors at once', () => {
    const doc = base();
    doc.routes[0].upstream = 'x';
    doc.routes[0].listener = 'y';
    doc.routes.push({ name: 'r', listener: 'web', upstream: 'users' });
    const errors = errorsOf(validateConfig(doc, {}));
    assert.equal(errors.length, 3);
    assert.deepEqual(
      errors.map((e) => `${e.path}: ${e.message}`).sort(),
      ['routes[0].listener: no listener named "y"', 'routes[0].upstream: no upstream named "x"', 'routes[1].name: duplicate name "r"'],
    );
  });
});

describe('the issue example document', () => {
  const example = `admin:
  listen: 127.0.0.1:9180
listeners:
  - name: web
    protocol: http
    listen: 127.0.0.1:8080
upstreams:
  - name: users
    balancer: weighted-round-robin
    hashKey: ip
    targets:
      - { address: 127.0.0.1:2003, weight: 4 }
      - { address: 127.0.0.1:2004, weight: 2 }
    timeouts: { connect: 2s, response: 30s, idle: 60s }
routes:
  - name: users-api
    listener: web
    match: { host: "*.example.com", pathPrefix: /users, methods: [GET, POST] }
    stripPrefix: true
    rewrite: [{ pattern: "^/v1/(.*)$", replacement: "/v2/$1" }]
    requestHeaders: { set: { X-Gateway: portico }, remove: [X-Debug] }
    responseHeaders: { set: { X-Served-By: portico } }
    upstream: users
`;

  it('validates as written, with durations in ms and defaults filled in', () => {
    const c = okConfig(loadConfigText(example, {}));
    assert.deepEqual(c.admin, { listen: { host: '127.0.0.1', port: 9180 }, writeBack: true, diagnostics: false });
    assert.deepEqual(c.log, { level: 'info' });
    assert.equal(c.watch, false);
    assert.equal(c.shutdownTimeout, 10_000);

    assert.equal(c.listeners.length, 1);
    assert.deepEqual(c.listeners[0], {
      name: 'web',
      protocol: 'http',
      listen: { host: '127.0.0.1', port: 8080 },
      accessLog: true,
      trustedProxies: [],
      http2: { enabled: true, maxConcurrentStreams: 128 },
      timeouts: { headers: 30_000, request: 0, keepAlive: 60_000 },
      maxHeaderSize: 16_384,
    });

    assert.deepEqual(c.upstreams[0], {
      name: 'users',
      protocol: 'http1',
      balancer: 'weighted-round-robin',
      hashKey: 'ip',
      targets: [
        { address: '127.0.0.1:2003', weight: 4 },
        { address: '127.0.0.1:2004', weight: 2 },
      ],
      timeouts: { connect: 2000, response: 30_000, idle: 60_000 },
      maxConnections: 0,
      proxyProtocol: 'none',
    });

    assert.deepEqual(c.routes[0], {
      name: 'users-api',
      listener: 'web',
      priority: 0,
      match: { host: '*.example.com', pathPrefix: '/users', methods: ['GET', 'POST'] },
      stripPrefix: true,
      rewrite: [{ pattern: '^/v1/(.*)$', replacement: '/v2/$1' }],
      requestHeaders: { set: { 'X-Gateway': 'portico' }, remove: ['X-Debug'] },
      responseHeaders: { set: { 'X-Served-By': 'portico' } },
      preserveHost: true,
      upstream: 'users',
      middlewares: [],
      websocket: { enabled: true, idleTimeout: 300_000, maxFrameSize: 16 * 1024 * 1024 },
    });
  });

  it('upstream timeouts default when omitted', () => {
    const c = okConfig(validateConfig(base(), {}));
    assert.deepEqual(c.upstreams[0]!.timeouts, { connect: 5000, response: 60_000, idle: 60_000 });
    assert.equal(c.upstreams[0]!.balancer, 'weighted-round-robin');
    assert.equal(c.upstreams[0]!.targets[0]!.weight, 1);
  });
});

describe('formatPath', () => {
  it('joins keys with dots and indexes with brackets', () => {
    assert.equal(formatPath(['routes', 0, 'match', 'foo']), 'routes[0].match.foo');
    assert.equal(formatPath(['upstreams', 1, 'targets', 2]), 'upstreams[1].targets[2]');
    assert.equal(formatPath([]), '(root)');
  });
});

describe('parseDuration', () => {
  it('parses units into milliseconds', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('2s'), 2000);
    assert.equal(parseDuration('1m'), 60_000);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('0s'), 0);
    assert.equal(parseDuration(' 2s '), 2000);
  });

  it('takes a number as milliseconds', () => {
    assert.equal(parseDuration(250), 250);
    assert.equal(parseDuration(0), 0);
  });

  it('takes a digit string as milliseconds (numbers interpolated from the environment)', () => {
    assert.equal(parseDuration('250'), 250);
  });

  it('rejects anything else', () => {
    for (const bad of ['', 's', '-1s', '1d', '2 s', '1e3ms', '.5s', 'soon', '-2']) {
      assert.equal(parseDuration(bad), undefined, JSON.stringify(bad));
    }
    assert.equal(parseDuration(-1), undefined);
    assert.equal(parseDuration(Number.NaN), undefined);
    assert.equal(parseDuration(Number.POSITIVE_INFINITY), undefined);
  });
});

describe('parseHostPort', () => {
  it('parses IPv4 and names', () => {
    assert.deepEqual(parseHostPort('127.0.0.1:80'), { host: '127.0.0.1', port: 80 });
    assert.deepEqual(parseHostPort('localhost:65535'), { host: 'localhost', port: 65535 });
    assert.deepEqual(parseHostPort('0.0.0.0:0'), { host: '0.0.0.0', port: 0 });
  });

  it('parses bracketed IPv6 without the brackets', () => {
    assert.deepEqual(parseHostPort('[::1]:80'), { host: '::1', port: 80 });
    assert.deepEqual(parseHostPort('[2001:db8::1]:8443'), { host: '2001:db8::1', port: 8443 });
  });

  it('rejects a missing port, a bad port, bare IPv6 and an empty host', () => {
    for (const bad of ['127.0.0.1', '127.0.0.1:', 'host:70000', 'host:65536', 'host:-1', 'host:8o', '::1:80', '[::1]', '[::1]80', ':80', '[]:80']) {
      assert.equal(parseHostPort(bad), undefined, bad);
    }
  });

  it('formatHostPort brackets IPv6', () => {
    assert.equal(formatHostPort({ host: '::1', port: 80 }), '[::1]:80');
    assert.equal(formatHostPort({ host: '127.0.0.1', port: 80 }), '127.0.0.1:80');
  });
});

describe('header rules and gateway-owned headers', () => {
  it('refuses rules that set Host, framing or hop-by-hop headers', () => {
    for (const name of ['Host', 'Content-Length', 'Transfer-Encoding', 'Connection', 'Expect', 'X-Request-Id']) {
      const r = validateConfig({
        listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0' }],
        upstreams: [{ name: 'up', targets: [{ address: '127.0.0.1:9' }] }],
        routes: [{ name: 'r', listener: 'web', upstream: 'up', requestHeaders: { set: { [name]: 'x' } } }],
      }, {});
      assert.equal(r.ok, false, name);
      if (!r.ok) assert.match(r.errors.map((e) => `${e.path}: ${e.message}`).join('\n'), /routes\[0\]\.requestHeaders\.set\.[A-Za-z-]+: .*managed by the gateway/);
    }
  });

  it('refuses a request timeout shorter than the headers timeout', () => {
    const r = validateConfig({ listeners: [{ name: 'web', protocol: 'http', listen: '127.0.0.1:0', timeouts: { request: '10s' } }] }, {});
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.errors[0]!.path, 'listeners[0].timeouts.request');
  });
});

describe('validateConfig: configSource and discovery', () => {
  it('takes the documented shapes, with their defaults', () => {
    const c = okConfig(
      validateConfig(
        (() => {
          const d = base();
          d.configSource = { type: 'zookeeper', servers: ['127.0.0.1:2181'] };
          d.upstreams = [
            { name: 'users', discovery: { type: 'zookeeper', servers: ['127.0.0.1:2181'], path: '/real_server' } },
            { name: 'orders', discovery: { type: 'etcd', endpoints: ['http://127.0.0.1:2379'], prefix: '/services/orders' } },
            { name: 'billing', discovery: { type: 'dns', name: '_billing._tcp.example.internal', record: 'SRV' }, healthCheck: { active: { type: 'http', path: '/health', interval: '2s' } } },
          ];
          return d;
        })(),
        {},
      ),
    );
    assert.deepEqual(c.configSource, { type: 'zookeeper', servers: ['127.0.0.1:2181'], path: '/portico', timeout: 5000, sessionTimeout: 10_000 });
    assert.equal(c.upstreams[0]!.targets.length, 0);
    assert.deepEqual(c.upstreams[2]!.discovery, { type: 'dns', name: '_billing._tcp.example.internal', record: 'SRV', minTtl: 1000, maxTtl: 300_000, timeout: 2000, emptyGrace: 5000 });
  });

  it('refuses each bad field with its path and why, as a class', () => {
    const cases: [(d: Record<string, any>) => void, string, RegExp][] = [
      [(d) => (d.configSource = { type: 'consul' }), 'configSource.type', /file, etcd or zookeeper/],
      [(d) => (d.configSource = { type: 'etcd' }), 'configSource.endpoints', /./],
      [(d) => (d.configSource = { type: 'etcd', endpoints: ['127.0.0.1:2379'] }), 'configSource.endpoints[0]', /etcd client URL/],
      [(d) => (d.configSource = { type: 'etcd', endpoints: ['http://h:1'], prefix: 'portico' }), 'configSource.prefix', /absolute path/],
      [(d) => (d.configSource = { type: 'etcd', endpoints: ['http://h:1'], prefix: '/portico/' }), 'configSource.prefix', /absolute path/],
      [(d) => (d.configSource = { type: 'zookeeper', servers: ['h'] }), 'configSource.servers[0]', /host:port/],
      [(d) => (d.configSource = { type: 'zookeeper', servers: ['h:1'], sessionTimeout: '100ms' }), 'configSource.sessionTimeout', /1s to 1m/],
      [(d) => (d.configSource = { type: 'file', endpoints: [] }), 'configSource.endpoints', /./],
      [(d) => (d.upstreams[0].targets = []), 'upstreams[0].targets', /or a discovery/],
      [(d) => (d.upstreams[0].discovery = { type: 'dns', name: 'api.internal' }), 'upstreams[0].discovery.port', /carries no port/],
      [(d) => (d.upstreams[0].discovery = { type: 'dns', name: '_a._tcp.x', record: 'SRV', port: 80 }), 'upstreams[0].discovery.port', /own ports/],
      [(d) => (d.upstreams[0].discovery = { type: 'dns', name: 'a.x', port: 80, minTtl: '10m', maxTtl: '1m' }), 'upstreams[0].discovery.minTtl', /not be more than maxTtl/],
      [(d) => (d.upstreams[0].discovery = { type: 'dns', name: 'bad name', port: 80 }), 'upstreams[0].discovery.name', /DNS name/],
      [(d) => (d.upstreams[0].discovery = { type: 'zookeeper', servers: ['h:1'] }), 'upstreams[0].discovery.path', /./],
      [(d) => (d.upstreams[0].discovery = { type: 'etcd', endpoints: ['http://h:1'], prefix: '/p', emptyGrace: 'soon' }), 'upstreams[0].discovery.emptyGrace', /duration/],
      [(d) => (d.upstreams[0].discovery = { type: 'mdns' }), 'upstreams[0].discovery.type', /zookeeper, etcd or dns/],
    ];
    for (const [edit, path, why] of cases) {
      const e = oneError(edit);
      assert.equal(e.path, path, JSON.stringify(e));
      assert.match(e.message, why);
    }
  });
});
