import { Resolver } from 'node:dns/promises';
import type { DiscoveryConfig } from '../config/schemas/discovery.js';
import { formatHostPort } from '../net/address.js';
import type { Logger } from '../observability/logger.js';
import type { DiscoveryBackend, DiscoveryUpdate, SkippedEntry } from './backend.js';
import { nextDelay, retryDelay, selectSrv } from './dns-records.js';
import type { DiscoveredTarget } from './entry.js';

type DnsConfig = Extract<DiscoveryConfig, { type: 'dns' }>;

/** A name that exists but has no record of the asked type (RFC 2308 §2.2 NODATA). */
class NoData extends Error {}

/** One address of a target host, with its TTL (seconds). */
interface Addr {
  readonly address: string;
  readonly ttl: number;
}

/**
 * DNS discovery (docs/discovery.md, "DNS"): resolves `name` as A, AAAA or
 * SRV records with its own node:dns Resolver (the configured `servers`, or
 * the system's), reports the whole set, and resolves again after the
 * records' smallest TTL clamped to [minTtl, maxTtl] (dns-records.ts).
 *
 * Answers:
 * - records → `{ok: true}` with every target (weight 1 for A/AAAA; the SRV
 *   weight for SRV, lowest priority only, RFC 2782).
 * - NODATA (the name exists, no record of the type) → an empty set:
 *   DiscoveredTargets holds it for `emptyGrace` before applying it.
 * - NXDOMAIN for the configured name → `{ok: false}`: a name that does not
 *   exist is a DNS or config mistake, and must not wipe the targets.
 * - timeout, refused, SERVFAIL → `{ok: false}`, retried after minTtl,
 *   doubling per consecutive failure up to maxTtl.
 * One resolution is in flight at a time; the timer is unref'd; close()
 * cancels the timer and the query, and no update follows it.
 */
export class DnsDiscovery implements DiscoveryBackend {
  readonly type = 'dns';
  readonly origin: string;
  private readonly resolver: Resolver;
  private timer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private closed = false;
  private failures = 0;
  private onUpdate: ((update: DiscoveryUpdate) => void) | undefined;

  constructor(
    readonly config: DnsConfig,
    readonly logger: Logger,
  ) {
    this.origin = `dns://${config.servers?.join(',') ?? 'system'}/${config.name}?type=${config.record}`;
    // tries 1: `timeout` bounds one query to each server; the retry is our own, with backoff.
    this.resolver = new Resolver({ timeout: config.timeout, tries: 1 });
  }

  start(onUpdate: (update: DiscoveryUpdate) => void): void {
    if (this.closed || this.onUpdate) return;
    this.onUpdate = onUpdate;
    if (this.config.servers) {
      try {
        this.resolver.setServers(this.config.servers);
      } catch (err) {
        // A malformed server address: nothing to retry until the config changes.
        this.emit({ ok: false, error: `servers: ${(err as Error).message}` });
        return;
      }
    }
    void this.run();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.watchdog);
    this.resolver.cancel();
  }

  private emit(update: DiscoveryUpdate): void {
    if (!this.closed) this.onUpdate?.(update);
  }

  private async run(): Promise<void> {
    if (this.closed) return;
    const { minTtl, maxTtl } = this.config;
    // c-ares asks each server in turn: bound the whole resolution so a stuck one can never hang discovery.
    const budget = this.config.timeout * Math.max(1, this.config.servers?.length ?? 3) * 3 + 1_000;
    this.watchdog = setTimeout(() => this.resolver.cancel(), budget).unref();
    let delay: number;
    try {
      const { update, ttls } = await this.resolve();
      if (this.closed) return;
      this.failures = 0;
      this.emit(update);
      delay = nextDelay(ttls, minTtl, maxTtl);
    } catch (err) {
      if (this.closed) return;
      this.failures++;
      this.emit({ ok: false, error: describe(err, this.config.name, this.config.record, this.config.timeout) });
      delay = retryDelay(this.failures, minTtl, maxTtl);
    } finally {
      clearTimeout(this.watchdog);
    }
    if (this.closed) return;
    this.timer = setTimeout(() => void this.run(), delay).unref();
  }

  private async resolve(): Promise<{ update: DiscoveryUpdate; ttls: number[] }> {
    const { name, record } = this.config;
    if (record === 'SRV') return this.resolveSrv(name);
    const port = this.config.port!;
    let addrs: Addr[];
    try {
      addrs = record === 'A' ? await this.resolver.resolve4(name, { ttl: true }) : await this.resolver.resolve6(name, { ttl: true });
    } catch (err) {
      if (code(err) === 'ENODATA') return { update: { ok: true, targets: [], skipped: [] }, ttls: [] };
      throw err;
    }
    const targets = unique(addrs.map((a) => ({ address: formatHostPort({ host: a.address, port }), weight: 1 })));
    return { update: { ok: true, targets, skipped: [] }, ttls: addrs.map((a) => a.ttl) };
  }

  /**
   * SRV: the lowest priority's records, each target host resolved to its A
   * addresses (AAAA when it has no A). Node's resolveSrv gives no TTL: the
   * schedule uses the TTLs of those address records.
   */
  private async resolveSrv(name: string): Promise<{ update: DiscoveryUpdate; ttls: number[] }> {
    let records;
    try {
      records = await this.resolver.resolveSrv(name);
    } catch (err) {
      if (code(err) === 'ENODATA') return { update: { ok: true, targets: [], skipped: [] }, ttls: [] };
      throw err;
    }
    const { chosen, skipped } = selectSrv(records);
    const resolved = await Promise.all(chosen.map(async (c) => ({ c, addrs: await this.hostAddresses(c.name) })));
    const targets: DiscoveredTarget[] = [];
    const ttls: number[] = [];
    const skippedAll: SkippedEntry[] = [...skipped];
    for (const { c, addrs } of resolved) {
      if (typeof addrs === 'string') {
        skippedAll.push({ entry: `SRV ${c.port} ${c.name}`, reason: addrs });
        continue;
      }
      for (const a of addrs) {
        targets.push({ address: formatHostPort({ host: a.address, port: c.port }), weight: c.weight });
        ttls.push(a.ttl);
      }
    }
    return { update: { ok: true, targets: unique(targets), skipped: skippedAll }, ttls };
  }

  /** A host's A addresses, else its AAAA ones; a string says why it has none. Other failures throw. */
  private async hostAddresses(host: string): Promise<Addr[] | string> {
    for (const family of [4, 6] as const) {
      try {
        const addrs = family === 4 ? await this.resolver.resolve4(host, { ttl: true }) : await this.resolver.resolve6(host, { ttl: true });
        if (addrs.length > 0) return addrs;
      } catch (err) {
        if (code(err) === 'ENOTFOUND') return `${host} does not exist (NXDOMAIN)`;
        if (code(err) !== 'ENODATA') throw err;
      }
    }
    return `${host} has no A or AAAA record`;
  }
}

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** The first target per address (an SRV set may name one host:port twice). */
function unique(targets: DiscoveredTarget[]): DiscoveredTarget[] {
  const seen = new Set<string>();
  return targets.filter((t) => !seen.has(t.address) && (seen.add(t.address), true));
}

/** One line for /status and the log: what failed, in DNS terms. */
function describe(err: unknown, name: string, record: string, timeout: number): string {
  switch (code(err)) {
    case 'ENOTFOUND':
      return `NXDOMAIN: ${name} does not exist`;
    case 'ETIMEOUT':
      return `timeout: no answer for ${name} ${record} within ${timeout} ms`;
    case 'ECANCELLED':
      return `timeout: resolving ${name} ${record} was abandoned`;
    case 'ESERVFAIL':
      return `SERVFAIL: the DNS server failed to answer for ${name} ${record}`;
    case 'EREFUSED':
      return `REFUSED: the DNS server refused to answer for ${name} ${record}`;
    case 'ECONNREFUSED':
      return `the DNS server refused the connection (${name} ${record})`;
    default:
      return `${name} ${record}: ${(err as Error)?.message ?? String(err)}`;
  }
}
