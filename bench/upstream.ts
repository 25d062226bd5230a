/**
 * The fast upstream: nginx when installed, otherwise a node:http server in
 * its own process. Pinned to CPU 0 (with the load generator) when taskset exists.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNginxUpstream, type Started } from './nginx.js';
import { Managed, pinned, waitForHttp200 } from './util.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export async function startNodeUpstream(port: number, cpu: number | undefined): Promise<Started> {
  const [cmd, args] = pinned(cpu, process.execPath, [path.join(HERE, 'upstream-server.js'), String(port)]);
  const proc = new Managed('node upstream', cmd, args);
  await waitForHttp200('node upstream', port, '/small', {}, () => proc.exitReason());
  return { proc, port, kind: 'node' };
}

/** nginx if `nginxBin` is given, else node. */
export function startUpstream(nginxBin: string | undefined, port: number, cpu: number | undefined): Promise<Started> {
  return nginxBin !== undefined ? startNginxUpstream(nginxBin, port, cpu) : startNodeUpstream(port, cpu);
}
