// Temporary bench wrapper (engineer C): runs dist/cli/main.js on the bench config with
// the users upstream given a circuit breaker, retries and passive health checks.
import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
const i = process.argv.indexOf('--config');
const file = process.argv[i + 1];
const doc = parse(readFileSync(file, 'utf8'));
const u = doc.upstreams.find((x) => x.name === 'users');
const mode = process.env.BENCH_C_POLICIES ?? 'all';
if (mode === 'all' || mode === 'health') u.healthCheck = { passive: { unhealthyThreshold: 5, ejectTime: '10s' } };
if (mode === 'all' || mode === 'breaker') u.circuitBreaker = { timeout: '1s', maxConcurrent: 1000, volumeThreshold: 20, errorPercent: 50, sleepWindow: '5s' };
if (mode === 'all' || mode === 'retries') u.retries = { attempts: 2, on: ['connect-failure', 502, 503, 504], perTryTimeout: '2s' };
writeFileSync(file + '.policies.yaml', stringify(doc));
process.argv[i + 1] = file + '.policies.yaml';
await import('../../dist/cli/main.js');
