import type http from 'node:http';

/** The outcome of reloading every process serving the gateway: `ok` only when every one applied the document. */
export interface ReloadReport {
  ok: boolean;
  /** The admin-serving process's revision (its config source's; null when not known) and snapshot version after the reload. */
  revision: string | null;
  version: number;
  /** One entry per process (its worker index; 0 for a single process), with the reason when it refused. */
  workers: { index: number; ok: boolean; error?: string; [field: string]: unknown }[];
}

/**
 * POST /config/reload: every process reloads the config from its source.
 *   200 {revision, version, workers} when every one applied it;
 *   409 {error, code: APPLY_FAILED, workers} when any refused (each refusing process keeps its running config);
 *   405 for another method; 500 if the reload itself failed unexpectedly.
 * The request body, if any, is ignored.
 */
export function configReload(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  reloadEverywhere: (reason: string) => Promise<ReloadReport>,
  json: (status: number, body: unknown) => void,
): void {
  if (req.method !== 'POST') {
    res.setHeader('allow', 'POST');
    return json(405, { error: `${req.method} is not allowed on /config/reload (use POST)`, code: 'METHOD_NOT_ALLOWED' });
  }
  let reloading: Promise<ReloadReport>;
  try {
    reloading = reloadEverywhere('admin API');
  } catch (err) {
    reloading = Promise.reject(err);
  }
  reloading.then(
    (r) => {
      if (r.ok) return json(200, { revision: r.revision, version: r.version, workers: r.workers });
      const refused = r.workers.filter((w) => !w.ok).map((w) => `worker ${w.index}: ${w.error ?? 'refused'}`);
      json(409, { error: `the config was not applied everywhere (${refused.join('; ')})`, code: 'APPLY_FAILED', workers: r.workers });
    },
    () => json(500, { error: 'reload failed', code: 'INTERNAL' }),
  );
}
