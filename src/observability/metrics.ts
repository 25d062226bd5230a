import { Registry } from 'prom-client';

/**
 * Portico's Prometheus metrics (GET /metrics on the admin API): one
 * prom-client registry per process. With `workers: N` the admin API
 * aggregates every worker's `registry.getMetricsAsJSON()`.
 */
export class Metrics {
  readonly registry = new Registry();
}
