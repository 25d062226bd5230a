// The pure parts of the admin API across workers: the IPC message parsers
// (property tests: any value, never a throw; well-formed messages read back),
// and how /stats, /status and /metrics merge the workers' answers.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { describe, it } from 'node:test';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { parseAnswer, parseAsk, parseReplies } from '../../src/process/fanout.js';
import { aggregateMetrics, mergeStats, mergeStatus, type Part, type StatsReport, type StatusReport } from '../../src/process/cluster-admin.js';
import { LATENCY_BUCKETS_MS, type StatsView } from '../../src/observability/stats.js';
import { fuzzRuns, STANDARD_RUNS } from '../helpers/fuzz.js';

const TYPES = ['portico:fanout-ask', 'portico:fanout-answer', 'portico:fanout-replies', 'portico:ready', 'NODE_CLUSTER', ''];

/** Values shaped like the messages, with every field possibly wrong. */
const messageLike = fc.record(
  {
    type: fc.constantFrom(...TYPES),
    id: fc.oneof(fc.nat(), fc.integer(), fc.double(), fc.string(), fc.constant(null)),
    ask: fc.oneof(fc.record({ kind: fc.oneof(fc.string(), fc.nat()) }, { requiredKeys: [] }), fc.jsonValue()),
    to: fc.oneof(fc.nat({ max: 2000 }), fc.integer(), fc.string()),
    ok: fc.oneof(fc.boolean(), fc.string()),
    value: fc.jsonValue(),
    error: fc.oneof(fc.string(), fc.nat()),
    replies: fc.oneof(
      fc.array(fc.record({ index: fc.oneof(fc.nat({ max: 2000 }), fc.string()), pid: fc.oneof(fc.nat(), fc.constant(null), fc.string()), ok: fc.oneof(fc.boolean(), fc.nat()), error: fc.oneof(fc.string(), fc.nat()), value: fc.jsonValue() }, { requiredKeys: [] }), { maxLength: 4 }),
      fc.jsonValue(),
    ),
  },
  { requiredKeys: [] },
);

describe('fan-out messages under property tests', () => {
  it('any value: the parsers never throw, and what they accept is well formed', () => {
    fc.assert(
      fc.property(fc.oneof(fc.anything(), messageLike), (m) => {
        const ask = parseAsk(m);
        if (ask) {
          assert.equal(ask.type, 'portico:fanout-ask');
          assert.ok(Number.isSafeInteger(ask.id) && ask.id >= 0);
          assert.equal(typeof ask.ask.kind, 'string');
          if (ask.to !== undefined) assert.ok(Number.isInteger(ask.to) && ask.to >= 0 && ask.to < 1024);
        }
        const answer = parseAnswer(m);
        if (answer) {
          assert.equal(typeof answer.ok, 'boolean');
          if (!answer.ok) assert.equal(typeof answer.error, 'string');
        }
        const replies = parseReplies(m);
        if (replies) {
          for (const r of replies.replies) {
            assert.ok(Number.isInteger(r.index) && r.index >= 0);
            assert.ok(r.pid === null || Number.isInteger(r.pid));
            if (!r.ok) assert.equal(typeof r.error, 'string');
          }
        }
        // At most one parser takes a message: they are told apart by `type`.
        assert.ok([ask, answer, replies].filter(Boolean).length <= 1);
      }),
      fuzzRuns(STANDARD_RUNS),
    );
  });

  it('well-formed messages read back as sent (through JSON, as over IPC)', () => {
    const kind = fc.constantFrom('stats', 'status', 'connections', 'metrics', 'reload', 'close-connection');
    fc.assert(
      fc.property(fc.nat(), kind, fc.option(fc.nat({ max: 1023 }), { nil: undefined }), fc.jsonValue(), fc.string(), (id, k, to, value, error) => {
        const ask = { type: 'portico:fanout-ask', id, ask: { kind: k, reason: 'x' }, ...(to !== undefined ? { to } : {}) };
        assert.deepEqual(parseAsk(JSON.parse(JSON.stringify(ask))), ask);
        const answer = JSON.parse(JSON.stringify({ type: 'portico:fanout-answer', id, ok: true, value }));
        assert.deepEqual(parseAnswer(answer), answer);
        const refusal = { type: 'portico:fanout-answer', id, ok: false, error };
        assert.deepEqual(parseAnswer(refusal), refusal);
        const replies = { type: 'portico:fanout-replies', id, replies: [{ index: 1, pid: 42, ok: false, error, missing: true }] };
        assert.deepEqual(parseReplies(replies), replies);
      }),
      fuzzRuns(STANDARD_RUNS),
    );
  });

  it('refuses answers without their error, negative or fractional ids, and out-of-range targets', () => {
    assert.equal(parseAnswer({ type: 'portico:fanout-answer', id: 1, ok: false }), undefined);
    assert.equal(parseAsk({ type: 'portico:fanout-ask', id: -1, ask: { kind: 'stats' } }), undefined);
    assert.equal(parseAsk({ type: 'portico:fanout-ask', id: 1.5, ask: { kind: 'stats' } }), undefined);
    assert.equal(parseAsk({ type: 'portico:fanout-ask', id: 1, ask: { kind: 'stats' }, to: 5000 }), undefined);
    assert.equal(parseAsk({ type: 'portico:fanout-ask', id: 1, ask: ['stats'] }), undefined);
    assert.equal(parseReplies({ type: 'portico:fanout-replies', id: 1, replies: [{ index: 0, pid: 1, ok: false }] }), undefined);
  });
});

// ---------------------------------------------------------------- /stats

const zeros = () => new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);

function view(requests: number, qps1s: number): StatsView {
  const counts = zeros();
  counts[2] = requests;
  return {
    requests,
    statusClasses: [0, 0, requests, 0, 0, 0],
    bytesReceived: requests * 10,
    bytesSent: requests * 100,
    latency: { buckets: LATENCY_BUCKETS_MS, counts, sumMs: requests * 3 },
    qps1s,
    qps1m: qps1s / 2,
    today: qps1s * 7,
  };
}

const report = (route: Record<string, StatsView>): StatsReport => ({ route, upstream: {}, target: {}, consumer: {} });

describe('mergeStats', () => {
  it('sums the per-process series and takes the shared-store rates from one worker', () => {
    const a = report({ hello: view(3, 11), only0: view(1, 5) });
    const b = report({ hello: view(4, 12), only1: view(2, 6) });
    const merged = mergeStats([a, b]);
    assert.equal(merged.route.hello!.requests, 7);
    assert.deepEqual(merged.route.hello!.statusClasses, [0, 0, 7, 0, 0, 0]);
    assert.equal(merged.route.hello!.bytesReceived, 70);
    assert.equal(merged.route.hello!.bytesSent, 700);
    assert.equal(merged.route.hello!.latency.counts[2], 7);
    assert.equal(merged.route.hello!.latency.sumMs, 21);
    // qps1s, qps1m, today: the first worker's, not 11 + 12.
    assert.equal(merged.route.hello!.qps1s, 11);
    assert.equal(merged.route.hello!.qps1m, 5.5);
    assert.equal(merged.route.hello!.today, 77);
    assert.equal(merged.route.only0!.requests, 1);
    assert.equal(merged.route.only1!.requests, 2);
    // The inputs are not changed.
    assert.equal(a.route.hello!.requests, 3);
    assert.deepEqual(a.route.hello!.statusClasses, [0, 0, 3, 0, 0, 0]);
  });

  it('property: each series merges to the sum of its requests and status classes, whatever the split', () => {
    const series = fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd'), fc.tuple(fc.nat({ max: 1000 }), fc.nat({ max: 50 })), { maxKeys: 4 });
    fc.assert(
      fc.property(fc.array(series, { maxLength: 6 }), (workers) => {
        const reports = workers.map((w) => report(Object.fromEntries(Object.entries(w).map(([k, [n, q]]) => [k, view(n, q)]))));
        const merged = mergeStats(reports);
        for (const name of ['a', 'b', 'c', 'd']) {
          const parts = workers.filter((w) => w[name] !== undefined).map((w) => w[name]!);
          const m = merged.route[name];
          if (parts.length === 0) {
            assert.equal(m, undefined);
            continue;
          }
          const total = parts.reduce((n, [r]) => n + r, 0);
          assert.equal(m!.requests, total);
          assert.equal(m!.statusClasses[2], total);
          assert.equal(m!.latency.counts.reduce((x, y) => x + y, 0), total);
          assert.equal(m!.qps1s, parts[0]![1]);
        }
      }),
      fuzzRuns(STANDARD_RUNS / 4),
    );
  });
});

// ---------------------------------------------------------------- /status

function target(address: string, o: { healthy: boolean; ejected?: boolean; inflight: number; active?: 'healthy' | 'unhealthy' | 'unchecked' }) {
  return { address, weight: 1, healthy: o.healthy, active: o.active ?? 'unchecked', ejected: o.ejected ?? false, ejectedForMs: o.ejected ? 900 : 0, ejections: o.ejected ? 1 : 0, failures: { active: 0, passive: o.ejected ? 3 : 0 }, inflight: o.inflight };
}

function status(version: number, connections: number, targets: ReturnType<typeof target>[]): StatusReport {
  return {
    version,
    listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:1', connections }],
    upstreams: [{ name: 'backend', balancer: 'round-robin', panic: false, circuitBreaker: null, targets }],
  };
}

describe('mergeStatus', () => {
  it('keeps the shape, sums connections and inflight, merges health (healthy by all, ejected by any), lists each worker', () => {
    const parts: Part<StatusReport>[] = [
      { index: 0, pid: 100, ok: true, value: status(3, 2, [target('t1', { healthy: true, inflight: 1, active: 'healthy' }), target('t2', { healthy: true, inflight: 0 })]) },
      { index: 1, pid: 101, ok: true, value: status(3, 5, [target('t1', { healthy: false, ejected: true, inflight: 2, active: 'healthy' }), target('t2', { healthy: true, inflight: 4 })]) },
      { index: 2, pid: null, ok: false, error: 'no answer within 5 s' },
    ];
    const m = mergeStatus(parts);
    assert.equal(m.version, 3);
    assert.deepEqual(m.workers, [
      { index: 0, pid: 100, version: 3 },
      { index: 1, pid: 101, version: 3 },
      { index: 2, pid: null, version: null, error: 'no answer within 5 s' },
    ]);
    assert.equal(m.listeners[0]!.connections, 7);
    assert.equal(m.listeners[0]!.address, '127.0.0.1:1');
    const [t1, t2] = m.upstreams[0]!.targets;
    assert.equal(t1!.healthy, false);
    assert.equal(t1!.ejected, true);
    assert.equal(t1!.ejectedForMs, 900);
    assert.equal(t1!.active, 'healthy');
    assert.equal(t1!.inflight, 3);
    assert.deepEqual(t1!.failures, { active: 0, passive: 3 });
    assert.deepEqual(t1!.workers, [
      { index: 0, healthy: true, active: 'healthy', ejected: false, inflight: 1 },
      { index: 1, healthy: false, active: 'healthy', ejected: true, inflight: 2 },
    ]);
    assert.equal(t2!.healthy, true);
    assert.equal(t2!.inflight, 4);
    assert.deepEqual(m.upstreams[0]!.workers, [
      { index: 0, panic: false, circuitBreaker: null },
      { index: 1, panic: false, circuitBreaker: null },
    ]);
  });

  it('with no worker answering: an empty document and every worker listed with its error', () => {
    const m = mergeStatus([{ index: 0, pid: 1, ok: false, error: 'boom' }]);
    assert.deepEqual(m, { version: 0, listeners: [], upstreams: [], workers: [{ index: 0, pid: 1, version: null, error: 'boom' }] });
  });
});

// ---------------------------------------------------------------- /metrics

describe('aggregateMetrics', () => {
  it('sums counters and histograms of real prom-client registries; gauges by their aggregator', async () => {
    const workers = [3, 4].map((n) => {
      const registry = new Registry();
      new Counter({ name: 'portico_test_requests_total', help: 'requests', labelNames: ['route'], registers: [registry] }).inc({ route: 'hello' }, n);
      const h = new Histogram({ name: 'portico_test_seconds', help: 'latency', buckets: [0.1, 1], registers: [registry] });
      for (let i = 0; i < n; i++) h.observe(0.05);
      new Gauge({ name: 'portico_test_max', help: 'a max gauge', aggregator: 'max', registers: [registry] }).set(n * 10);
      return registry;
    });
    const { contentType, body } = await aggregateMetrics(await Promise.all(workers.map((r) => r.getMetricsAsJSON())));
    assert.match(contentType, /^text\/plain; version=0\.0\.4/);
    assert.match(body, /^portico_test_requests_total\{route="hello"\} 7$/m);
    assert.match(body, /^portico_test_seconds_bucket\{le="0\.1"\} 7$/m);
    assert.match(body, /^portico_test_seconds_count 7$/m);
    assert.match(body, /^portico_test_max 40$/m);
  });

  it('no worker answered: an empty exposition, not an error', async () => {
    const empty = await aggregateMetrics([]);
    assert.equal(empty.contentType, new Registry().contentType);
    assert.equal(empty.body.trim(), '');
  });
});
