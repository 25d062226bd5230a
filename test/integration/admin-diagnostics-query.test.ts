// Property tests of the query of POST /debug/profile and /debug/heap: the
// parser alone, then arbitrary queries through a real admin API.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseSeconds, PROFILE_SECONDS, profileRunning } from '../../src/admin/diagnostics.js';
import { startGateway, simpleConfig, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { send } from '../helpers/http.js';
import { fuzzRuns } from '../helpers/fuzz.js';
import { openFds, fdsSettle } from '../helpers/fds.js';
import { formatHostPort } from '../../src/net/address.js';

/** Whether `v` spells a whole number of seconds the endpoint takes: 1 to 60, one or two digits. */
const acceptable = (v: string) => /^\d{1,2}$/.test(v) && Number(v) >= PROFILE_SECONDS.min && Number(v) <= PROFILE_SECONDS.max;

test('seconds: a whole number 1..60 is taken as is; anything else is a message, never a throw', () => {
  const value = fc.oneof(fc.string({ maxLength: 8 }), fc.integer({ min: -100, max: 200 }).map(String), fc.constantFrom('1e1', '0x10', ' 5', '5 ', '+5', '١٠', '10.0', ''));
  fc.assert(
    fc.property(value, (v) => {
      const r = parseSeconds(new URLSearchParams([['seconds', v]]));
      if (acceptable(v)) assert.equal(r, Number(v));
      else assert.equal(typeof r, 'string');
    }),
    fuzzRuns(2000),
  );
  for (let n = PROFILE_SECONDS.min; n <= PROFILE_SECONDS.max; n++) assert.equal(parseSeconds(new URLSearchParams({ seconds: String(n) })), n);
  assert.equal(parseSeconds(new URLSearchParams()), PROFILE_SECONDS.default);
});

test('any other parameter, or seconds twice, is refused', () => {
  const name = fc.string({ minLength: 0, maxLength: 12 }).filter((n) => n !== 'seconds');
  fc.assert(
    fc.property(fc.array(fc.tuple(name, fc.string({ maxLength: 8 })), { minLength: 1, maxLength: 4 }), fc.boolean(), (extra, twice) => {
      const params = new URLSearchParams([['seconds', '5'], ...extra, ...(twice ? [['seconds', '5'] as [string, string]] : [])]);
      assert.equal(typeof parseSeconds(params), 'string');
    }),
    fuzzRuns(2000),
  );
});

let up: TestUpstream;
let gw: TestGateway;
let fds: number;
before(async () => {
  up = await startUpstream();
  fds = openFds();
  gw = await startGateway({ ...simpleConfig([up.address]), admin: { listen: '127.0.0.1:0', diagnostics: true } });
});
after(async () => {
  await gw.close();
  await fdsSettle(fds);
  await up.close();
});

test('arbitrary queries through the admin API: 400 BAD_REQUEST, no profile left running, no socket leaked', async () => {
  const admin = `http://${formatHostPort(gw.gateway.adminAddress()!)}`;
  const before = openFds();
  // Raw query text: percent-escapes, separators, bytes URLSearchParams must cope with. Never a valid profile request.
  const query = fc
    .string({ unit: fc.constantFrom(...'seconds=&;%0123456789abcXYZ+-._~!*\'()'.split('')), minLength: 1, maxLength: 24 })
    .filter((q) => {
      const p = new URLSearchParams(q);
      return typeof parseSeconds(p) === 'string';
    });
  await fc.assert(
    fc.asyncProperty(query, fc.constantFrom('/debug/profile', '/debug/heap'), async (q, path) => {
      // /debug/heap refuses every parameter; a query of separators only parses to none and would take a snapshot.
      if (path === '/debug/heap' && [...new URLSearchParams(q).keys()].length === 0) return;
      const r = await send(admin, { method: 'POST', path: `${path}?${q}` });
      assert.equal(r.status, 400, `${path}?${q}: ${r.body}`);
      assert.equal((JSON.parse(r.body) as { code: string }).code, 'BAD_REQUEST');
      assert.equal(profileRunning(), false);
    }),
    fuzzRuns(150),
  );
  await fdsSettle(before);
});
