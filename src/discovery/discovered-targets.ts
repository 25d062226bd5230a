import type { Logger } from '../observability/logger.js';
import type { TargetSource, TargetSpec } from '../runtime/target-source.js';
import type { DiscoveryBackend, DiscoveryUpdate, SkippedEntry } from './backend.js';

/** What /status and metrics show of one upstream's discovery. */
export interface DiscoveryHealth {
  readonly type: string;
  readonly origin: string;
  /**
   * `ok`: the targets are the backend's latest answer; `error`: the
   * backend lost sight of the set and the last known targets are kept;
   * `holding-empty`: it answered "no target" and the last targets are kept
   * until that has lasted `emptyGrace`; `starting`: no answer yet.
   */
  readonly state: 'starting' | 'ok' | 'error' | 'holding-empty';
  /** Targets offered now. */
  readonly targets: number;
  /** Entries left out, each with why (at most 20 shown). */
  readonly skipped: readonly SkippedEntry[];
  readonly error?: string;
  /** When the target set last changed (ISO 8601). */
  readonly changedAt?: string;
  /** Answers the backend could not give, since start. */
  readonly failures: number;
}

const SKIPPED_SHOWN = 20;

/**
 * An upstream's discovered targets, as a TargetSource: the latest set a
 * DiscoveryBackend reports, with the guards every backend gets:
 * - a failure keeps the last known targets (and shows as `error`);
 * - an empty answer replaces a non-empty set only once it has lasted
 *   `emptyGrace` (a store or DNS wiping every target at once is more
 *   often a fault than every instance dying together);
 * - each change and each failure is logged once, not on every retry.
 */
export class DiscoveredTargets implements TargetSource {
  readonly name: string;
  private targets: readonly TargetSpec[] = [];
  private readonly listeners = new Set<(targets: readonly TargetSpec[]) => void>();
  private state: DiscoveryHealth['state'] = 'starting';
  private error: string | undefined;
  private skipped: readonly SkippedEntry[] = [];
  private changedAt: string | undefined;
  private failures = 0;
  private emptyTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly upstream: string,
    private readonly backend: DiscoveryBackend,
    private readonly emptyGrace: number,
    private readonly logger: Logger,
  ) {
    this.name = backend.origin;
  }

  /** Starts the backend; targets arrive through subscribers as it answers. */
  start(): void {
    this.backend.start((u) => {
      if (!this.closed) this.update(u);
    });
  }

  current(): readonly TargetSpec[] {
    return this.targets;
  }

  subscribe(listener: (targets: readonly TargetSpec[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  health(): DiscoveryHealth {
    return {
      type: this.backend.type,
      origin: this.backend.origin,
      state: this.state,
      targets: this.targets.length,
      skipped: this.skipped.slice(0, SKIPPED_SHOWN),
      ...(this.error !== undefined ? { error: this.error } : {}),
      ...(this.changedAt !== undefined ? { changedAt: this.changedAt } : {}),
      failures: this.failures,
    };
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.emptyTimer);
    this.backend.close();
    this.listeners.clear();
  }

  private update(u: DiscoveryUpdate): void {
    if (!u.ok) {
      this.failures++;
      if (this.state !== 'error' || this.error !== u.error) {
        this.logger.warn({ upstream: this.upstream, discovery: this.name, error: u.error, kept: this.targets.length }, 'discovery failed; keeping the last known targets');
      }
      this.state = 'error';
      this.error = u.error;
      return;
    }
    if (this.state === 'error') this.logger.info({ upstream: this.upstream, discovery: this.name, targets: u.targets.length }, 'discovery answers again');
    this.error = undefined;
    if (u.skipped.length > 0 && JSON.stringify(u.skipped) !== JSON.stringify(this.skipped)) {
      this.logger.warn({ upstream: this.upstream, discovery: this.name, skipped: u.skipped.slice(0, SKIPPED_SHOWN) }, 'discovery entries that are not targets were left out');
    }
    this.skipped = u.skipped;
    const next = u.targets.map((t) => ({ address: t.address, weight: t.weight }));
    if (next.length === 0 && this.targets.length > 0 && this.emptyGrace > 0) {
      if (this.state === 'holding-empty') return;
      this.state = 'holding-empty';
      this.logger.warn({ upstream: this.upstream, discovery: this.name, kept: this.targets.length, graceMs: this.emptyGrace }, 'discovery answered no target; keeping the last targets until that lasts');
      this.emptyTimer = setTimeout(() => {
        if (this.closed || this.state !== 'holding-empty') return;
        this.state = 'ok';
        this.set([]);
      }, this.emptyGrace);
      this.emptyTimer.unref();
      return;
    }
    clearTimeout(this.emptyTimer);
    this.state = 'ok';
    this.set(next);
  }

  private set(next: readonly TargetSpec[]): void {
    const sorted = [...next].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    const same = sorted.length === this.targets.length && sorted.every((t, i) => t.address === this.targets[i]!.address && t.weight === this.targets[i]!.weight);
    if (same) return;
    this.targets = sorted;
    this.changedAt = new Date().toISOString();
    this.logger.info({ upstream: this.upstream, discovery: this.name, targets: sorted.map((t) => t.address) }, 'discovered targets changed');
    for (const l of this.listeners) l(sorted);
  }
}

