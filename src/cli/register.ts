import { parseArgs } from 'node:util';
import { parseDuration } from '../config/duration.js';
import { parseHostPort } from '../net/address.js';
import { registerService, type RegisterServiceOptions } from '../discovery/register-service.js';

export const REGISTER_USAGE = `Usage: portico register --zookeeper HOSTS --path PATH --address HOST:PORT [options]
       portico register --etcd URL[,URL…] --prefix PREFIX --address HOST:PORT [options]

Keeps a service registered for discovery until SIGTERM/SIGINT, for a service
that cannot register itself: an ephemeral ZooKeeper node PATH/HOST:PORT (made
again after a session expiry), or an etcd key PREFIX/HOST:PORT held by a lease.
Upstreams with discovery on that path or prefix send it traffic.

Options:
  --weight N              the target's weight (default 1)
  --check tcp|URL         check the service every --interval: a TCP connect to
                          --address, or an HTTP GET of URL (2xx/3xx is up);
                          the registration is removed while it fails
  --interval 2s           time between checks
  --ttl 10s               etcd: the lease's time to live
  --session-timeout 10s   ZooKeeper: the session timeout asked of the ensemble
  --timeout 5s            longest wait for the registry

HOSTS is host:port[,host:port…]. Exit 0 on SIGTERM/SIGINT (the entry is
removed first), 1 when the registry cannot be reached at start, 2 bad usage.
`;

/** `portico register`: runs until SIGTERM/SIGINT. */
export async function runRegister(argv: string[]): Promise<number> {
  let options: RegisterServiceOptions;
  try {
    const r = parse(argv);
    if (r === 'help') {
      process.stdout.write(REGISTER_USAGE);
      return 0;
    }
    options = r;
  } catch (err) {
    process.stderr.write(`portico: ${(err as Error).message}\n\n${REGISTER_USAGE}`);
    return 2;
  }
  const say = (registered: boolean, why: string) =>
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), address: options.address, registered, why })}\n`);
  let reg;
  try {
    reg = await registerService({ ...options, onChange: say });
  } catch (err) {
    process.stderr.write(`portico: cannot register ${options.address}: ${(err as Error).message}\n`);
    return 1;
  }
  process.stderr.write(`portico: registered ${options.address} at ${reg.origin}\n`);
  return new Promise<number>((resolve) => {
    // The registry clients' retry timers are unref'd: this keeps the process up while the registry is unreachable.
    const alive = setInterval(() => undefined, 1 << 30);
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      clearInterval(alive);
      void reg.close().then(() => {
        process.stderr.write(`portico: deregistered ${options.address}\n`);
        resolve(0);
      });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

function duration(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const ms = /^\d+(?:\.\d+)?$/.test(text) ? undefined : parseDuration(text);
  if (ms === undefined || ms <= 0) throw new Error(`bad --${name} "${text}": a duration with a unit (500ms, 2s, 1m)`);
  return ms;
}

function parse(argv: string[]): RegisterServiceOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        zookeeper: { type: 'string' },
        path: { type: 'string' },
        etcd: { type: 'string' },
        prefix: { type: 'string' },
        address: { type: 'string' },
        weight: { type: 'string' },
        check: { type: 'string' },
        interval: { type: 'string' },
        ttl: { type: 'string' },
        'session-timeout': { type: 'string' },
        timeout: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new Error((err as Error).message.split('. To specify')[0]!);
  }
  if (values.help) return 'help';
  if ((values.zookeeper === undefined) === (values.etcd === undefined)) throw new Error('give one of --zookeeper HOSTS and --etcd URL');
  const address = values.address;
  if (address === undefined) throw new Error('--address HOST:PORT is required');
  if (parseHostPort(address) === undefined || parseHostPort(address)!.port === 0) throw new Error(`bad --address "${address}": host:port`);
  const weight = values.weight === undefined ? 1 : Number(values.weight);
  if (!Number.isInteger(weight) || weight < 0 || weight > 10_000) throw new Error(`bad --weight "${values.weight}": a whole number from 0 to 10000`);
  const path = /^(\/[^/\s]+)+$/;
  const timeout = duration('timeout', values.timeout, 5000);
  const check = values.check;
  let healthCheck: RegisterServiceOptions['healthCheck'];
  if (check !== undefined) {
    if (check !== 'tcp' && !/^https?:\/\/[^\s]+$/.test(check)) throw new Error(`bad --check "${check}": tcp or an http(s):// URL`);
    healthCheck = { ...(check === 'tcp' ? { tcp: true as const } : { http: check }), interval: duration('interval', values.interval, 2000) };
  } else if (values.interval !== undefined) throw new Error('--interval needs --check');
  if (values.zookeeper !== undefined) {
    if (values.prefix !== undefined || values.ttl !== undefined) throw new Error('--prefix and --ttl are for --etcd; ZooKeeper takes --path');
    const servers = values.zookeeper.split(',');
    const bad = servers.find((s) => parseHostPort(s) === undefined);
    if (bad !== undefined) throw new Error(`bad --zookeeper server "${bad}": host:port`);
    if (values.path === undefined || !path.test(values.path)) throw new Error('--path must be an absolute znode path such as /real_server');
    return { address, weight, timeout, ...(healthCheck ? { healthCheck } : {}), zookeeper: { servers, path: values.path, sessionTimeout: duration('session-timeout', values['session-timeout'], 10_000) } };
  }
  if (values.path !== undefined || values['session-timeout'] !== undefined) throw new Error('--path and --session-timeout are for --zookeeper; etcd takes --prefix');
  const endpoints = values.etcd!.split(',').map((e) => (/^https?:\/\//.test(e) ? e : `http://${e}`));
  if (values.prefix === undefined || !path.test(values.prefix)) throw new Error('--prefix must be an absolute key prefix such as /services/orders');
  return { address, weight, timeout, ...(healthCheck ? { healthCheck } : {}), etcd: { endpoints, prefix: values.prefix, ttl: duration('ttl', values.ttl, 10_000) } };
}
