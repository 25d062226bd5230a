import type http from 'node:http';
import { Session } from 'node:inspector/promises';
import { json as reply, methodNotAllowed } from './reply.js';

/**
 * Live profiling of the running process through `node:inspector`, with a
 * Session in this thread (no restart, no `--inspect` port):
 *   POST /debug/profile[?seconds=N] → a CPU profile of the next N seconds
 *        (whole 1..60, default 10) as a `.cpuprofile` attachment, the JSON
 *        Chrome DevTools loads: { nodes, startTime, endTime, samples, timeDeltas }
 *   POST /debug/heap → a heap snapshot (`.heapsnapshot`), each chunk of
 *        HeapProfiler.addHeapSnapshotChunk written to the response as it comes
 *
 * One profile or heap snapshot at a time per process (the inspector's
 * profiler is per thread): another one meanwhile answers 409
 * PROFILE_RUNNING. A client that goes away mid-profile stops the profiler
 * at once and frees the slot. V8 takes a heap snapshot synchronously: the
 * process answers nothing else while it is written (seconds for a large
 * heap). With `workers: N` this profiles the worker serving the admin API.
 *
 * The caller has checked that diagnostics are on and the client authorized.
 */
export function diagnostics(req: http.IncomingMessage, res: http.ServerResponse, url: string, path: string): void {
  if (path !== '/debug/profile' && path !== '/debug/heap') return reply(res, 404, { error: 'no such admin endpoint', code: 'NOT_FOUND' });
  if (req.method !== 'POST') return methodNotAllowed(res, req.method, path, ['POST']);
  req.resume(); // a body, if any, is not read
  const q = url.indexOf('?');
  const params = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
  let seconds = 0;
  if (path === '/debug/profile') {
    const s = parseSeconds(params);
    if (typeof s === 'string') return reply(res, 400, { error: s, code: 'BAD_REQUEST' });
    seconds = s;
  } else if ([...params.keys()].length > 0) {
    return reply(res, 400, { error: '/debug/heap takes no query parameters', code: 'BAD_REQUEST' });
  }
  if (busy) return reply(res, 409, { error: 'a profile or heap snapshot is already being taken in this process; try again when it ends', code: 'PROFILE_RUNNING' });
  busy = true;
  const run = path === '/debug/profile' ? cpuProfile(res, seconds) : heapSnapshot(res);
  run
    .catch((err: unknown) => {
      if (!res.headersSent) reply(res, 500, { error: `profiling failed: ${(err as Error).message}`, code: 'INTERNAL' });
      else res.destroy();
    })
    .finally(() => {
      busy = false;
    });
}

/** Whether a profile or heap snapshot is being taken (one per process, as the inspector's profiler is per thread). */
let busy = false;

/** Whether a profile or heap snapshot is being taken in this process now. */
export function profileRunning(): boolean {
  return busy;
}

/** Profile length when `seconds` is absent, and the bounds of `seconds`. */
export const PROFILE_SECONDS = { default: 10, min: 1, max: 60 } as const;

/** The `seconds` of POST /debug/profile, or why it is refused. */
export function parseSeconds(params: URLSearchParams): number | string {
  let seconds: number = PROFILE_SECONDS.default;
  const seen = new Set<string>();
  for (const [name, value] of params) {
    if (seen.has(name)) return `query parameter "${name.slice(0, 64)}" is given more than once`;
    seen.add(name);
    if (name !== 'seconds') return `unknown query parameter "${name.slice(0, 64)}" (the only one is seconds)`;
    if (!/^[0-9]{1,2}$/.test(value) || Number(value) < PROFILE_SECONDS.min || Number(value) > PROFILE_SECONDS.max) {
      return `seconds must be a whole number from ${PROFILE_SECONDS.min} to ${PROFILE_SECONDS.max} (got "${value.slice(0, 64)}")`;
    }
    seconds = Number(value);
  }
  return seconds;
}

/** The CPU profiler's sampling period, µs (the DevTools default). */
const SAMPLING_INTERVAL_US = 1000;

/** `portico-<pid>-<UTC time, basic ISO 8601>.<extension>` */
function fileName(extension: string): string {
  const time = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
  return `portico-${process.pid}-${time}.${extension}`;
}

async function cpuProfile(res: http.ServerResponse, seconds: number): Promise<void> {
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: SAMPLING_INTERVAL_US });
    await session.post('Profiler.start');
    // Until the time is up or the client goes away, whichever comes first.
    const gone = await new Promise<boolean>((resolve) => {
      // The client may have gone while the profiler started.
      if (res.socket === null || res.socket.destroyed) return resolve(true);
      const onClose = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        res.off('close', onClose);
        resolve(false);
      }, seconds * 1000);
      res.once('close', onClose);
    });
    const { profile } = await session.post('Profiler.stop');
    await session.post('Profiler.disable');
    if (gone || res.destroyed) return;
    const body = JSON.stringify(profile);
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'content-disposition': `attachment; filename="${fileName('cpuprofile')}"`,
      'cache-control': 'no-store',
    });
    res.end(body);
  } finally {
    session.disconnect();
  }
}

async function heapSnapshot(res: http.ServerResponse): Promise<void> {
  const session = new Session();
  session.connect();
  try {
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-disposition': `attachment; filename="${fileName('heapsnapshot')}"`,
      'cache-control': 'no-store',
    });
    session.on('HeapProfiler.addHeapSnapshotChunk', (m) => {
      if (!res.destroyed) res.write(m.params.chunk);
    });
    await session.post('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    res.end();
  } finally {
    session.disconnect();
  }
}
