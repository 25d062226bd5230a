import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startServerProcess, type ServerProcess } from './server-process.js';
import { freePort } from './upstream.js';

/** Where Debian's zookeeper package puts the server jar. */
const ZOOKEEPER_JAR = '/usr/share/java/zookeeper.jar';
/** What a test says when ZooKeeper is not installed: tests never skip. */
export const ZOOKEEPER_MISSING = 'ZooKeeper is required: apt-get install zookeeper default-jre-headless (scripts/ensure-deps.mjs does it when run as root)';

/** Session timeouts this server grants (ms): short, so expiry tests take seconds. */
export const ZK_MIN_SESSION_MS = 1000;

export interface TestZookeeper extends ServerProcess {
  port: number;
  /** 127.0.0.1:PORT */
  hosts: string;
  /** Runs zkCli.sh with one command; resolves with its output. */
  cli(...args: string[]): Promise<string>;
}

/** Sends a four-letter word (ruok, srvr) and resolves with the answer. */
export function fourLetter(port: number, word: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(word));
    let buf = '';
    const timer = setTimeout(() => s.destroy(new Error(`${word} timed out`)), 2000);
    s.on('data', (d: Buffer) => (buf += d.toString()));
    s.on('end', () => {
      clearTimeout(timer);
      resolve(buf);
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/**
 * Starts a real standalone ZooKeeper (the Debian package's jar on the Java
 * runtime) on a free loopback port, its data in a temp folder, with a
 * 500 ms tick so sessions can be as short as ZK_MIN_SESSION_MS.
 */
export async function startZookeeper(): Promise<TestZookeeper> {
  if (!fs.existsSync(ZOOKEEPER_JAR) || spawnSync('java', ['-version'], { stdio: 'ignore' }).status !== 0) throw new Error(ZOOKEEPER_MISSING);
  const port = await freePort();
  const hosts = `127.0.0.1:${port}`;
  const server = await startServerProcess({
    name: 'zookeeper',
    prepare: (dir) =>
      fs.writeFileSync(
        path.join(dir, 'zoo.cfg'),
        [
          'tickTime=500',
          `dataDir=${path.join(dir, 'data')}`,
          `clientPort=${port}`,
          'clientPortAddress=127.0.0.1',
          `minSessionTimeout=${ZK_MIN_SESSION_MS}`,
          'maxSessionTimeout=30000',
          'admin.enableServer=false',
          '4lw.commands.whitelist=ruok,srvr,cons',
          '',
        ].join('\n'),
      ),
    command: (dir) => ({
      file: 'java',
      args: ['-Xmx256m', '-XX:+UseSerialGC', '-cp', `${ZOOKEEPER_JAR}:/usr/share/java/*`, 'org.apache.zookeeper.server.ZooKeeperServerMain', path.join(dir, 'zoo.cfg')],
    }),
    ready: async () => (await fourLetter(port, 'ruok')) === 'imok',
  });
  return {
    ...server,
    port,
    hosts,
    cli: (...args: string[]) => {
      const r = spawnSync('/usr/share/zookeeper/bin/zkCli.sh', ['-server', hosts, ...args], { encoding: 'utf8', timeout: 20_000 });
      return r.status === 0 ? Promise.resolve(r.stdout) : Promise.reject(new Error(`zkCli.sh ${args.join(' ')}: ${r.stderr || r.error?.message}`));
    },
  };
}
