/** One target a source offers: its identity (`host:port` today) and its weight (0: drained). */
export interface TargetSpec {
  readonly address: string;
  readonly weight: number;
}

/**
 * Feeds an upstream's target set: the static targets of the config today;
 * discovery (DNS, etcd, ZooKeeper) and tunnel registrations next. A source
 * hands over its whole current set each time it changes, and the upstream
 * swaps its picker atomically: a target that appears or leaves rebuilds
 * the picker, never the snapshot.
 */
export interface TargetSource {
  /** A name for logs and the admin API (`static`, `dns:api.internal`, `tunnel:billing`…). */
  readonly name: string;
  /** The set offered now. */
  current(): readonly TargetSpec[];
  /** Calls `listener` with every new set; returns the unsubscribe function. */
  subscribe(listener: (targets: readonly TargetSpec[]) => void): () => void;
}

/**
 * A source whose set is given to it: the config's `targets:` (the
 * gateway sets it on each reload) or, in tests and embedding code, any
 * list set by hand.
 */
export class StaticTargetSource implements TargetSource {
  readonly name: string;
  private targets: readonly TargetSpec[];
  private readonly listeners = new Set<(targets: readonly TargetSpec[]) => void>();

  constructor(targets: readonly TargetSpec[] = [], name = 'static') {
    this.name = name;
    this.targets = targets;
  }

  current(): readonly TargetSpec[] {
    return this.targets;
  }

  /**
   * Replaces the set; subscribers hear of it only when it differs (same
   * identities, weights and order are no change). Returns whether it did.
   */
  set(targets: readonly TargetSpec[]): boolean {
    if (sameTargets(targets, this.targets)) return false;
    this.targets = targets;
    for (const l of this.listeners) l(targets);
    return true;
  }

  subscribe(listener: (targets: readonly TargetSpec[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

function sameTargets(a: readonly TargetSpec[], b: readonly TargetSpec[]): boolean {
  return a.length === b.length && a.every((t, i) => t.address === b[i]!.address && t.weight === b[i]!.weight);
}

/** Another source's targets with one weight (a `{ tunnel: CODE, weight: N }` target: every registration weighs N). */
export class WeightedSource implements TargetSource {
  readonly name: string;
  constructor(
    private readonly inner: TargetSource,
    private readonly weight: number,
  ) {
    this.name = inner.name;
  }

  current(): readonly TargetSpec[] {
    return this.inner.current().map((t) => ({ address: t.address, weight: this.weight }));
  }

  subscribe(listener: (targets: readonly TargetSpec[]) => void): () => void {
    return this.inner.subscribe(() => listener(this.current()));
  }
}
