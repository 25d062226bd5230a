import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { validateConfig } from '../../src/config/load.js';
import { RequestContext, type ListenerRuntime } from '../../src/snapshot/snapshot.js';
import { AccessLog, AccessLogRegistry, jsonString, LogDestination } from '../../src/observability/access-log.js';
import { ACCESS_LOG_FIELDS, DEFAULT_ACCESS_LOG_FIELDS, MASKED_QUERY_PARAMS } from '../../src/config/schemas/access-log.js';
import { maskedNames, maskQuery, maskUserinfo } from '../../src/observability/redact.js';
import { fromAmznTraceId, fromB3, fromCloudTraceContext, fromTraceparent, readLoggedHeaders } from '../../src/observability/trace-id.js';
import { waitFor } from '../helpers/wait.js';

const DEFAULT_NAMES = maskedNames(MASKED_QUERY_PARAMS);
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACEPARENT = `00-${TRACE}-00f067aa0ba902b7-01`;

describe('query masking', () => {
  it('masks every credential parameter, case-insensitively, and keeps the rest as sent', () => {
    assert.equal(maskQuery('a=1&ACCESS_TOKEN=abc&b=%20x&Token=t&api_key=k&apikey=k&key=k', DEFAULT_NAMES), 'a=1&ACCESS_TOKEN=***&b=%20x&Token=***&api_key=***&apikey=***&key=***');
    assert.equal(
      maskQuery('password=p&passwd=p&secret=s&signature=s&sig=s&code=c&client_secret=c&auth=a&keep=1', DEFAULT_NAMES),
      'password=***&passwd=***&secret=***&signature=***&sig=***&code=***&client_secret=***&auth=***&keep=1',
    );
  });

  it('compares names after percent-decoding, and masks bracketed names by base or key', () => {
    assert.equal(maskQuery('access%5Ftoken=x&%74oken=y&user%5Bpassword%5D=z', DEFAULT_NAMES), 'access%5Ftoken=***&%74oken=***&user%5Bpassword%5D=***');
    assert.equal(maskQuery('token[]=a&token[]=b&user[password]=c&user[name]=d', DEFAULT_NAMES), 'token[]=***&token[]=***&user[password]=***&user[name]=d');
    // An invalid escape leaves the name comparable by its valid escapes.
    assert.equal(maskQuery('%E0%74oken=1', DEFAULT_NAMES), '%E0%74oken=1');
    assert.equal(maskQuery('%74oken%=1', DEFAULT_NAMES), '%74oken%=1');
  });

  it('masks the whole value, `=` and all; a name without `=` has no value to mask', () => {
    assert.equal(maskQuery('token=a=b==&token&token=', DEFAULT_NAMES), 'token=***&token&token=***');
    assert.equal(maskQuery('', DEFAULT_NAMES), '');
    assert.equal(maskQuery('&&', DEFAULT_NAMES), '&&');
  });

  it('masks `;`-separated credentials inside another parameter (servers that split on `;`)', () => {
    assert.equal(maskQuery('a=1;token=x;b=2', DEFAULT_NAMES), 'a=1;token=***;b=2');
    assert.equal(maskQuery('token=x;b=2', DEFAULT_NAMES), 'token=***');
  });

  it('masks configured names too', () => {
    const names = maskedNames([...MASKED_QUERY_PARAMS, 'Session']);
    assert.equal(maskQuery('session=s&SESSION=t&sessions=u', names), 'session=***&SESSION=***&sessions=u');
  });

  it('masks URL userinfo in values, written or percent-encoded', () => {
    assert.equal(maskQuery('next=https://bob:pw@example.com/x', DEFAULT_NAMES), 'next=https://***@example.com/x');
    assert.equal(maskQuery('next=https%3A%2F%2Fbob%3Apw%40example.com%2Fx', DEFAULT_NAMES), 'next=https%3A%2F%2F***%40example.com%2Fx');
  });
});

describe('URL userinfo', () => {
  it('replaces userinfo and keeps everything else', () => {
    assert.equal(maskUserinfo('/go/http://u:p@h:8080/a?b#c'), '/go/http://***@h:8080/a?b#c');
    assert.equal(maskUserinfo('ftp://a@b and wss://c:d@e/f'), 'ftp://***@b and wss://***@e/f');
    assert.equal(maskUserinfo('http://u:p@x@host/'), 'http://***@host/');
    assert.equal(maskUserinfo('HTTPS%3a%2f%2fu%3Ap%40host'), 'HTTPS%3a%2f%2f***%40host');
  });

  it('a scheme glued to a long run of letters is one scheme (each start tried once: a 16,000-letter path is linear work)', () => {
    const run = 'a'.repeat(16_000);
    assert.equal(maskUserinfo(`/${run}://u:p@h/`), `/${run}://***@h/`);
    assert.equal(maskUserinfo(`/${run}/://u:p@h/`), `/${run}/://u:p@h/`);
    assert.equal(maskUserinfo(`${run} http://u:p@h/`), `${run} http://***@h/`);
  });

  it('leaves URLs without userinfo, and text without URLs, untouched', () => {
    for (const s of ['/a/b', 'https://host/p@q', 'mail a@b.c', 'http://host?x=a@b', 'curl/8.5.0', 'http://', 'x://@']) {
      assert.equal(maskUserinfo(s), s.endsWith('://@') ? 'x://***@' : s);
    }
  });
});

describe('trace ids', () => {
  it('traceparent: the trace id of a valid value only', () => {
    assert.equal(fromTraceparent(TRACEPARENT), TRACE);
    assert.equal(fromTraceparent(`01-${TRACE}-00f067aa0ba902b7-01-future`), TRACE, 'a later version may append parts');
    for (const bad of [
      '',
      'garbage',
      `00-${TRACE.toUpperCase()}-00f067aa0ba902b7-01`,
      `ff-${TRACE}-00f067aa0ba902b7-01`,
      `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`,
      `00-${TRACE}-${'0'.repeat(16)}-01`,
      `00-${TRACE}-00f067aa0ba902b7-01-extra`,
      `00-${TRACE.slice(1)}-00f067aa0ba902b7-01`,
      `00-${TRACE}-00f067aa0ba902b7`,
      `00_${TRACE}_00f067aa0ba902b7_01`,
      `00-${TRACE}"-00f067aa0ba902b7-01`,
    ]) {
      assert.equal(fromTraceparent(bad), undefined, bad);
    }
  });

  it('B3, Cloud Trace and X-Ray formats', () => {
    assert.equal(fromB3('463AC35C9F6413AD'), '463ac35c9f6413ad');
    assert.equal(fromB3(TRACE), TRACE);
    assert.equal(fromB3('463ac35c9f6413a'), undefined);
    assert.equal(fromB3('0000000000000000'), undefined);
    assert.equal(fromCloudTraceContext(`${TRACE}/1;o=1`), TRACE);
    assert.equal(fromCloudTraceContext(TRACE), TRACE);
    assert.equal(fromCloudTraceContext(`${TRACE}x/1`), undefined);
    assert.equal(fromAmznTraceId('Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1'), '1-5759e988-bd862e3fe1be46a994272793');
    assert.equal(fromAmznTraceId('Self=1-5759e988-bd862e3fe1be46a994272793; Root=1-5759e988-bd862e3fe1be46a994272794'), '1-5759e988-bd862e3fe1be46a994272794');
    assert.equal(fromAmznTraceId('Root=1-5759e988-bd862e3f"e1be46a994272793'), undefined);
    assert.equal(fromAmznTraceId('Parent=53995c3f42cd8ad8'), undefined);
  });

  it('takes traceparent first, then B3, Cloud, X-Ray; an invalid or repeated traceparent is skipped', () => {
    const b3 = '463ac35c9f6413ad';
    const all = ['traceparent', TRACEPARENT, 'X-B3-TraceId', b3, 'x-cloud-trace-context', `${'a'.repeat(32)}/1`, 'X-Amzn-Trace-Id', 'Root=1-5759e988-bd862e3fe1be46a994272793'];
    assert.equal(readLoggedHeaders(all, true).traceId, TRACE);
    assert.equal(readLoggedHeaders(['traceparent', 'nope', ...all.slice(2)], true).traceId, b3);
    assert.equal(readLoggedHeaders(['traceparent', TRACEPARENT, ...all], true).traceId, b3, 'two traceparent headers');
    assert.equal(readLoggedHeaders(all.slice(4), true).traceId, 'a'.repeat(32));
    assert.equal(readLoggedHeaders(all.slice(6), true).traceId, '1-5759e988-bd862e3fe1be46a994272793');
    assert.equal(readLoggedHeaders(all, false).traceId, undefined, 'not looked for when not logged');
    assert.deepEqual(readLoggedHeaders(['User-Agent', 'a', 'user-agent', 'b'], true), { userAgent: 'a', traceId: undefined });
  });

  it('property: whatever the headers hold, a trace id is hex digits and dashes only', () => {
    const name = fc.constantFrom('traceparent', 'x-b3-traceid', 'x-cloud-trace-context', 'x-amzn-trace-id');
    const value = fc.oneof(fc.string({ unit: 'binary' }), fc.constant(TRACEPARENT), fc.stringMatching(/^[0-9a-fA-F-]{1,60}$/), fc.stringMatching(/^Root=1-[0-9a-f]{8}-[0-9a-f]{24}.{0,4}$/));
    fc.assert(
      fc.property(fc.array(fc.tuple(name, value), { maxLength: 5 }), (pairs) => {
        const id = readLoggedHeaders(pairs.flat(), true).traceId;
        return id === undefined || /^[0-9a-f-]+$/.test(id);
      }),
      { numRuns: 500 },
    );
  });
});

describe('JSON strings', () => {
  it('escapes quotes, backslashes and everything outside printable ASCII', () => {
    assert.equal(jsonString('plain /path?x'), '"plain /path?x"');
    assert.equal(jsonString('a"b\\c\n\u0000\u007f\u009b\u00e9\u2028\ud800'), '"a\\"b\\\\c\\u000a\\u0000\\u007f\\u009b\\u00e9\\u2028\\ud800"');
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        const lit = jsonString(s);
        return /^[\x20-\x7e]*$/.test(lit) && JSON.parse(lit) === s;
      }),
      { numRuns: 1000 },
    );
  });
});

/** A real (unconnected) request and its context, as the log phase sees them. */
function context(o: { url?: string; method?: string; rawHeaders?: string[]; h2?: boolean; path?: string; query?: string } = {}): RequestContext {
  const req = new http.IncomingMessage(new net.Socket());
  req.method = o.method ?? 'GET';
  req.url = o.url ?? '/';
  req.rawHeaders = o.rawHeaders ?? [];
  req.httpVersionMajor = 1;
  req.httpVersionMinor = 1;
  req.httpVersion = '1.1';
  const res = new http.ServerResponse(req);
  const ctx = new RequestContext(req, res, { name: 'web' } as ListenerRuntime, 'req-1', '127.0.0.1', o.h2 ?? false);
  ctx.path = o.path ?? '/';
  ctx.query = o.query ?? '';
  ctx.status = 200;
  return ctx;
}

/** An AccessLog writing nowhere: these tests read `line()`. */
function format(fields?: (typeof ACCESS_LOG_FIELDS)[number][], mask?: string[]): AccessLog {
  return new AccessLog({ dest: 'unused' } as LogDestination, fields, mask);
}

describe('access-log lines', () => {
  it('writes exactly the chosen fields that apply, in the fixed order', () => {
    const ctx = context({ path: '/p', query: '?a=1&token=t', rawHeaders: ['User-Agent', 'ua/1', 'traceparent', TRACEPARENT] });
    const line = format(['status', 'query', 'traceId', 'route']).line(ctx, ctx.startedAt);
    assert.equal(line, `{"traceId":"${TRACE}","query":"a=1&token=***","status":200}\n`);
    const all = JSON.parse(format().line(ctx, ctx.startedAt)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(all), ['time', 'type', 'requestId', 'traceId', 'listener', 'client', 'method', 'path', 'query', 'protocol', 'userAgent', 'status', 'bytesReceived', 'bytesSent', 'durationMs']);
    assert.deepEqual(DEFAULT_ACCESS_LOG_FIELDS.filter((f) => f !== 'host' && f !== 'consumer').length, ACCESS_LOG_FIELDS.length - 2);
    assert.equal(format(['route']).line(ctx, ctx.startedAt), '{}\n', 'a field that does not apply is left out, even the first');
  });

  it('protocol: the request\'s HTTP version', () => {
    const h1 = context();
    assert.equal(JSON.parse(format(['protocol']).line(h1, h1.startedAt)).protocol, 'HTTP/1.1');
    h1.req.httpVersionMinor = 0;
    assert.equal(JSON.parse(format(['protocol']).line(h1, h1.startedAt)).protocol, 'HTTP/1.0');
    const h2 = context({ h2: true });
    assert.equal(JSON.parse(format(['protocol']).line(h2, h2.startedAt)).protocol, 'HTTP/2');
  });

  it('property: any path, query, user agent and header bytes give one line of valid, printable JSON without credential values', () => {
    const credName = fc.constantFrom(...MASKED_QUERY_PARAMS, 'Token', 'PASSWORD', 'access%5Ftoken', 'mine');
    const anyText = fc.string({ unit: 'binary', maxLength: 40 });
    const param = fc.oneof(
      fc.record({ cred: fc.constant(true), name: credName, value: fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }).filter((v) => !v.includes('&') && !/^\**$/.test(v)) }),
      fc.record({ cred: fc.constant(false), name: fc.string({ unit: 'binary', maxLength: 10 }).filter((n) => !n.includes('&') && !n.includes('=')), value: anyText.filter((v) => !v.includes('&')) }),
    );
    const log = format(undefined, ['mine']);
    fc.assert(
      fc.property(fc.array(param, { maxLength: 6 }), anyText, anyText, anyText, (params, path, ua, tp) => {
        const query = params.map((p) => `${p.name}=${p.value}`).join('&');
        const ctx = context({ path: `/${path}`, query: `?${query}`, rawHeaders: ['user-agent', ua, 'traceparent', tp, 'x-weird\u0001', 'v\u0000'] });
        const line = log.line(ctx, ctx.startedAt);
        assert.ok(line.endsWith('}\n') && line.indexOf('\n') === line.length - 1, 'one line');
        assert.match(line.slice(0, -1), /^[\x20-\x7e]*$/, 'printable ASCII only');
        const parsed = JSON.parse(line) as Record<string, string>;
        const out = parsed.query!.split('&');
        // What the line's query holds besides the masked `name=***` parameters, and what the request had there.
        const rest = out.filter((_, j) => params[j]?.cred !== true).join('&');
        const sentElsewhere = params.filter((q) => !q.cred).map((q) => `${q.name}=${q.value}`).join('&');
        params.forEach((p, i) => {
          if (!p.cred) return;
          assert.equal(out[i], `${p.name}=***`);
          // The value is gone, unless the request also carried it in another parameter.
          if (!sentElsewhere.includes(p.value)) assert.ok(!rest.includes(p.value), `value ${JSON.stringify(p.value)} leaked`);
        });
        return true;
      }),
      { numRuns: 400 },
    );
  });
});

describe('config', () => {
  const doc = (accessLog: unknown, protocol = 'http') => ({
    listeners: [{ name: 'web', protocol, listen: '127.0.0.1:0', accessLog, ...(protocol === 'tcp' ? { upstream: 'up' } : {}) }],
    upstreams: [{ name: 'up', targets: [{ address: '127.0.0.1:1' }] }],
    routes: protocol === 'http' ? [{ name: 'r', listener: 'web', upstream: 'up' }] : [],
  });
  const errors = (accessLog: unknown, protocol?: string) => {
    const r = validateConfig(doc(accessLog, protocol));
    return r.ok ? [] : r.errors;
  };

  it('accepts true, false, a path, a field list and extra masked parameters', () => {
    for (const v of [true, false, { path: '/tmp/x.log' }, {}, { fields: ['status', 'path'] }, { path: '/tmp/x.log', fields: [...ACCESS_LOG_FIELDS], maskQueryParams: ['session'] }]) {
      assert.deepEqual(errors(v), [], JSON.stringify(v));
    }
  });

  it('an unknown or repeated field name is an error at its path', () => {
    const e = errors({ fields: ['status', 'bogus', 'status'] });
    assert.deepEqual(e.map((x) => x.path), ['listeners[0].accessLog.fields[1]', 'listeners[0].accessLog.fields[2]']);
    assert.match(e[0]!.message, /unknown access-log field "bogus"; one of: time, type/);
    assert.match(e[1]!.message, /listed twice/);
    assert.equal(errors({ fields: [] })[0]!.path, 'listeners[0].accessLog.fields');
    assert.equal(errors({ maskQueryParams: [''] })[0]!.path, 'listeners[0].accessLog.maskQueryParams[0]');
  });

  it('L4 listeners choose the destination only', () => {
    assert.deepEqual(errors({ path: '/tmp/x.log' }, 'tcp'), []);
    assert.deepEqual(errors({ fields: ['status'] }, 'tcp').map((x) => x.path), ['listeners[0].accessLog.fields']);
  });
});

describe('destinations', () => {
  it('a file that cannot be opened is refused at once, with the reason', () => {
    const registry = new AccessLogRegistry();
    const dir = fs.mkdtempSync(join(os.tmpdir(), 'portico-al-'));
    try {
      fs.writeFileSync(join(dir, 'file'), '');
      assert.throws(() => registry.forListener({ path: join(dir, 'file', 'access.log'), maskQueryParams: [] }), /ENOTDIR|EEXIST/);
      assert.throws(() => registry.forListener({ path: dir, maskQueryParams: [] }), /EISDIR/);
    } finally {
      registry.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reopen: lines before it (buffered ones too) stay in the renamed file, later ones go to a new file at the path; a stop right after loses none', async () => {
    const dir = fs.mkdtempSync(join(os.tmpdir(), 'portico-al-'));
    const file = join(dir, 'access.log');
    const registry = new AccessLogRegistry();
    try {
      const log = registry.forListener({ path: file, maskQueryParams: [] })!;
      const lines = (f: string) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).length;
      const ctx = context();
      log.write(ctx);
      log.write(ctx);
      await waitFor(() => {
        registry.get(file).flush();
        return lines(file) === 2;
      }, 'the first lines');
      fs.renameSync(file, `${file}.1`);
      log.write(ctx); // still buffered when the reopen starts
      assert.equal(registry.reopen(), 1);
      log.write(ctx);
      // Closed while the reopen waits for the buffered write: sonic-boom alone would drop the reopen and the last line.
      registry.close();
      await waitFor(() => fs.existsSync(file) && lines(file) === 1, 'the new file').catch((e) => { throw new Error(`${String(e)}: new ${fs.readFileSync(file, 'utf8')} old ${fs.readFileSync(`${file}.1`, 'utf8')}`); });
      assert.equal(lines(`${file}.1`), 3);
      assert.equal(new AccessLogRegistry().reopen(), 0, 'stdout is not reopened');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a reopen that fails is reported, and lines keep going to the file already open', async () => {
    const dir = fs.mkdtempSync(join(os.tmpdir(), 'portico-al-'));
    const file = join(dir, 'access.log');
    const errors: string[] = [];
    const registry = new AccessLogRegistry((dest, err) => errors.push(`${dest}: ${(err as NodeJS.ErrnoException).code}`));
    try {
      const log = registry.forListener({ path: file, maskQueryParams: [] })!;
      const lines = (f: string) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).length;
      const ctx = context();
      log.write(ctx);
      await waitFor(() => {
        registry.get(file).flush();
        return lines(file) === 1;
      }, 'the first line');
      fs.renameSync(file, `${file}.1`);
      fs.mkdirSync(file); // the path cannot be opened as a file any more
      registry.reopen();
      await waitFor(() => errors.length === 1, 'the error');
      assert.deepEqual(errors, [`${file}: EISDIR`]);
      log.write(ctx);
      registry.close();
      await waitFor(() => lines(`${file}.1`) === 2, 'the second line in the old file');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
