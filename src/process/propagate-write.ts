import { askOthers } from './fanout.js';

/**
 * After an admin API write was applied and stored by this worker (the one
 * serving the admin API): every other worker reloads the stored document
 * from its own source, the same file. Resolves undefined once all applied
 * it, else with which did not and why (those keep their running config). A
 * slot still starting is skipped: it reads the file once it serves.
 */
export async function reloadOtherWorkers(workers: number, self: number, reason: string): Promise<string | undefined> {
  if (workers <= 1) return undefined;
  const replies = await askOthers({ kind: 'reload', reason });
  const problems: string[] = [];
  for (let index = 0; index < workers; index++) {
    if (index === self) continue;
    const r = replies.find((x) => x.index === index);
    if (r === undefined) problems.push(`worker ${index} did not answer`);
    else if (!r.ok) {
      if (!('starting' in r && r.starting === true)) problems.push(`worker ${index}: ${r.error}`);
    } else {
      const v = r.value as { ok?: unknown; error?: unknown } | null;
      if (v?.ok !== true) problems.push(`worker ${index} refused it: ${typeof v?.error === 'string' ? v.error : 'refused'}`);
    }
  }
  return problems.length === 0 ? undefined : `${problems.join('; ')} (those keep their running config)`;
}
