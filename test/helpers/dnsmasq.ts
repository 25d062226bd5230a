import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Resolver } from 'node:dns/promises';
import { startServerProcess, type ServerProcess } from './server-process.js';
import { freePort } from './upstream.js';

/** dnsmasq's path in Debian's dnsmasq-base (sbin: not on every user's PATH). */
const DNSMASQ = fs.existsSync('/usr/sbin/dnsmasq') ? '/usr/sbin/dnsmasq' : 'dnsmasq';
export const DNSMASQ_MISSING = 'dnsmasq is required: apt-get install dnsmasq-base (scripts/ensure-deps.mjs does it when run as root)';

/** The records a test DNS server answers: it is authoritative for `domain` (other names there: NXDOMAIN). */
export interface DnsRecords {
  /** name → IPv4/IPv6 addresses (A/AAAA). */
  hosts?: Record<string, string[]>;
  /** SRV records: name → targets. */
  srv?: Record<string, { target: string; port: number; priority?: number; weight?: number }[]>;
}

export interface TestDns extends ServerProcess {
  port: number;
  /** 127.0.0.1:PORT, for `discovery.servers`. */
  server: string;
  /** Replaces the records: A/AAAA change on SIGHUP; SRV changes restart the server (same port). */
  setRecords(records: DnsRecords): Promise<void>;
}

/**
 * Starts a real dnsmasq on a free loopback UDP/TCP port answering only the
 * given records (no upstream servers, no /etc/hosts), with `ttl` seconds on
 * every answer.
 */
export async function startDns(records: DnsRecords, opts: { domain?: string; ttl?: number } = {}): Promise<TestDns> {
  if (spawnSync(DNSMASQ, ['--version'], { stdio: 'ignore' }).status !== 0) throw new Error(DNSMASQ_MISSING);
  const port = await freePort();
  const domain = opts.domain ?? 'example.internal';
  let current = records;
  const write = (dir: string) => {
    const hosts = Object.entries(current.hosts ?? {}).flatMap(([name, addrs]) => addrs.map((a) => `${a} ${name}`));
    fs.writeFileSync(path.join(dir, 'hosts'), `${hosts.join('\n')}\n`);
    const srv = Object.entries(current.srv ?? {}).flatMap(([name, ts]) => ts.map((t) => `srv-host=${name},${t.target},${t.port},${t.priority ?? 0},${t.weight ?? 0}`));
    fs.writeFileSync(path.join(dir, 'srv.conf'), `${srv.join('\n')}\n`);
  };
  const server = await startServerProcess({
    name: 'dnsmasq',
    prepare: write,
    command: (dir) => ({
      file: DNSMASQ,
      args: [
        '--keep-in-foreground', '--no-daemon', '--conf-file=' + path.join(dir, 'srv.conf'),
        `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts', '--no-poll',
        `--addn-hosts=${path.join(dir, 'hosts')}`, `--local=/${domain}/`, `--local-ttl=${opts.ttl ?? 1}`, `--auth-ttl=${opts.ttl ?? 1}`,
        '--user=root', '--pid-file=' + path.join(dir, 'pid'), '--log-facility=-',
      ],
    }),
    ready: async () => {
      const r = new Resolver({ timeout: 300, tries: 1 });
      r.setServers([`127.0.0.1:${port}`]);
      try {
        await r.resolve4(`portico-probe.${domain}`);
        return true;
      } catch (err) {
        // NXDOMAIN means it answers.
        return (err as NodeJS.ErrnoException).code === 'ENOTFOUND';
      }
    },
  });
  return {
    ...server,
    port,
    server: `127.0.0.1:${port}`,
    setRecords: async (next) => {
      current = next;
      write(server.dir);
      await server.restart();
    },
  };
}
