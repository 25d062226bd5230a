// SNI routing of `tls` listeners (src/l4/tls/sni-router.ts): exact names,
// then the longest `*.suffix`, then the default; case and trailing dots.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SniRouter } from '../../src/l4/tls/sni-router.js';

describe('SniRouter', () => {
  const routes = [
    { sni: 'db.example.com', value: 'db' },
    { sni: '*.example.com', value: 'any-example' },
    { sni: '*.eu.example.com', value: 'eu' },
    { sni: 'db.example.com', value: 'shadowed' },
    { sni: '*.example.com', value: 'shadowed-wild' },
  ];
  const router = new SniRouter(routes, 'default');

  it('prefers an exact name, then the longest wildcard suffix, then the default', () => {
    assert.equal(router.pick('db.example.com'), 'db');
    assert.equal(router.pick('web.example.com'), 'any-example');
    assert.equal(router.pick('a.b.example.com'), 'any-example', 'a wildcard spans several labels');
    assert.equal(router.pick('db.eu.example.com'), 'eu', 'the longer suffix wins whatever the order');
    assert.equal(router.pick('example.com'), 'default', '*.example.com does not match example.com');
    assert.equal(router.pick('badexample.com'), 'default', 'a suffix matches on a label boundary');
    assert.equal(router.pick('other.test'), 'default');
    assert.equal(router.pick(null), 'default', 'no SNI');
  });

  it('compares names case-insensitively and without a trailing dot', () => {
    assert.equal(router.pick('DB.Example.COM.'), 'db');
    assert.equal(router.pick('X.EXAMPLE.com'), 'any-example');
  });

  it('has no answer without a match and a default', () => {
    const strict = new SniRouter([{ sni: 'a.test', value: 1 }]);
    assert.equal(strict.pick('a.test'), 1);
    assert.equal(strict.pick('b.test'), undefined);
    assert.equal(strict.pick(null), undefined);
  });
});
