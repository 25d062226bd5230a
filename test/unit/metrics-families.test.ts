// The scrape-time metric shape (observability/scraped-metric.ts): bucket
// choice (`le` is inclusive), cumulative histogram samples, and a source
// that throws leaving only its own metric out of the scrape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { bucketOf, pushHistogram, ScrapedMetric, type Sample } from '../../src/observability/scraped-metric.js';

test('bucketOf: a value on a bound falls in that bound\'s bucket (le is inclusive); above all bounds, the +Inf one', () => {
  const bounds = [0.1, 1, 10];
  assert.equal(bucketOf(bounds, 0), 0);
  assert.equal(bucketOf(bounds, 0.1), 0);
  assert.equal(bucketOf(bounds, 0.10001), 1);
  assert.equal(bucketOf(bounds, 10), 2);
  assert.equal(bucketOf(bounds, 10.5), 3);
});

test('pushHistogram: cumulative buckets, +Inf = _count, the sum as given', () => {
  const out: Sample[] = [];
  pushHistogram(out, 'x', { route: 'r' }, [0.1, 1], [2, 0, 3], 4.5);
  assert.deepEqual(out, [
    { metricName: 'x_bucket', labels: { route: 'r', le: 0.1 }, value: 2 },
    { metricName: 'x_bucket', labels: { route: 'r', le: 1 }, value: 2 },
    { metricName: 'x_bucket', labels: { route: 'r', le: '+Inf' }, value: 5 },
    { metricName: 'x_sum', labels: { route: 'r' }, value: 4.5 },
    { metricName: 'x_count', labels: { route: 'r' }, value: 5 },
  ]);
});

test('a source that throws drops its own samples, and the scrape still answers', async () => {
  const registry = new Registry();
  new ScrapedMetric('t_broken', 'throws', 'gauge', 'sum', () => {
    throw new Error('torn down');
  }).register(registry);
  new ScrapedMetric('t_fine', 'works', 'counter', 'sum', (o) => o.push({ labels: { a: 'b' }, value: 3 })).register(registry);
  const text = await registry.metrics();
  assert.match(text, /^# TYPE t_broken gauge$/m);
  assert.doesNotMatch(text, /^t_broken /m);
  assert.match(text, /^t_fine\{a="b"\} 3$/m);
  const json = await registry.getMetricsAsJSON();
  assert.deepEqual(json.find((m) => m.name === 't_fine')?.values, [{ labels: { a: 'b' }, value: 3 }]);
});
