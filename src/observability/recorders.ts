import type { RequestContext, RequestRecorder } from '../snapshot/snapshot.js';

/**
 * Two request recorders behind one (the statistics and the metrics): the
 * log phase makes one call, and each recorder keeps its own counters.
 */
export class Recorders implements RequestRecorder {
  constructor(
    private readonly first: RequestRecorder,
    private readonly second: RequestRecorder,
  ) {}

  record(ctx: RequestContext): void {
    this.first.record(ctx);
    this.second.record(ctx);
  }
}
