// Reading a config document: YAML anchors and aliases (ordinary reuse
// allowed, expansion bombs refused by size), syntax errors with a line,
// column and code frame, "did you mean", and the messages for common slips.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText, type LoadResult } from '../../src/config/load.js';
import { formatConfigErrors, type ConfigError } from '../../src/config/errors.js';
import { MAX_EXPANDED_NODES, readYaml } from '../../src/config/yaml-document.js';
import { editDistance, suggestKey } from '../../src/config/did-you-mean.js';

function errorsOf(r: LoadResult): ConfigError[] {
  assert.equal(r.ok, false, 'expected the document to be refused');
  return (r as { errors: ConfigError[] }).errors;
}

const LISTENER = 'listeners: [{ name: web, protocol: http, listen: 127.0.0.1:0 }]\n';

/** A normal file: one anchor reused by `n` upstreams. */
function reuse(n: number): string {
  let text = `${LISTENER}x-timeouts: &t { connect: 1s, response: 5s, idle: 30s }\nupstreams:\n`;
  for (let i = 0; i < n; i++) text += `  - { name: u${i}, targets: [{ address: "127.0.0.1:${2000 + i}" }], timeouts: *t }\n`;
  return text;
}

/** The billion laughs: `levels` levels of `fan` aliases each. */
function bomb(levels: number, fan = 10): string {
  let text = `a0: &a0 [${Array(fan).fill('"lol"').join(', ')}]\n`;
  for (let i = 1; i < levels; i++) text += `a${i}: &a${i} [${Array(fan).fill(`*a${i - 1}`).join(', ')}]\n`;
  return text;
}

describe('YAML anchors and aliases', () => {
  it('reading a document that reuses one anchor 120 times is ordinary (it is not refused as an attack)', () => {
    const r = readYaml(reuse(120));
    assert.equal(r.ok, true);
    const data = (r as { data: { upstreams: { timeouts: unknown }[] } }).data;
    assert.equal(data.upstreams.length, 120);
    assert.deepEqual(data.upstreams[119]!.timeouts, { connect: '1s', response: '5s', idle: '30s' });
  });

  it('1,000 reuses of an anchor still read', () => {
    assert.equal(readYaml(reuse(1000)).ok, true);
  });

  it('`<<` merge keys are supported', () => {
    const r = readYaml('base: &b { connect: 1s, idle: 2s }\nt: { <<: *b, idle: 9s }\n');
    assert.equal(r.ok, true);
    assert.deepEqual((r as { data: { t: unknown } }).data.t, { connect: '1s', idle: '9s' });
  });

  it('an expansion bomb is refused by its expanded size, naming the line of the alias that crossed the limit and the limit', () => {
    const text = bomb(9);
    const started = Date.now();
    const r = readYaml(text);
    assert.equal(r.ok, false);
    const p = (r as { problem: { message: string; line: number; column: number; frame: string } }).problem;
    assert.match(p.message, /1,000,000 nodes/);
    assert.match(p.message, /\*a\d/);
    // a5 holds 10^6 "lol"s: the limit is crossed on that line.
    assert.equal(p.line, 6);
    assert.match(p.frame, /> 6 \| a5: &a5/);
    assert.ok(Date.now() - started < 5000, 'measured without being expanded');
  });

  it('a bomb just under the limit reads; one level more is refused', () => {
    // 10^5 leaves + inner nodes < 1,000,000; the next level is > 1,000,000.
    assert.equal(readYaml(bomb(5)).ok, true);
    assert.equal(readYaml(bomb(6)).ok, false);
    assert.ok(MAX_EXPANDED_NODES >= 1_000_000);
  });

  it('a recursive alias is refused with its position', () => {
    const r = readYaml('a: &a\n  b: [1, *a]\n');
    assert.equal(r.ok, false);
    const p = (r as { problem: { message: string; line: number } }).problem;
    assert.match(p.message, /recursive alias/);
    assert.equal(p.line, 2);
  });

  it('an alias with no anchor before it is refused with its position', () => {
    const r = readYaml('a: *later\nb: &later 1\n');
    assert.equal(r.ok, false);
    const p = (r as { problem: { message: string; line: number; column: number } }).problem;
    assert.match(p.message, /\*later has no anchor &later before it/);
    assert.deepEqual([p.line, p.column], [1, 4]);
  });

  it('loadConfigText reports a bomb as one error at its line, and never throws', () => {
    const errors = errorsOf(loadConfigText(`${LISTENER}${bomb(8)}`, {}));
    assert.equal(errors.length, 1);
    assert.equal(typeof errors[0]!.line, 'number');
    assert.match(formatConfigErrors('c.yaml', errors), /^c\.yaml:\d+:\d+: the document expands to more than 1,000,000 nodes/);
  });
});

describe('syntax errors', () => {
  it('one indentation slip gives one error with file:line:column and a code frame', () => {
    const text = 'listeners:\n  - name: web\n    protocol: http\n   listen: 127.0.0.1:8080\nupstreams: []\n';
    const errors = errorsOf(loadConfigText(text, {}));
    assert.equal(errors.length, 1);
    const printed = formatConfigErrors('my.yaml', errors);
    const lines = printed.split('\n');
    assert.match(lines[0]!, /^my\.yaml:4:1: /);
    assert.ok(lines.length <= 5, printed);
    assert.ok(lines.some((l) => l.startsWith('> 4 |    listen: 127.0.0.1:8080')), printed);
    assert.ok(lines.some((l) => /^\s+\| \^$/.test(l)), printed);
  });

  it('a duplicate key is an error at its line', () => {
    const errors = errorsOf(loadConfigText('watch: true\nwatch: false\n', {}));
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.line, 2);
    assert.match(errors[0]!.message, /unique/i);
  });

  it('the frame of a very long line is cut', () => {
    const errors = errorsOf(loadConfigText(`a: [${'x'.repeat(10_000)}\n`, {}));
    assert.ok(formatConfigErrors('c', errors).length < 1000);
  });
});

describe('messages for common slips', () => {
  it('an unknown key says which known key it is close to, in the object it was written in', () => {
    const text = `listeners:\n  - { name: web, protocol: http, lisen: 127.0.0.1:0 }\nupstreams:\n  - { name: u, target: [{ address: "127.0.0.1:1" }], timeout: { connect: 1s }, balancr: p2c }\n`;
    const messages = errorsOf(loadConfigText(text, {})).map((e) => `${e.path}: ${e.message}`);
    assert.ok(messages.includes('listeners[0].lisen: unknown key (did you mean "listen"?)'), messages.join('\n'));
    assert.ok(messages.includes('upstreams[0].target: unknown key (did you mean "targets"?)'), messages.join('\n'));
    assert.ok(messages.includes('upstreams[0].timeout: unknown key (did you mean "timeouts"?)'), messages.join('\n'));
    assert.ok(messages.includes('upstreams[0].balancr: unknown key (did you mean "balancer"?)'), messages.join('\n'));
    // A required key left out says so (not zod's "expected string, received undefined").
    assert.ok(messages.includes('listeners[0].listen: is required'), messages.join('\n'));
  });

  it('no suggestion for a key far from every known one; top-level keys are suggested too', () => {
    assert.equal(suggestKey('zzzzzzzz', [], ['listeners']), undefined);
    assert.equal(suggestKey('upstream', [], ['listeners']), 'upstreams');
    assert.equal(suggestKey('pathprefix', ['routes', 0, 'match'], []), 'pathPrefix');
    assert.equal(editDistance('ab', 'ba'), 1);
  });

  it('an invalid regular expression says why', () => {
    const text = `${LISTENER}routes:\n  - { name: r, listener: web, respond: {}, match: { pathRegex: "^/(a" } }\n`;
    const [e] = errorsOf(loadConfigText(text, {}));
    assert.equal(e!.path, 'routes[0].match.pathRegex');
    assert.match(e!.message, /^must be a valid regular expression: .*Unterminated group/);
  });

  it('a target written as a URL gets a hint with the address to write', () => {
    const text = `${LISTENER}upstreams:\n  - { name: u, targets: [{ address: "http://10.0.0.1:8080/" }, { address: "https://api.example.com" }] }\n`;
    const errors = errorsOf(loadConfigText(text, {}));
    assert.match(errors[0]!.message, /write "10\.0\.0\.1:8080"/);
    assert.match(errors[1]!.message, /write "api\.example\.com:443"/);
  });

  it('a duration longer than the longest Node.js timer is refused (it would fire at once)', () => {
    const text = `${LISTENER}upstreams:\n  - { name: u, targets: [{ address: "127.0.0.1:1" }], timeouts: { response: 700h } }\n`;
    const [e] = errorsOf(loadConfigText(text, {}));
    assert.equal(e!.path, 'upstreams[0].timeouts.response');
    assert.match(e!.message, /at most 596h/);
    assert.equal(loadConfigText(text.replace('700h', '596h'), {}).ok, true);
  });
});
