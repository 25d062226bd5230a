/**
 * The pure half of DNS discovery: when to resolve again, and which SRV
 * records are targets. Kept apart from the resolver so both are
 * property-tested (test/unit/discovery-dns-records.test.ts).
 */

/** Largest weight a target gets (the same cap as registry entries). */
export const MAX_SRV_WEIGHT = 10_000;

/**
 * Milliseconds until the next resolution: the smallest record TTL (seconds,
 * RFC 1035 §3.2.1: a cache may keep a record that long), clamped to
 * [minTtl, maxTtl] (ms). No TTL at all (an empty answer) → minTtl.
 * Always a finite integer within the clamp.
 */
export function nextDelay(ttls: readonly number[], minTtl: number, maxTtl: number): number {
  const finite = ttls.filter((t) => Number.isFinite(t) && t >= 0);
  const ms = finite.length === 0 ? minTtl : Math.min(...finite) * 1000;
  return Math.round(Math.min(maxTtl, Math.max(minTtl, ms)));
}

/**
 * Delay before retrying after a failure: minTtl, doubled per consecutive
 * failure (`failures` ≥ 1), never more than maxTtl.
 */
export function retryDelay(failures: number, minTtl: number, maxTtl: number): number {
  const exp = Math.min(Math.max(failures - 1, 0), 30);
  return Math.min(maxTtl, minTtl * 2 ** exp);
}

export interface SrvRecord {
  readonly name: string;
  readonly port: number;
  readonly priority: number;
  readonly weight: number;
}

/** An SRV record chosen as a target host: its name still to be resolved. */
export interface SrvChoice {
  readonly name: string;
  readonly port: number;
  readonly weight: number;
}

/**
 * RFC 2782: a client tries the lowest-numbered priority first, and spreads
 * load within it by weight. A gateway that health-checks its targets uses
 * only that priority (higher ones are backups a DNS change promotes).
 * Weight 0 ("very small chance", RFC 2782) → 1; above MAX_SRV_WEIGHT → the
 * cap. Records with a port of 0 or the root target `.` ("service not
 * available", RFC 2782) are not targets: returned in `skipped`.
 */
export function selectSrv(records: readonly SrvRecord[]): { chosen: SrvChoice[]; skipped: { entry: string; reason: string }[] } {
  const skipped: { entry: string; reason: string }[] = [];
  const usable = records.filter((r) => {
    const bad = r.name === '' || r.name === '.' ? 'target "." : the service is not available there (RFC 2782)' : r.port < 1 || r.port > 65_535 ? `port ${r.port} is not 1..65535` : undefined;
    if (bad) skipped.push({ entry: `SRV ${r.priority} ${r.weight} ${r.port} ${r.name || '.'}`, reason: bad });
    return bad === undefined;
  });
  if (usable.length === 0) return { chosen: [], skipped };
  const lowest = Math.min(...usable.map((r) => r.priority));
  const chosen = usable
    .filter((r) => r.priority === lowest)
    .map((r) => ({ name: r.name, port: r.port, weight: Math.min(MAX_SRV_WEIGHT, Math.max(1, Math.floor(r.weight))) }));
  return { chosen, skipped };
}
