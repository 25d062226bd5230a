import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startServerProcess, type ServerProcess } from './server-process.js';
import { freePort } from './upstream.js';

/** What a test says when etcd is not installed: tests never skip. */
export const ETCD_MISSING = 'etcd is required: apt-get install etcd-server etcd-client (scripts/ensure-deps.mjs does it when run as root)';

export interface TestEtcd extends ServerProcess {
  port: number;
  /** http://127.0.0.1:PORT */
  url: string;
  /** Runs `etcdctl` (v3 API) against this server; resolves with its stdout, rejects with its stderr. */
  ctl(...args: string[]): Promise<string>;
  /** halt(), empties the data folder and starts again: a server that lost everything (revision 1 again). */
  wipe(): Promise<void>;
}

/** Starts a real single-member etcd on free loopback ports, its data in a temp folder. */
export async function startEtcd(): Promise<TestEtcd> {
  if (spawnSync('etcd', ['--version'], { stdio: 'ignore' }).status !== 0) throw new Error(ETCD_MISSING);
  const port = await freePort();
  const peer = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const ctl = (...args: string[]): Promise<string> => {
    const r = spawnSync('etcdctl', ['--endpoints', url, '--dial-timeout', '2s', '--command-timeout', '3s', ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
      encoding: 'utf8',
    });
    return r.status === 0 ? Promise.resolve(r.stdout) : Promise.reject(new Error(`etcdctl ${args.join(' ')}: ${r.stderr || r.error?.message}`));
  };
  const server = await startServerProcess({
    name: 'etcd',
    command: (dir) => ({
      file: 'etcd',
      args: [
        '--name', 'portico-test',
        '--data-dir', path.join(dir, 'data'),
        '--listen-client-urls', url,
        '--advertise-client-urls', url,
        '--listen-peer-urls', `http://127.0.0.1:${peer}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
        '--initial-cluster', `portico-test=http://127.0.0.1:${peer}`,
        '--log-level', 'error',
      ],
    }),
    ready: async () => {
      const r = spawnSync('etcdctl', ['--endpoints', url, '--dial-timeout', '1s', 'endpoint', 'health'], { env: { ...process.env, ETCDCTL_API: '3' }, stdio: 'ignore' });
      return r.status === 0;
    },
  });
  return {
    ...server,
    port,
    url,
    ctl,
    wipe: async () => {
      await server.halt();
      fs.rmSync(path.join(server.dir, 'data'), { recursive: true, force: true });
      await server.restart();
    },
  };
}
